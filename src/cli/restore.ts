import { Command } from "commander";
import type { LoadResult } from "../restore/loader/index.js";
import { CliError } from "./apiClient.js";
import { printJson, table } from "./output.js";
import {
  addLoadOptions,
  collect,
  collectionProgressBars,
  EXIT_NOT_LOADED,
  loadFailure,
  loadResultRows,
} from "./loading.js";
import { openRestoreSource, type RestoreSource, type SourceOptions } from "./restoreSource.js";
import { restoreJobsCommand } from "./restoreJobs.js";
import { restoreRangesCommand } from "./restoreRanges.js";

/** Exit codes: 1 the restore ran but a collection does not match the snapshot; 2 no restore. */
const EXIT_MISMATCH = 1;

interface RestoreOptions extends SourceOptions {
  to?: string;
  drop: boolean;
  nsInclude: string[];
  nsExclude: string[];
  nsFrom: string[];
  nsTo: string[];
  parallel: number;
  verify: boolean;
  json: boolean;
}

function describe(result: LoadResult, source: RestoreSource, target: string): string {
  const rows = loadResultRows(result, () => undefined);
  const summary = result.verified
    ? `every collection restored ${result.verification.length > 0 ? `and matching ${source.expected} dbHash` : "(not verified)"}`
    : `some collections do NOT match ${source.expected} dbHash`;
  return `${table(rows)}\n${source.label} → ${target}: ${summary}\n`;
}

async function restore(opts: RestoreOptions): Promise<void> {
  // Loaded when run: the driver is not needed by the other commands.
  const { connectTarget, createNamespaceRenamer, loadCollections, loaderCollectionOf, redactUri } =
    await import("../restore/loader/index.js");
  if (opts.nsFrom.length !== opts.nsTo.length)
    throw new CliError(
      "--ns-from and --ns-to go in pairs",
      "for example --ns-from 'shop.*' --ns-to 'shop_copy.*'",
      EXIT_NOT_LOADED,
    );
  if (opts.to === undefined)
    throw new CliError("--to is required: the MongoDB URI to restore into", undefined, EXIT_NOT_LOADED);
  const existsHint = "add --drop to replace them, or --ns-from/--ns-to to restore under other names";
  // The target first: an unreachable one or wrong credentials stop the restore before the
  // server does any work (a point in time is materialised first).
  const client = await connectTarget(opts.to).catch((error: unknown) => {
    throw loadFailure(error, `restore into ${redactUri(opts.to!)}`, existsHint, { json: opts.json });
  });
  let source: RestoreSource;
  try {
    source = await openRestoreSource(opts, "restored");
  } catch (error) {
    await client.close();
    throw error;
  }
  const bars = collectionProgressBars();
  let result: LoadResult;
  try {
    result = await loadCollections({
      client,
      collections: source.collections.map((c) => loaderCollectionOf(c, source.documentsOf(c.namespace))),
      drop: opts.drop,
      include: opts.nsInclude,
      exclude: opts.nsExclude,
      rename: opts.nsFrom.length
        ? createNamespaceRenamer(opts.nsFrom.map((from, k) => ({ from, to: opts.nsTo[k] })))
        : undefined,
      parallel: opts.parallel,
      verify: opts.verify,
      onProgress: bars.onProgress,
      log: (line) => process.stderr.write(`${line}\n`),
    });
  } catch (error) {
    throw loadFailure(error, `restore of ${source.label}`, existsHint, { json: opts.json });
  } finally {
    bars.stop();
    await client.close();
    await source.release();
  }
  // A stream cut at a document boundary would go unnoticed by the framing: counts say so.
  const short = result.collections.filter((c) => {
    const expected = source.collections.find((m) => m.namespace === c.source);
    return c.status === "restored" && c.type === "collection" && expected && expected.count !== c.documents;
  });
  if (opts.json) printJson({ ...source.describe, to: redactUri(opts.to), ...result });
  else process.stdout.write(describe(result, source, redactUri(opts.to)));
  if (short.length > 0)
    throw new CliError(
      `incomplete: ${short.map((c) => c.namespace).join(", ")} got fewer documents than ${source.label} holds`,
      `${source.checkHint}, then restore again with --drop`,
      EXIT_NOT_LOADED,
    );
  if (!result.verified) process.exitCode = EXIT_MISMATCH;
}

export function restoreCommand(): Command {
  const command = new Command("restore")
    .description(
      "Restore a snapshot, or a deployment at any point in time, into a MongoDB deployment (uses TIDEMARK_URL, TIDEMARK_API_KEY)",
    )
    .option("--snapshot <id>", "the snapshot to restore (tidemark snapshots list NAME)")
    .option("--deployment <name>", "restore this deployment at a point in time (with --at or --at-ts)")
    .option("--at <time>", "ISO 8601 wall time, e.g. 2026-11-24T10:15:30Z: every oplog entry of that second")
    .option("--at-ts <seconds:increment>", "an oplog timestamp: up to and including that entry")
    .option("--to <uri>", "the target deployment's MongoDB URI (its credentials stay on this machine)");
  return addLoadOptions(command, "restore")
    .option(
      "--ns-from <pattern>",
      "rename: source namespace pattern, e.g. 'shop.$coll$' (with --ns-to)",
      collect,
      [],
    )
    .option("--ns-to <pattern>", "rename: target namespace pattern, e.g. 'shop_copy.$coll$'", collect, [])
    .addHelpText(
      "after",
      `
Creates the collections with their options and the views, loads the documents in parallel raw
batches, builds each collection's indexes after its data, then compares each collection's dbHash
on the target with the expected one. A point in time is the newest snapshot at or before it, plus
the oplog up to and including it, applied by the server in a temporary head database first
(tidemark restore ranges NAME lists the points that can be restored). Exit codes: 0 restored and
matching; 1 restored but a collection does not match; 2 no restore or not all of it (bad input,
a point outside the ranges, target unreachable, namespaces exist without --drop, a damaged
snapshot; an interrupted restore lists the namespaces that are complete).

Examples:
  $ tidemark restore --snapshot 3f2a... --to mongodb://127.0.0.1:27018/?directConnection=true
  $ tidemark restore --snapshot 3f2a... --to "$TARGET" --drop --ns-include 'shop.*' --json
  $ tidemark restore --deployment rs0 --at 2026-11-24T10:15:30Z --to "$TARGET"
  $ tidemark restore --deployment rs0 --at-ts 1764000000:3 --to "$TARGET" --drop
  $ tidemark restore ranges rs0
  $ tidemark restore jobs`,
    )
    .addCommand(restoreRangesCommand())
    .addCommand(restoreJobsCommand())
    .action(restore);
}
