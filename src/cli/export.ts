import { Command } from "commander";
import type { ExportProgress, ExportResult } from "../restore/export.js";
import { CliError } from "./apiClient.js";
import { formatBytes, printJson, table } from "./output.js";
import { openRestoreSource, type SourceOptions } from "./restoreSource.js";

/** Exit codes: 0 exported; 2 nothing exported (bad input, the destination exists, a damaged snapshot). */
const EXIT_FAILED = 2;

interface ExportOptions extends SourceOptions {
  out?: string;
  archive?: string;
  gzip: boolean;
  json: boolean;
}

/** One line per collection on a terminal, rewritten in place; nothing otherwise. */
function progressLine(): { onProgress?: (p: ExportProgress) => void; stop(): void } {
  if (!process.stderr.isTTY) return { stop() {} };
  let open = false;
  return {
    onProgress(p) {
      process.stderr.write(
        `\r${p.namespace}: ${p.documents}/${p.totalDocuments} documents${p.done ? "\n" : ""}`,
      );
      open = !p.done;
    },
    stop() {
      if (open) process.stderr.write("\n");
    },
  };
}

function describe(result: ExportResult, label: string): string {
  const rows = [["COLLECTION", "TYPE", "DOCUMENTS", "BYTES", "FILE"]];
  for (const c of result.collections)
    rows.push([
      c.namespace,
      c.type,
      String(c.documents),
      formatBytes(c.bytes),
      c.file ?? c.metadataFile ?? "",
    ]);
  const what = result.format === "directory" ? "mongodump directory" : "mongodump archive";
  return (
    `${table(rows)}\n${label} → ${what} ${result.path}` +
    `${result.gzip ? " (gzip)" : ""}, ${formatBytes(result.bytesWritten)}\n`
  );
}

async function exportSnapshot(opts: ExportOptions): Promise<void> {
  if ((opts.out === undefined) === (opts.archive === undefined))
    throw new CliError(
      "give either --out DIR or --archive FILE",
      "--out writes a mongodump directory, --archive a mongodump archive file",
      EXIT_FAILED,
    );
  const { exportArchive, exportDirectory, ExportMismatchError, ExportTargetExistsError } =
    await import("../restore/export.js");
  const source = await openRestoreSource(opts, "exported");
  const manifest = { collections: source.collections };
  const documentsOf = (c: { namespace: string }) => source.documentsOf(c.namespace)();
  const progress = progressLine();
  let result: ExportResult;
  try {
    const options = { gzip: opts.gzip, onProgress: progress.onProgress };
    result =
      opts.out !== undefined
        ? await exportDirectory(opts.out, manifest, documentsOf, options)
        : await exportArchive(opts.archive!, manifest, documentsOf, options);
  } catch (error) {
    if (error instanceof ExportTargetExistsError)
      throw new CliError(error.message, "choose a new path, or remove the old export first", EXIT_FAILED);
    if (error instanceof ExportMismatchError)
      throw new CliError(
        `export of ${source.label} failed (nothing was kept): ${error.message}`,
        source.checkHint,
        EXIT_FAILED,
      );
    if (error instanceof CliError) throw error;
    throw new CliError(
      `export of ${source.label} failed (nothing was kept): ${(error as Error).message}`,
      undefined,
      EXIT_FAILED,
    );
  } finally {
    progress.stop();
    await source.release();
  }
  if (opts.json) printJson({ ...source.describe, ...result });
  else process.stdout.write(describe(result, source.label));
}

export function exportCommand(): Command {
  return new Command("export")
    .description(
      "Write a snapshot, or a deployment at a point in time, as mongodump output: a directory or an archive (uses TIDEMARK_URL, TIDEMARK_API_KEY)",
    )
    .option("--snapshot <id>", "the snapshot to export (tidemark snapshots list NAME)")
    .option("--deployment <name>", "export this deployment at a point in time (with --at or --at-ts)")
    .option("--at <time>", "ISO 8601 wall time, e.g. 2026-11-24T10:15:30Z: every oplog entry of that second")
    .option("--at-ts <seconds:increment>", "an oplog timestamp: up to and including that entry")
    .option("--out <dir>", "write a mongodump directory (<dir>/<db>/<coll>.bson, .metadata.json)")
    .option("--archive <file>", "write a mongodump archive file (mongodump --archive)")
    .option("--gzip", "gzip the files (directory) or the whole archive, as mongodump --gzip", false)
    .option("--json", "print the result as JSON", false)
    .addHelpText(
      "after",
      `
Streams each collection from the server and writes what mongorestore (and tidemark import) reads:
mongodump's file names and metadata.json (views as metadata only, time series as their buckets),
or the archive format with its CRC-64s. The export is written under a temporary name and renamed
at the end; an existing file or non-empty directory is never overwritten. Each collection's count
and MD5 are checked against the snapshot's manifest (a point in time: against the server's
materialised copy). Exit codes: 0 exported; 2 nothing exported
(bad input, the destination exists, a damaged snapshot).

Examples:
  $ tidemark export --snapshot 3f2a... --out ./dump --gzip
  $ tidemark export --snapshot 3f2a... --archive shop.archive.gz --gzip
  $ tidemark export --deployment rs0 --at 2026-11-24T10:15:30Z --archive rs0.archive
  $ mongorestore --gzip --archive=shop.archive.gz --uri "$TARGET"`,
    )
    .action(exportSnapshot);
}
