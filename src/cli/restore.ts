import { Command, Option } from "commander";
import type { LoaderCollection, LoadResult } from "../restore/loader/index.js";
import type { SnapshotManifest } from "../snapshot/manifest.js";
import { ApiClient, CliError } from "./apiClient.js";
import { formatBytes, printJson, table } from "./output.js";
import { collectionProgressBars, EXIT_NOT_LOADED, loadFailure } from "./loading.js";
import { positiveInteger } from "./parsers.js";
import { completeSnapshotManifest, documentsFrom } from "./snapshotSource.js";

/** Exit codes: 1 the restore ran but a collection does not match the snapshot; 2 no restore. */
const EXIT_MISMATCH = 1;

interface RestoreOptions {
  snapshot: string;
  to: string;
  drop: boolean;
  nsInclude: string[];
  nsExclude: string[];
  nsFrom: string[];
  nsTo: string[];
  parallel: number;
  verify: boolean;
  json: boolean;
}

const collect = (value: string, previous: string[] = []) => [...previous, value];

function collectionsOf(api: ApiClient, manifest: SnapshotManifest): LoaderCollection[] {
  return manifest.collections.map((c) => ({
    namespace: c.namespace,
    type: c.type,
    options: c.options,
    indexes: c.indexes,
    md5: c.md5,
    count: c.count,
    bytes: c.bytes,
    documents: c.type === "view" ? undefined : documentsFrom(api, manifest.snapshotId, c.namespace),
  }));
}

function describe(result: LoadResult, manifest: SnapshotManifest, target: string): string {
  const rows = [["COLLECTION", "RESULT", "DOCUMENTS", "BYTES", "INDEXES"]];
  const verified = new Map(result.verification.map((v) => [v.namespace, v.match]));
  for (const c of result.collections) {
    const check = verified.get(c.namespace);
    const status =
      c.status === "skipped"
        ? `skipped: ${c.message ?? ""}`
        : check === undefined
          ? c.type
          : check
            ? "match"
            : "MISMATCH";
    rows.push([c.namespace, status, String(c.documents), formatBytes(c.bytes), String(c.indexes.length)]);
  }
  const summary = result.verified
    ? `every collection restored ${result.verification.length > 0 ? "and matching the snapshot's dbHash" : "(not verified)"}`
    : "some collections do NOT match the snapshot";
  return `${table(rows)}\nsnapshot ${manifest.snapshotId} (${manifest.deploymentName} at ${manifest.ts.t}:${manifest.ts.i}) → ${target}: ${summary}\n`;
}

async function restore(opts: RestoreOptions): Promise<void> {
  // Loaded when run: the driver is not needed by the other commands.
  const { createNamespaceRenamer, loadCollections, redactUri } = await import("../restore/loader/index.js");
  if (opts.nsFrom.length !== opts.nsTo.length)
    throw new CliError(
      "--ns-from and --ns-to go in pairs",
      "for example --ns-from 'shop.*' --ns-to 'shop_copy.*'",
      EXIT_NOT_LOADED,
    );
  const api = ApiClient.fromEnvironment();
  const manifest = await completeSnapshotManifest(api, opts.snapshot, "restored");
  const bars = collectionProgressBars();
  let result: LoadResult;
  try {
    result = await loadCollections({
      uri: opts.to,
      collections: collectionsOf(api, manifest),
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
    throw loadFailure(
      error,
      `restore of snapshot ${manifest.snapshotId}`,
      "add --drop to replace them, or --ns-from/--ns-to to restore under other names",
      { json: opts.json },
    );
  } finally {
    bars.stop();
  }
  // A stream cut at a document boundary would go unnoticed by the framing: counts say so.
  const short = result.collections.filter((c) => {
    const expected = manifest.collections.find((m) => m.namespace === c.source);
    return c.status === "restored" && c.type === "collection" && expected && expected.count !== c.documents;
  });
  if (opts.json) printJson({ snapshotId: manifest.snapshotId, to: redactUri(opts.to), ...result });
  else process.stdout.write(describe(result, manifest, redactUri(opts.to)));
  if (short.length > 0)
    throw new CliError(
      `incomplete: ${short.map((c) => c.namespace).join(", ")} got fewer documents than the snapshot holds`,
      `run tidemark snapshots verify ${manifest.snapshotId}, then restore again with --drop`,
      EXIT_NOT_LOADED,
    );
  if (!result.verified) process.exitCode = EXIT_MISMATCH;
}

export function restoreCommand(): Command {
  return new Command("restore")
    .description("Restore a snapshot into a MongoDB deployment (uses TIDEMARK_URL, TIDEMARK_API_KEY)")
    .requiredOption("--snapshot <id>", "the snapshot to restore (tidemark snapshots list NAME)")
    .requiredOption(
      "--to <uri>",
      "the target deployment's MongoDB URI (its credentials stay on this machine)",
    )
    .option(
      "--drop",
      "drop target collections that exist (otherwise the restore refuses before writing)",
      false,
    )
    .option(
      "--ns-include <pattern>",
      "restore only matching namespaces, e.g. 'shop.*' (repeatable)",
      collect,
      [],
    )
    .option("--ns-exclude <pattern>", "skip matching namespaces (repeatable)", collect, [])
    .option(
      "--ns-from <pattern>",
      "rename: source namespace pattern, e.g. 'shop.$coll$' (with --ns-to)",
      collect,
      [],
    )
    .option("--ns-to <pattern>", "rename: target namespace pattern, e.g. 'shop_copy.$coll$'", collect, [])
    .option("--parallel <n>", "collections loaded at once", positiveInteger, 4)
    .addOption(new Option("--no-verify", "skip the dbHash comparison with the snapshot at the end"))
    .option("--json", "print the result as JSON", false)
    .addHelpText(
      "after",
      `
Creates the collections with their options and the views, loads the documents in parallel raw
batches, builds the indexes after the data, then compares each collection's dbHash on the target
with the snapshot's. Exit codes: 0 restored and matching; 1 restored but a collection does not
match; 2 no restore (bad input, target unreachable, namespaces exist without --drop, a damaged
snapshot).

Examples:
  $ tidemark restore --snapshot 3f2a... --to mongodb://127.0.0.1:27018/?directConnection=true
  $ tidemark restore --snapshot 3f2a... --to "$TARGET" --drop --ns-include 'shop.*' --json`,
    )
    .action(restore);
}
