import { readFile } from "node:fs/promises";
import { ApiClient } from "./apiClient.js";
import { formatBytes, table } from "./output.js";
import type { SliceRecord } from "../catalog/slices.js";
import { Command } from "commander";
import { inspectSlice, type OptimeJson, type SliceSummary, type TimestampJson } from "../slice/inspect.js";

/** Where the command prints; tests pass their own. */
export interface SlicesOutput {
  stdout(text: string): void;
}

const processOutput: SlicesOutput = { stdout: (text) => void process.stdout.write(text) };

function ts(value: TimestampJson): string {
  return `Timestamp(${value.t}, ${value.i})`;
}

function optime(value: OptimeJson): string {
  return value.t === undefined ? ts(value.ts) : `${ts(value.ts)} term ${value.t}`;
}

function bytes(n: number): string {
  return `${n.toLocaleString("en-US")} bytes`;
}

/** The summary as aligned `label  value` lines, for people. */
export function formatSliceSummary(file: string, summary: SliceSummary): string {
  const rows: Array<[string, string]> = [
    ["file", `${file} (${bytes(summary.fileBytes)})`],
    [
      "status",
      summary.status === "ok"
        ? "ok (header CRC, body SHA-256, BSON framing and count verified)"
        : `${summary.status} (the error follows this summary)`,
    ],
  ];
  const h = summary.header;
  if (h) {
    rows.push(["kind", h.kind], ["deployment", h.deployment], ["stream", h.stream]);
    rows.push(["sequence", String(h.sequence)]);
    if (h.namespace !== undefined) rows.push(["namespace", h.namespace]);
    if (h.firstTs && h.lastTs) rows.push(["header ts", `${ts(h.firstTs)} .. ${ts(h.lastTs)}`]);
    if (summary.firstOptime && summary.lastOptime) {
      rows.push(["optimes", `${optime(summary.firstOptime)} .. ${optime(summary.lastOptime)}`]);
    }
    if (h.lastId !== undefined) rows.push(["last _id", JSON.stringify(h.lastId)]);
    const found = summary.documents === undefined ? "" : ` (found ${summary.documents})`;
    rows.push(["documents", `${h.count}${found}`]);
    const ratio = summary.sizes?.ratio == null ? "" : `, ${summary.sizes.ratio}:1`;
    rows.push(["size", `${bytes(h.uncompressedSize)} -> ${bytes(h.compressedSize)} (${h.codec}${ratio})`]);
    rows.push(["body sha256", h.bodySha256], ["created", h.createdAt]);
    if (h.extra !== undefined) rows.push(["extra", JSON.stringify(h.extra)]);
  }
  const width = Math.max(...rows.map(([label]) => label.length));
  return rows.map(([label, value]) => `${label.padEnd(width)}  ${value}\n`).join("");
}

export function slicesCommand(output: SlicesOutput = processOutput): Command {
  const slices = new Command("slices").description(
    "Work with slices: the compressed bundles of documents and oplog entries the agent uploads",
  );

  slices
    .command("inspect")
    .description("Show a slice file's header and check it (header CRC, body SHA-256, BSON framing, count)")
    .argument("<file>", "a slice file, e.g. one taken from the oplog store")
    .option("--json", "print the summary as JSON", false)
    .addHelpText(
      "after",
      `
Exits with status 1 if the slice is damaged, after printing what could still be read.

Examples:
  $ tidemark slices inspect ./store/dep1/oplog/00000000000000000042.slice
  $ tidemark slices inspect --json slice.bin | jq .header.lastTs`,
    )
    .action(async (file: string, opts: { json: boolean }) => {
      let buf: Buffer;
      try {
        buf = await readFile(file);
      } catch (error) {
        throw new Error(`cannot read ${file}: ${(error as Error).message}`);
      }
      const summary = inspectSlice(buf);
      output.stdout(opts.json ? `${JSON.stringify(summary, null, 2)}\n` : formatSliceSummary(file, summary));
      // main.ts prints thrown errors as "tidemark: <message>" and exits with status 1.
      if (summary.error) throw new Error(`${file}: ${summary.error.code}: ${summary.error.message}`);
    });

  slices
    .command("list <deployment>")
    .description("List a deployment's slices in the oplog store (uses TIDEMARK_URL, TIDEMARK_API_KEY)")
    .option("--stream <kind>", "only one kind: documents, oplog, catalog or missing")
    .option("--json", "print the API's JSON", false)
    .addHelpText(
      "after",
      "\nExamples:\n  $ tidemark slices list prod-rs --stream oplog\n  $ tidemark slices list prod-rs --json",
    )
    .action(async (deployment: string, opts: { stream?: string; json: boolean }) => {
      const query = opts.stream ? `?kind=${encodeURIComponent(opts.stream)}` : "";
      const listed = await ApiClient.fromEnvironment().request<{ slices: SliceRecord[] }>(
        "GET",
        `/api/v1/deployments/${encodeURIComponent(deployment)}/slices${query}`,
      );
      if (opts.json) return output.stdout(`${JSON.stringify(listed, null, 2)}\n`);
      if (listed.slices.length === 0) return output.stdout("no slices\n");
      const rows = [["STREAM", "SEQ", "DOCS", "BYTES", "CODEC", "LAST"]];
      for (const slice of listed.slices) {
        const last = slice.lastTs ? `${slice.lastTs.t}:${slice.lastTs.i}` : (slice.lastId ?? "");
        rows.push([
          slice.stream,
          String(slice.sequence),
          String(slice.count),
          formatBytes(slice.bytes),
          slice.codec,
          last,
        ]);
      }
      output.stdout(`${table(rows)}\n`);
    });

  return slices;
}
