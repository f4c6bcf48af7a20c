/**
 * Writes a snapshot of a head database at its applied optime T (DESIGN.md "Snapshots"): everything
 * is read in one consistent read transaction while the daemon keeps applying.
 *
 * Block stores (blockstore, s3): per collection, a chain of sorted runs. If the previous snapshot
 * in the same store has a chain for the collection (same UUID, not emptied or dropped since), and
 * the chain is short and its deltas small, the collection gets a delta run of the documents
 * changed since the previous snapshot's change number (deletion markers for the gone ones), or no
 * new run at all when nothing changed; otherwise a new base run of every document. Blocks go to
 * the store once (content addressed); `storedBytes` counts only those this snapshot stored first.
 *
 * File system store: a full mongodump-layout copy of every collection (fsStore/).
 *
 * Per collection the manifest also gets count, bytes and dbHash's MD5, from a scan of the same
 * read transaction.
 */
import { createHash } from "node:crypto";
import type { UUID } from "bson";
import type { HeadDatabase, HeadSnapshot, NamespaceEntry } from "../headdb/index.js";
import type { Codec } from "../slice/codecs.js";
import type { FsSnapshotStore } from "./fsStore/index.js";
import type { ManifestCollection, SnapshotManifest, StoreKind } from "./manifest.js";
import { RunWriter, type BlockRef, type EncodedBlock, type RunDescriptor } from "./run.js";
import { CollectionDigest, databaseHashes, describeNamespace } from "./namespaceDescription.js";
import type { BlockStore } from "./stores/index.js";
import { withStoreLock } from "./storeLock.js";

/** Where a snapshot goes. */
export type SnapshotTarget =
  | { kind: "blockstore" | "s3"; blocks: BlockStore }
  | { kind: "fs"; files: FsSnapshotStore; location: string };

/** Encrypts stored bytes (blocks, files) and decrypts them (src/snapshot/encryption). */
export interface Sealer {
  seal(plain: Buffer): Buffer;
  open(sealed: Buffer): Buffer;
}

export interface SnapshotProgress {
  collections: number;
  collectionsDone: number;
  documentsDone: number;
  bytesDone: number;
}

export interface WriteSnapshotOptions {
  snapshotId: string;
  deploymentId: string;
  deploymentName: string;
  head: HeadDatabase;
  target: SnapshotTarget;
  /** The deployment's newest complete snapshot in the same store (block stores build on it). */
  previous?: SnapshotManifest;
  /** Still there? Asked (under the store lock) before the previous chain's blocks are reused. */
  previousStillComplete?: () => boolean;
  chain: { maxDeltas: number; maxDeltaFraction: number };
  /** Records that the snapshot refers to these blocks (the catalog), before they are stored. */
  referBlocks: (hashes: string[]) => void;
  sealer?: Sealer;
  codec?: Codec;
  targetBlockBytes?: number;
  onProgress?: (progress: SnapshotProgress) => void;
  /** Checked between collections and blocks: a stop or a deleted job ends the snapshot. */
  checkCancelled?: () => void;
  /** Test fault: a pause after each block (block stores) or each 1000 documents (fs store). */
  delayMs?: number;
}

export interface WrittenSnapshot {
  manifest: SnapshotManifest;
  logicalBytes: number;
  storedBytes: number;
}

/** Thrown when the head database has no applied optime yet. */
export class SnapshotNotReadyError extends Error {
  override readonly name = "SnapshotNotReadyError";
}

export async function writeSnapshot(options: WriteSnapshotOptions): Promise<WrittenSnapshot> {
  // Before the view opens, so every change after the view's number is recorded for the next one.
  options.head.write(() => options.head.changes.startTracking());
  return options.head.readSnapshot((snapshot) => writeFrom(snapshot, options));
}

async function writeFrom(snapshot: HeadSnapshot, options: WriteSnapshotOptions): Promise<WrittenSnapshot> {
  const applied = snapshot.appliedOptime();
  if (!applied) {
    throw new SnapshotNotReadyError(
      `deployment ${options.deploymentName}: the head database has applied nothing yet; ` +
        "wait for the initial sync to complete",
    );
  }
  const entries = snapshot.catalog.databases().flatMap((db) => snapshot.catalog.namespaces(db));
  const progress: SnapshotProgress = {
    collections: entries.length,
    collectionsDone: 0,
    documentsDone: 0,
    bytesDone: 0,
  };
  const target = options.target;
  const storedBytes = { value: 0 };
  let collections: ManifestCollection[];
  if (target.kind === "fs")
    collections = await writeFiles(snapshot, entries, target, options, progress, storedBytes);
  else {
    collections = [];
    for (const entry of entries) {
      options.checkCancelled?.();
      collections.push(
        await writeCollectionRuns(snapshot, entry, target.blocks, options, progress, storedBytes),
      );
      progress.collectionsDone++;
      options.onProgress?.(progress);
    }
  }
  const ts = { t: applied.ts.high, i: applied.ts.low };
  const heldFrom = snapshot.heldFrom();
  const manifest: SnapshotManifest = {
    format: 1,
    snapshotId: options.snapshotId,
    deploymentId: options.deploymentId,
    deploymentName: options.deploymentName,
    ts,
    wallTime: new Date(ts.t * 1000).toISOString(),
    store: target.kind === "fs" ? target.location : target.blocks.location,
    storeKind: target.kind as StoreKind,
    headId: snapshot.identity(),
    changeNumber: snapshot.changeNumber(),
    ...(heldFrom ? { heldFrom } : {}),
    encrypted: options.sealer !== undefined,
    collections,
    databases: databaseHashes(collections),
  };
  const logicalBytes = collections.reduce((sum, c) => sum + c.bytes, 0);
  return { manifest, logicalBytes, storedBytes: storedBytes.value };
}

async function writeCollectionRuns(
  snapshot: HeadSnapshot,
  entry: NamespaceEntry,
  store: BlockStore,
  options: WriteSnapshotOptions,
  progress: SnapshotProgress,
  storedBytes: { value: number },
): Promise<ManifestCollection> {
  const described = describeNamespace(entry);
  if (entry.type === "view") return { ...described, count: 0, bytes: 0, md5: null, runs: [] };
  const uuid = entry.collection.uuid;
  const sink = blockSink(store, options, storedBytes);
  const writerOptions = {
    codec: options.codec,
    targetBlockBytes: options.targetBlockBytes,
    seal: options.sealer?.seal,
  };
  const previous = previousEntry(snapshot, described.uuid!, uuid, options);
  const chain =
    previous && chainHasRoom(previous.runs!, options.chain)
      ? await referChain(previous.runs!, store, options)
      : undefined;
  if (chain && !hasChanges(snapshot, uuid, options.previous!.changeNumber)) {
    // Not one document changed since the previous snapshot: its chain and digest stand as they are.
    progress.documentsDone += previous!.count;
    progress.bytesDone += previous!.bytes;
    return { ...described, count: previous!.count, bytes: previous!.bytes, md5: previous!.md5, runs: chain };
  }
  const digest = new CollectionDigest();
  let runs: RunDescriptor[];
  if (!chain) {
    const writer = new RunWriter(sink, { ...writerOptions, kind: "base" });
    for (const { idKey, raw } of snapshot.documents.scan(uuid)) {
      digest.add(raw);
      // A copy: the writer may hold the entry across a store write, and LMDB may reuse its buffer.
      await writer.add({ key: idKey, doc: Buffer.from(raw) });
      countProgress(progress, raw.length, options);
    }
    runs = [await writer.finish()];
  } else {
    const writer = new RunWriter(sink, { ...writerOptions, kind: "delta" });
    for (const { idKey } of snapshot.changes.since(uuid, options.previous!.changeNumber)) {
      const raw = snapshot.documents.get(uuid, idKey);
      await writer.add(raw ? { key: idKey, doc: Buffer.from(raw) } : { key: idKey, deleted: true });
    }
    runs = [...chain, await writer.finish()];
    for (const { raw } of snapshot.documents.scan(uuid)) {
      digest.add(raw);
      countProgress(progress, raw.length, options);
    }
  }
  return { ...described, count: digest.count, bytes: digest.bytes, md5: digest.hex(), runs };
}

function countProgress(progress: SnapshotProgress, bytes: number, options: WriteSnapshotOptions): void {
  progress.documentsDone++;
  progress.bytesDone += bytes;
  if (progress.documentsDone % 10_000 === 0) {
    options.onProgress?.(progress);
    options.checkCancelled?.();
  }
}

/**
 * The previous snapshot's entry for this collection, if the new one may build on its chain: same
 * head database and UUID, not emptied or dropped since, and the changes since still recorded.
 */
function previousEntry(
  snapshot: HeadSnapshot,
  hex: string,
  uuid: UUID,
  options: WriteSnapshotOptions,
): ManifestCollection | undefined {
  const previous = options.previous;
  const entry = previous?.collections.find((c) => c.uuid === hex && c.runs && c.runs.length > 0);
  if (!previous || !entry) return undefined;
  // Another head database (a resync since): its change numbers mean nothing here.
  if (previous.headId !== snapshot.identity()) return undefined;
  // Changes the previous snapshot's delta would need were forgotten: only a base is right.
  if (previous.changeNumber < snapshot.changes.prunedThrough()) return undefined;
  const emptiedAt = snapshot.changes.collectionChange(uuid);
  if (emptiedAt !== undefined && emptiedAt > previous.changeNumber) return undefined;
  return entry;
}

function hasChanges(snapshot: HeadSnapshot, uuid: UUID, after: number): boolean {
  const changes = snapshot.changes.since(uuid, after);
  const first = changes.next();
  changes.return(undefined);
  return first.done !== true;
}

/** Room for one more delta: at most `maxDeltas` deltas, holding at most `maxDeltaFraction` of the base. */
function chainHasRoom(chain: RunDescriptor[], limits: WriteSnapshotOptions["chain"]): boolean {
  const [base, ...deltas] = chain;
  if (deltas.length >= limits.maxDeltas) return false;
  const deltaBytes = deltas.reduce((sum, run) => sum + run.logicalBytes + run.deletions * 16, 0);
  return deltaBytes <= limits.maxDeltaFraction * base.logicalBytes;
}

/**
 * Refers to the chain's blocks under the store lock, after checking the previous snapshot still
 * exists (so groom has not taken them); undefined if it is gone.
 */
function referChain(
  chain: RunDescriptor[],
  store: BlockStore,
  options: WriteSnapshotOptions,
): Promise<RunDescriptor[] | undefined> {
  return withStoreLock(store.location, () => {
    if (options.previousStillComplete && !options.previousStillComplete()) return undefined;
    options.referBlocks(chain.flatMap((run) => run.blocks.map((block: BlockRef) => block.hash)));
    return chain;
  });
}

function blockSink(store: BlockStore, options: WriteSnapshotOptions, storedBytes: { value: number }) {
  return async (block: EncodedBlock): Promise<void> => {
    options.checkCancelled?.();
    options.referBlocks([block.hash]);
    const stored = await withStoreLock(store.location, () => store.put(block.hash, block.bytes));
    if (stored) storedBytes.value += block.bytes.length;
    await pause(options.delayMs);
  };
}

async function writeFiles(
  snapshot: HeadSnapshot,
  entries: NamespaceEntry[],
  target: { files: FsSnapshotStore },
  options: WriteSnapshotOptions,
  progress: SnapshotProgress,
  storedBytes: { value: number },
): Promise<ManifestCollection[]> {
  const described = entries.map(describeNamespace);
  function* inputs() {
    for (let k = 0; k < entries.length; k++) {
      options.checkCancelled?.();
      const entry = entries[k];
      const d = described[k];
      yield {
        db: d.db,
        name: d.name,
        type: d.type,
        uuid: d.uuid ?? undefined,
        options: entry.type === "view" ? entry.view.options : entry.collection.options,
        indexes: entry.type === "view" ? [] : entry.collection.indexes,
        documents:
          entry.type === "view"
            ? undefined
            : (async function* () {
                for (const { raw } of snapshot.documents.scan(entry.collection.uuid)) {
                  countProgress(progress, raw.length, options);
                  if (progress.documentsDone % 1000 === 0) await pause(options.delayMs);
                  yield raw;
                }
                progress.collectionsDone++;
                options.onProgress?.(progress);
              })(),
      };
    }
  }
  const written = await target.files.write(options.snapshotId, inputs(), {
    snapshotId: options.snapshotId,
    deploymentId: options.deploymentId,
    deploymentName: options.deploymentName,
  });
  storedBytes.value += written.storedBytes;
  const stats = new Map(written.collections.map((c) => [c.namespace, c]));
  return described.map((d) => {
    const stat = stats.get(d.namespace);
    if (d.type === "view") return { ...d, count: 0, bytes: 0, md5: null };
    return {
      ...d,
      count: stat?.count ?? 0,
      bytes: stat?.logicalBytes ?? 0,
      md5: stat?.md5 ?? createHash("md5").digest("hex"),
    };
  });
}

async function pause(ms: number | undefined): Promise<void> {
  if (ms) await new Promise((resolve) => setTimeout(resolve, ms));
}
