/**
 * Materialises a point in time in a temporary head database (DESIGN.md "Restores"): the base
 * snapshot's catalog and documents, then the oplog slices after the snapshot applied up to and
 * including the target ts by the same applier the daemon uses. Memory is bounded by a batch of
 * documents and one slice; the documents live in the LMDB file.
 */
import { UUID } from "bson";
import type { SliceRecord } from "../../catalog/slices.js";
import { readSliceDocuments } from "../../daemon/sliceReader.js";
import { HeadDatabase } from "../../headdb/index.js";
import { OplogApplier, OplogEntry } from "../../oplog/apply/index.js";
import type { OplogStore } from "../../oplogstore/oplogStore.js";
import type { OpTimeJson } from "../../protocol/agentProtocol.js";
import { compareOpTimes, formatOpTime, opTimeOf } from "../../protocol/optime.js";
import type { SnapshotManifest } from "../../snapshot/manifest.js";
import { readCollection, type SnapshotSource } from "../../snapshot/reader.js";
import { fromCanonical } from "../loader/collectionLoader.js";
import { openTransactionEntries } from "./openTransactions.js";

/** Documents inserted per head database transaction while the snapshot is loaded. */
const INSERT_BATCH_BYTES = 8 * 1024 * 1024;

export interface MaterializeProgress {
  stage: "loading_snapshot" | "applying_oplog";
  collections: number;
  collectionsDone: number;
  documents: number;
  bytes: number;
  slices: number;
  slicesDone: number;
  /** Oplog entries applied after the snapshot (transactions' entries count once each). */
  entriesApplied: number;
}

export interface MaterializeOptions {
  /** The temporary head database's directory (created; must not hold one). */
  path: string;
  manifest: SnapshotManifest;
  source: SnapshotSource;
  oplog: OplogStore;
  /** The oplog slices from the one holding `heldFrom` (or the snapshot's ts) to the one holding `targetTs`, in sequence order. */
  slices: readonly SliceRecord[];
  targetTs: OpTimeJson;
  onProgress?: (progress: MaterializeProgress) => void;
  /** Called between batches: throws to stop (a cancelled job, a stopping server). */
  checkCancelled?: () => void;
}

export interface MaterializedPoint {
  head: HeadDatabase;
  /** The ts of the newest entry applied (the snapshot's when none was). */
  ts: OpTimeJson;
  entriesApplied: number;
}

/** Builds the head database; on failure it is closed (the caller removes `path`). */
export async function materializePointInTime(options: MaterializeOptions): Promise<MaterializedPoint> {
  const head = HeadDatabase.open({ path: options.path });
  try {
    const progress: MaterializeProgress = {
      stage: "loading_snapshot",
      collections: options.manifest.collections.length,
      collectionsDone: 0,
      documents: 0,
      bytes: 0,
      slices: options.slices.length,
      slicesDone: 0,
      entriesApplied: 0,
    };
    await loadSnapshot(head, options, progress);
    progress.stage = "applying_oplog";
    options.onProgress?.(progress);
    await replayOplog(head, options, progress);
    return {
      head,
      ts: opTimeOf(head.state.appliedOptime()) ?? options.manifest.ts,
      entriesApplied: progress.entriesApplied,
    };
  } catch (error) {
    await head.close();
    throw error;
  }
}

async function loadSnapshot(
  head: HeadDatabase,
  options: MaterializeOptions,
  progress: MaterializeProgress,
): Promise<void> {
  const { manifest } = options;
  head.write(() => {
    for (const c of manifest.collections) {
      if (c.type === "view")
        head.catalog.putView({ db: c.db, name: c.name, options: fromCanonical(c.options) });
      else
        head.catalog.putCollection({
          uuid: new UUID(c.uuid!),
          db: c.db,
          name: c.name,
          options: fromCanonical(c.options),
          indexes: c.indexes.map(fromCanonical),
          indexBuilds: [],
        });
    }
  });
  for (const c of manifest.collections) {
    if (c.type === "view") continue;
    const uuid = new UUID(c.uuid!);
    let batch: Buffer[] = [];
    let batchBytes = 0;
    const flush = () => {
      head.write(() => head.insertDocuments(uuid, batch));
      progress.documents += batch.length;
      progress.bytes += batchBytes;
      batch = [];
      batchBytes = 0;
      options.onProgress?.(progress);
    };
    for await (const doc of readCollection(manifest, c, options.source)) {
      batch.push(doc);
      batchBytes += doc.length;
      if (batchBytes >= INSERT_BATCH_BYTES) {
        options.checkCancelled?.();
        flush();
      }
    }
    if (batch.length > 0) flush();
    progress.collectionsDone++;
    options.onProgress?.(progress);
  }
}

/** The entry's ts, and whether it is a command of a session (only those can be in a transaction). */
function inspect(raw: Buffer): { ts: OpTimeJson; sessionCommand: boolean } {
  const entry = new OplogEntry(raw);
  const ts = entry.ts;
  if (!ts) throw new Error("an oplog entry without ts");
  return { ts: { t: ts.t, i: ts.i }, sessionCommand: entry.op === "c" && entry.lsid !== undefined };
}

/**
 * Applies the oplog after the snapshot up to `targetTs`, one slice per transaction. The entries
 * of transactions open at the snapshot (from `heldFrom` on) go first, so the applier holds them.
 */
async function replayOplog(
  head: HeadDatabase,
  options: MaterializeOptions,
  progress: MaterializeProgress,
): Promise<void> {
  const { manifest, targetTs } = options;
  const applier = new OplogApplier(head);
  const beforeSnapshot: Buffer[] = [];
  let previous: SliceRecord | undefined;
  for (const slice of options.slices) {
    options.checkCancelled?.();
    if (previous && slice.sequence !== previous.sequence + 1)
      throw new Error(
        `oplog slice #${previous.sequence + 1} is missing (between ${formatOpTime(previous.lastTs)} and ${formatOpTime(slice.firstTs)}): the oplog has a gap there`,
      );
    previous = slice;
    const after: Buffer[] = [];
    for (const raw of await readSliceDocuments(options.oplog, slice)) {
      const { ts, sessionCommand } = inspect(raw);
      if (compareOpTimes(ts, targetTs) > 0) break;
      if (compareOpTimes(ts, manifest.ts) <= 0) {
        // Only commands of sessions can belong to a transaction: the rest is not kept.
        if (sessionCommand && manifest.heldFrom && compareOpTimes(ts, manifest.heldFrom) >= 0)
          beforeSnapshot.push(raw);
      } else after.push(raw);
    }
    if (beforeSnapshot.length > 0 && after.length > 0) {
      applier.applyBatch(openTransactionEntries(beforeSnapshot));
      beforeSnapshot.length = 0;
    }
    if (after.length > 0) {
      const result = applier.applyBatch(after);
      progress.entriesApplied += result.applied;
    }
    progress.slicesDone++;
    options.onProgress?.(progress);
    await new Promise((resolve) => setImmediate(resolve));
  }
}
