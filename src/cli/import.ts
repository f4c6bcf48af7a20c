import { Command } from "commander";
import type { ImportResult } from "../restore/import.js";
import { CliError } from "./apiClient.js";
import { printJson, table } from "./output.js";
import {
  addLoadOptions,
  collectionProgressBars,
  EXIT_NOT_LOADED,
  loadFailure,
  loadResultRows,
} from "./loading.js";

/** Exit codes: 1 imported but a collection does not match its documents; 2 no import. */
const EXIT_MISMATCH = 1;

interface ImportOptions {
  to: string;
  drop: boolean;
  nsInclude: string[];
  nsExclude: string[];
  parallel: number;
  verify: boolean;
  json: boolean;
}

function describe(result: ImportResult, target: string): string {
  const rows = loadResultRows(result, (namespace) =>
    result.unverified.some((u) => u.namespace === namespace)
      ? "loaded (not in _id order, not verified)"
      : undefined,
  );
  for (const s of result.skipped) rows.push([s.namespace, `not imported: ${s.reason}`, "", "", ""]);
  const summary = result.verified
    ? `every collection imported ${result.verification.length > 0 ? "and matching its documents' dbHash" : "(not verified)"}`
    : "some collections do NOT match the dump's documents";
  return `${table(rows)}\n${result.format} ${result.path} → ${target}: ${summary}\n`;
}

async function importAction(location: string, opts: ImportOptions): Promise<void> {
  const { importDump, ImportSourceError } = await import("../restore/import.js");
  const { redactUri } = await import("../restore/loader/index.js");
  const bars = collectionProgressBars();
  let result: ImportResult;
  try {
    result = await importDump({
      path: location,
      uri: opts.to,
      drop: opts.drop,
      include: opts.nsInclude,
      exclude: opts.nsExclude,
      parallel: opts.parallel,
      verify: opts.verify,
      onProgress: bars.onProgress,
      log: (line) => process.stderr.write(`${line}\n`),
    });
  } catch (error) {
    if (error instanceof ImportSourceError)
      throw new CliError(
        error.message,
        "give a mongodump directory (dump/<db>/<coll>.bson) or a mongodump --archive file",
        EXIT_NOT_LOADED,
      );
    throw loadFailure(
      error,
      `import of ${location}`,
      "add --drop to replace them, or --ns-exclude to leave them out",
      { json: opts.json },
    );
  } finally {
    bars.stop();
  }
  if (opts.json) printJson({ to: redactUri(opts.to), ...result });
  else process.stdout.write(describe(result, redactUri(opts.to)));
  if (!result.verified) process.exitCode = EXIT_MISMATCH;
}

export function importCommand(): Command {
  const command = new Command("import")
    .description("Load mongodump output (a directory or an archive) into a MongoDB deployment")
    .argument(
      "<path>",
      "a mongodump directory (plain or --gzip) or a mongodump --archive file (plain or gzipped)",
    )
    .requiredOption("--to <uri>", "the target deployment's MongoDB URI");
  return addLoadOptions(command, "import")
    .addHelpText(
      "after",
      `
Reads what mongodump (or tidemark export) wrote: creates the collections with their metadata's
options and the views, loads the documents, builds the indexes, then compares each collection's
dbHash on the target with the MD5 of the documents as read (when they were read in _id order, the
order dbHash hashes in; a collection dumped in another order is checked by its count only). Archive CRC-64s are checked as the archive is read.
Not imported, with a note: the oplog (--oplog dumps), admin.system.* (users, roles), the local and
config databases. Exit codes: 0 imported and matching; 1 imported but a collection does not match;
2 no import (a missing path, not a dump, target unreachable, namespaces exist without --drop).

Examples:
  $ tidemark import ./dump --to mongodb://127.0.0.1:27018/?directConnection=true
  $ tidemark import shop.archive.gz --to "$TARGET" --drop --ns-include 'shop.*' --json`,
    )
    .action(importAction);
}
