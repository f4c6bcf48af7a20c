/**
 * Reads a snapshot's collections back, whatever store holds it: a block store's chain of runs
 * merged in `_id` order (merge.ts), or the file system store's data file. Every block or file is
 * checked against its hash as it is read; a damaged one is an error naming it.
 */
import type { FsSnapshotStore } from "./fsStore/index.js";
import type { ManifestCollection, SnapshotManifest } from "./manifest.js";
import type { DocumentEntry } from "./block.js";
import { DOCUMENTS_PER_BATCH, inBatches } from "./batches.js";
import { checkChain, mergeChain } from "./merge.js";
import { RunReader } from "./run.js";
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
  for await (const batch of readCollectionBatches(manifest, collection, source, options))
    for (const document of batch) yield document;
}

/**
 * The same documents in batches: a block's live documents at a time when the chain is a base
 * alone (every full snapshot), else a few hundred merged ones. For bulk reads (the HTTP stream of a
 * restore), where a step per document would cost more than the document.
 */
export async function* readCollectionBatches(
  manifest: SnapshotManifest,
  collection: ManifestCollection,
  source: SnapshotSource,
  options: ReadOptions = {},
): AsyncGenerator<readonly Buffer[]> {
  if (collection.type === "view") return;
  if (source.kind === "fs") {
    yield* inBatches(source.files.documents(manifest.snapshotId, collection.namespace), DOCUMENTS_PER_BATCH);
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
  const getBlock = (hash: string) => source.blocks.get(hash);
  const readerOptions = { checkIdKeys: options.checkIdKeys, open: source.sealer?.open };
  if (runs.length === 1) {
    checkChain(runs);
    for await (const entries of new RunReader(runs[0], getBlock, readerOptions).blocks())
      yield entries.flatMap((entry) => (entry.deleted ? [] : [entry.doc]));
    return;
  }
  yield* inBatches(documentsOf(mergeChain(runs, getBlock, readerOptions)), DOCUMENTS_PER_BATCH);
}

async function* documentsOf(entries: AsyncIterable<DocumentEntry>): AsyncGenerator<Buffer> {
  for await (const entry of entries) yield entry.doc;
}
