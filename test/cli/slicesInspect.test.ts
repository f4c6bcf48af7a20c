import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import type { Command } from "commander";
import { afterAll, describe, expect, it } from "vitest";
import { slicesCommand } from "../../src/cli/slices.js";
import { encodeSlice } from "../../src/slice/format.js";
import { inspectSlice } from "../../src/slice/inspect.js";
import { fixtureDocuments, OPLOG_50, SAMPLE } from "../slice/fixtures.js";

/*
 * `tidemark slices inspect`, driven through commander exactly as main.ts will run it once the
 * command is registered there (main.ts prints a thrown error as "tidemark: <message>" and exits 1).
 */

const dir = mkdtempSync(path.join(tmpdir(), "tidemark-slices-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const createdAt = new Date("2024-05-01T12:00:00.000Z");
const oplogSlice = encodeSlice(
  { kind: "oplog", deployment: "dep-1", stream: "oplog", sequence: 12, createdAt },
  fixtureDocuments(OPLOG_50),
);

function writeSlice(name: string, bytes: Buffer): string {
  const file = path.join(dir, name);
  writeFileSync(file, bytes);
  return file;
}

async function runCli(args: string[]): Promise<{ stdout: string; error?: Error }> {
  let stdout = "";
  const command = slicesCommand({ stdout: (text) => (stdout += text) });
  for (const sub of [command, ...command.commands]) {
    sub
      .exitOverride()
      .configureOutput({ writeOut: (text) => (stdout += text), writeErr: (text) => (stdout += text) });
  }
  try {
    await command.parseAsync(["node", "tidemark-slices", ...args]);
    return { stdout };
  } catch (error) {
    return { stdout, error: error as Error };
  }
}

describe("tidemark slices inspect", () => {
  it("prints a readable summary of an intact slice", async () => {
    const file = writeSlice("ok.slice", oplogSlice);
    const { stdout, error } = await runCli(["inspect", file]);
    expect(error).toBeUndefined();
    expect(stdout).toMatch(/^file +.*ok\.slice \([\d,]+ bytes\)$/m);
    expect(stdout).toMatch(/^status +ok/m);
    expect(stdout).toMatch(/^kind +oplog$/m);
    expect(stdout).toMatch(/^sequence +12$/m);
    expect(stdout).toMatch(/^documents +124 \(found 124\)$/m);
    expect(stdout).toMatch(/^optimes +Timestamp\(\d+, \d+\) term \d+ \.\. Timestamp\(\d+, \d+\) term \d+$/m);
    expect(stdout).toMatch(/^size +[\d,]+ bytes -> [\d,]+ bytes \(zstd, [\d.]+:1\)$/m);
    expect(stdout).toMatch(/^created +2024-05-01T12:00:00.000Z$/m);
  });

  it("prints the summary as JSON with --json", async () => {
    const file = writeSlice("json.slice", oplogSlice);
    const { stdout, error } = await runCli(["inspect", "--json", file]);
    expect(error).toBeUndefined();
    expect(JSON.parse(stdout)).toEqual(inspectSlice(oplogSlice));
  });

  it("shows a documents slice's last _id", async () => {
    const slice = encodeSlice(
      { kind: "documents", deployment: "d", stream: "documents/a.b", sequence: 0, namespace: "a.b" },
      fixtureDocuments(SAMPLE),
    );
    const { stdout } = await runCli(["inspect", writeSlice("docs.slice", slice)]);
    expect(stdout).toMatch(/^last _id +\{"\$oid":"546652254bf6e4cb017c5315"\}$/m);
    expect(stdout).toMatch(/^namespace +a\.b$/m);
  });

  it("fails with the error code and message for a damaged slice", async () => {
    const damaged = Buffer.from(oplogSlice);
    damaged[damaged.length - 1] ^= 0xff;
    const file = writeSlice("damaged.slice", damaged);
    const { stdout, error } = await runCli(["inspect", file]);
    expect(error?.message).toMatch(/damaged\.slice: BODY_CHECKSUM: .*SHA-256.*re-sends it/);
    expect(stdout).toMatch(/^status +BODY_CHECKSUM /m);
    expect(stdout).toMatch(/^kind +oplog$/m); // what could still be read is shown

    const json = await runCli(["inspect", "--json", file]);
    expect(json.error?.message).toMatch(/BODY_CHECKSUM/);
    expect(JSON.parse(json.stdout).status).toBe("BODY_CHECKSUM");
  });

  it("fails for a file that is not a slice, or is missing", async () => {
    const notSlice = await runCli(["inspect", writeSlice("plain.bson", Buffer.from("hello"))]);
    expect(notSlice.error?.message).toMatch(/BAD_MAGIC: not a Tidemark slice/);
    const missing = await runCli(["inspect", path.join(dir, "nope.slice")]);
    expect(missing.error?.message).toMatch(/cannot read .*nope\.slice/);
  });

  it("documents itself with an example in --help", async () => {
    const { stdout } = await runCli(["inspect", "--help"]);
    expect(stdout).toMatch(/Usage: tidemark-slices inspect|Usage: slices inspect/);
    expect(stdout).toMatch(/--json/);
    expect(stdout).toMatch(/\$ tidemark slices inspect /);
    const top = await runCli(["--help"]);
    expect(top.stdout).toMatch(/inspect \[options\] <file>/);
  });

  it("is a commander Command named slices", () => {
    const command: Command = slicesCommand();
    expect(command.name()).toBe("slices");
    expect(command.commands.map((c) => c.name())).toEqual(["inspect", "list"]);
  });
});
