/**
 * Reads a snapshot's collections back, whatever store holds it: a block store's chain of runs
 * merged in `_id` order (merge.ts), or the file system store's data file. Every block or file is
 * checked against its hash as it is read; a damaged one is an error naming it.
 */
import type { FsSnapshotStore } from "./fsStore/index.js";
import type { ManifestCollection, SnapshotManifest } from "./manifest.js";
import { mergeChain } from "./merge.js";
import type { BlockStore } from "./stores/index.js";
import type { Sealer } from "./writer.js";

/** Where a snapshot is read from. */
export type SnapshotSource =
  { kind: "blocks"; blocks: BlockStore; sealer?: Sealer } | { kind: "fs"; files: FsSnapshotStore };

export interface ReadOptions {
  /** Also check that each document's key is its `_id`'s (verification). */
  checkIdKeys?: boolean;
}

/** The documents of one collection of the snapshot, in `_id` order, as raw BSON. */
export async function* readCollection(
  manifest: SnapshotManifest,
  collection: ManifestCollection,
  source: SnapshotSource,
  options: ReadOptions = {},
): AsyncGenerator<Buffer> {
  if (collection.type === "view") return;
  if (source.kind === "fs") {
    yield* source.files.documents(manifest.snapshotId, collection.namespace);
    return;
  }
  if (manifest.encrypted && !source.sealer) {
    throw new Error(
      `snapshot ${manifest.snapshotId} is encrypted: start the server with its master key ` +
        "(--encryption-key-file or TIDEMARK_ENCRYPTION_KEY) to read it",
    );
  }
  const runs = collection.runs ?? [];
  if (runs.length === 0) return;
  for await (const entry of mergeChain(runs, (hash) => source.blocks.get(hash), {
    checkIdKeys: options.checkIdKeys,
    open: source.sealer?.open,
  }))
    yield entry.doc;
}
