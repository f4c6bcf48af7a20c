import { Command } from "commander";
import type { ExportProgress, ExportResult } from "../restore/export.js";
import { ApiClient, CliError } from "./apiClient.js";
import { formatBytes, printJson, table } from "./output.js";
import { completeSnapshotManifest, documentsFrom } from "./snapshotSource.js";

/** Exit codes: 0 exported; 2 nothing exported (bad input, the destination exists, a damaged snapshot). */
const EXIT_FAILED = 2;

interface ExportOptions {
  snapshot: string;
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

function describe(result: ExportResult, snapshotId: string): string {
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
    `${table(rows)}\nsnapshot ${snapshotId} → ${what} ${result.path}` +
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
  const api = ApiClient.fromEnvironment();
  const manifest = await completeSnapshotManifest(api, opts.snapshot, "exported");
  const documentsOf = (c: { namespace: string }) => documentsFrom(api, manifest.snapshotId, c.namespace)();
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
        `export of snapshot ${manifest.snapshotId} failed (nothing was kept): ${error.message}`,
        `run tidemark snapshots verify ${manifest.snapshotId}`,
        EXIT_FAILED,
      );
    if (error instanceof CliError) throw error;
    throw new CliError(
      `export of snapshot ${manifest.snapshotId} failed (nothing was kept): ${(error as Error).message}`,
      undefined,
      EXIT_FAILED,
    );
  } finally {
    progress.stop();
  }
  if (opts.json) printJson({ snapshotId: manifest.snapshotId, ...result });
  else process.stdout.write(describe(result, manifest.snapshotId));
}

export function exportCommand(): Command {
  return new Command("export")
    .description(
      "Write a snapshot as mongodump output, a directory or an archive (uses TIDEMARK_URL, TIDEMARK_API_KEY)",
    )
    .requiredOption("--snapshot <id>", "the snapshot to export (tidemark snapshots list NAME)")
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
and MD5 are checked against the snapshot's manifest. Exit codes: 0 exported; 2 nothing exported
(bad input, the destination exists, a damaged snapshot).

Examples:
  $ tidemark export --snapshot 3f2a... --out ./dump --gzip
  $ tidemark export --snapshot 3f2a... --archive shop.archive.gz --gzip
  $ mongorestore --gzip --archive=shop.archive.gz --uri "$TARGET"`,
    )
    .action(exportSnapshot);
}
