/**
 * What `restore` and `export` read: a snapshot (`--snapshot ID`) or a deployment at a point in
 * time (`--deployment NAME --at ISO | --at-ts S:I`), as collections described like a manifest's and
 * each collection's documents streamed from the server.
 */
import { parseAt, parseAtTs } from "../restore/jobs/request.js";
import type { ManifestCollection } from "../snapshot/manifest.js";
import { ApiClient, CliError } from "./apiClient.js";
import { openPointInTime } from "./pointInTimeSource.js";
import { completeSnapshotManifest, documentsFrom } from "./snapshotSource.js";

/** Exit code of a command that did nothing (bad input). */
const EXIT_FAILED = 2;

export interface SourceOptions {
  snapshot?: string;
  deployment?: string;
  at?: string;
  atTs?: string;
}

export interface RestoreSource {
  /** For messages: "snapshot 3f2a…" or "rs at 2026-11-24T10:15:30.000Z (1764000000:3)". */
  label: string;
  /** For --json output: the snapshot, or the point in time and the snapshot it started from. */
  describe: Record<string, unknown>;
  /** What the expected dbHashes come from: "the snapshot's", "the point in time's". */
  expected: string;
  /** The check to suggest when a collection does not match. */
  checkHint: string;
  collections: ManifestCollection[];
  documentsOf(namespace: string): () => AsyncIterable<Uint8Array>;
  /** Frees what the server holds for this read (a point in time's temporary head database). */
  release(): Promise<void>;
}

/** The source the options name; bad combinations are errors before anything is asked of the server. */
export async function openRestoreSource(opts: SourceOptions, what: string): Promise<RestoreSource> {
  const pointInTime = opts.at !== undefined || opts.atTs !== undefined;
  if ((opts.snapshot === undefined) === (opts.deployment === undefined))
    throw new CliError(
      "give either --snapshot ID, or --deployment NAME with --at or --at-ts",
      "tidemark snapshots list NAME shows the snapshots; tidemark restore ranges NAME the points in time",
      EXIT_FAILED,
    );
  if (opts.snapshot !== undefined && pointInTime)
    throw new CliError("--at and --at-ts go with --deployment, not --snapshot", undefined, EXIT_FAILED);
  if (opts.deployment !== undefined && (opts.at === undefined) === (opts.atTs === undefined))
    throw new CliError(
      "a point in time needs exactly one of --at and --at-ts",
      "--at 2026-11-24T10:15:30Z (every entry of that second) or --at-ts 1764000000:3 (up to that oplog entry)",
      EXIT_FAILED,
    );
  if (opts.at !== undefined && parseAt(opts.at) === undefined)
    throw new CliError(
      `--at ${opts.at}: not an ISO 8601 time with a zone`,
      "for example --at 2026-11-24T10:15:30Z",
      EXIT_FAILED,
    );
  if (opts.atTs !== undefined && parseAtTs(opts.atTs) === undefined)
    throw new CliError(
      `--at-ts ${opts.atTs}: not seconds:increment`,
      "for example --at-ts 1764000000:3",
      EXIT_FAILED,
    );

  const api = ApiClient.fromEnvironment();
  if (opts.snapshot !== undefined) {
    const manifest = await completeSnapshotManifest(api, opts.snapshot, what);
    return {
      label: `snapshot ${manifest.snapshotId}`,
      describe: { snapshotId: manifest.snapshotId },
      expected: "the snapshot's",
      checkHint: `run tidemark snapshots verify ${manifest.snapshotId}`,
      collections: manifest.collections,
      documentsOf: (namespace) => documentsFrom(api, manifest.snapshotId, namespace),
      release: async () => {},
    };
  }
  const point = await openPointInTime(api, { deployment: opts.deployment!, at: opts.at, atTs: opts.atTs });
  const when = `${new Date(point.ts.t * 1000).toISOString()} (${point.ts.t}:${point.ts.i})`;
  return {
    label: `${point.deploymentName} at ${when}`,
    describe: {
      deployment: point.deploymentName,
      pointInTime: point.ts,
      baseSnapshotId: point.baseSnapshotId,
      restoreId: point.jobId,
    },
    expected: "the point in time's",
    checkHint: `run tidemark snapshots verify ${point.baseSnapshotId}`,
    collections: point.collections,
    documentsOf: point.documentsOf,
    release: point.release,
  };
}
