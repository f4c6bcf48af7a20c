/**
 * A snapshot's manifest (DESIGN.md "Snapshots"): what the snapshot holds and where, as JSON in the
 * catalog (and, for the file system store, beside the files). Options and index specs are
 * canonical Extended JSON so every BSON type in them (collations, partial filters with dates)
 * survives the round trip to a restore.
 */
import { z } from "zod";
import { RunDescriptor } from "./run.js";

export const STORE_KINDS = ["blockstore", "s3", "fs"] as const;
export type StoreKind = (typeof STORE_KINDS)[number];

const count = z.number().int().nonnegative();

export const ManifestCollection = z.object({
  namespace: z.string(),
  db: z.string(),
  name: z.string(),
  type: z.enum(["collection", "view", "timeseries"]),
  /** The collection UUID as 32 hex digits; null for a view. */
  uuid: z
    .string()
    .regex(/^[0-9a-f]{32}$/)
    .nullable(),
  /** Canonical Extended JSON. */
  options: z.record(z.string(), z.unknown()),
  indexes: z.array(z.record(z.string(), z.unknown())),
  count,
  /** Sum of the documents' BSON sizes. */
  bytes: count,
  /** MD5 of the documents' BSON in `_id` order, as MongoDB's dbHash computes it; null for a view. */
  md5: z
    .string()
    .regex(/^[0-9a-f]{32}$/)
    .nullable(),
  /** Block stores: the chain of runs, base first (empty for a view). */
  runs: z.array(RunDescriptor).optional(),
  /** File system store: the data file, relative to the snapshot's directory. */
  file: z.string().optional(),
});
export type ManifestCollection = z.infer<typeof ManifestCollection>;

export const SnapshotManifest = z.object({
  format: z.literal(1),
  snapshotId: z.string(),
  deploymentId: z.string(),
  deploymentName: z.string(),
  /** The applied optime T. */
  ts: z.object({ t: count, i: count }),
  /** Wall time of T (ISO 8601): the oplog's clock, to the second. */
  wallTime: z.string(),
  store: z.string(),
  storeKind: z.enum(STORE_KINDS),
  /** The head database it was read from: deltas build only on a snapshot of the same one. */
  headId: z.string(),
  /** The head database's change number at T (see src/headdb/changes.ts). */
  changeNumber: count,
  /**
   * The ts of the oldest oplog entry of a transaction still open at T (held, not applied): a
   * point-in-time restore from this snapshot reads the oplog from there. Absent when none was.
   */
  heldFrom: z.object({ t: count, i: count }).optional(),
  /** Blocks (or files) are sealed with AES-256-GCM data keys (src/snapshot/encryption). */
  encrypted: z.boolean(),
  collections: z.array(ManifestCollection),
  /** Per database, dbHash's `md5` over its collections. */
  databases: z.array(z.object({ name: z.string(), md5: z.string() })),
});
export type SnapshotManifest = z.infer<typeof SnapshotManifest>;

/** Reads a manifest from the catalog; a damaged one is an error naming the snapshot. */
export function parseManifest(value: unknown, snapshotId: string): SnapshotManifest {
  const parsed = SnapshotManifest.safeParse(value);
  if (!parsed.success) {
    throw new Error(
      `snapshot ${snapshotId}: its manifest is damaged (${z.prettifyError(parsed.error)}); ` +
        "the catalog was changed outside Tidemark or is corrupt",
    );
  }
  return parsed.data;
}

/** Every block a manifest refers to, once each. */
export function manifestBlocks(manifest: SnapshotManifest): Set<string> {
  const hashes = new Set<string>();
  for (const collection of manifest.collections)
    for (const run of collection.runs ?? []) for (const block of run.blocks) hashes.add(block.hash);
  return hashes;
}
