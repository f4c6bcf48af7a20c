/**
 * Change tracking, so that snapshots can be incremental at the document level (DESIGN.md
 * "Snapshots"): a snapshot's delta run holds the documents changed since the previous snapshot
 * and deletion markers, and only the head database's own write transactions know which those are.
 *
 * - The **change number** is a counter in the resume state. The first document change of a write
 *   transaction takes the next number; every change of that transaction records the same number.
 *   A rolled-back transaction rolls its number back with it, so numbers of committed transactions
 *   increase and a read transaction that sees change number C sees every change numbered ≤ C and
 *   none after.
 * - The `changes` store maps (collection UUID + `_id` key, the documents store's key) to the
 *   number of the document's last put, replacement or delete (`Documents` records them, so every
 *   path that changes a document does: cloned and fetched inserts, the applier's writes, views).
 *   A key whose document is absent from the documents store is a deletion.
 * - Emptying or dropping a collection records one collection-level number in `collectionChanges`
 *   instead of one per document, and forgets the collection's per-document entries (all older).
 *   A collection whose collection-level number is above a snapshot's number was emptied or dropped
 *   since: its documents now are those `since` lists (the writer starts a new base run).
 *
 * The snapshot writer reads, in one read snapshot (`HeadDatabase.readSnapshot`): C = `current()`,
 * then per collection `collectionChange(uuid)` and `since(uuid, C_previous)` with the documents.
 *
 * Recording starts with the first snapshot (`startTracking`), and the entries numbered ≤ a
 * complete snapshot's number are pruned after it (`prune`): `since` walks the entries of changes
 * since about the last snapshot, one small entry per distinct changed document.
 */
import { Long, serialize, UUID, type Binary } from "bson";
import { removeRange } from "./documents.js";
import { rangeEntries, type HeadEnvironment, type ReadOptions } from "./environment.js";
import { HeadDbError } from "./errors.js";
import { deserializeExact } from "./exactBson.js";
import { idKeyPart, prefixRange, uuidBytes, UUID_LENGTH } from "./keys.js";

export interface DocumentChange {
  /** The `_id` key (without the UUID prefix), as in the documents store. */
  idKey: Buffer;
  changeNumber: number;
}

export interface CollectionChange {
  uuid: UUID;
  changeNumber: number;
}

const CHANGE_NUMBER = Buffer.from("changeNumber");
const PRUNED_THROUGH = Buffer.from("changesPrunedThrough");
const TRACKING = Buffer.from("changeTracking");

export class Changes {
  /** The number taken by the current write transaction, by `HeadEnvironment.writeTransactionSerial`. */
  private taken: { serial: number; value: Buffer } | undefined;
  /** Whether changes are recorded (cached; forgotten when a write transaction rolls back). */
  private trackingCache: boolean | undefined;

  constructor(
    private readonly env: HeadEnvironment,
    private readonly read: ReadOptions = {},
  ) {
    if (!read.transaction) env.onAbort(() => (this.trackingCache = undefined));
  }

  /**
   * Whether document changes are recorded. Off until the first snapshot starts (`startTracking`):
   * a first snapshot writes every collection as a base, so the initial sync's millions of inserts
   * need no entries (and nothing to prune afterwards).
   */
  isTracking(): boolean {
    this.trackingCache ??= this.env.stores.state.get(TRACKING, { ...this.read }) !== undefined;
    return this.trackingCache;
  }

  /**
   * Turns recording on, in a write, before a snapshot's view opens: every change after the
   * current number is then recorded. Changes before it are unknown, which `prunedThrough` says,
   * so no delta is ever built across the switch.
   */
  startTracking(): void {
    this.env.assertWriting("starting change tracking");
    if (this.isTracking()) return;
    this.env.stores.state.putSync(TRACKING, Buffer.from([1]));
    this.env.stores.state.putSync(PRUNED_THROUGH, encodeNumber(this.current()));
    this.trackingCache = true;
  }

  /** The number of the last committed change (inside a write, the write's own once it took one); 0 if none. */
  current(): number {
    const raw = this.env.stores.state.get(CHANGE_NUMBER, { ...this.read });
    if (raw === undefined) return 0;
    const value = deserializeExact(raw).changeNumber;
    if (!(value instanceof Long)) throw new HeadDbError("CORRUPT_RECORD", "the change number is not a Long");
    return value.toNumber();
  }

  /**
   * The documents of collection `uuid` changed after change number `after`, in `_id` order, each
   * with the number of its last change. One whose document is absent now was deleted.
   */
  *since(uuid: Binary | Uint8Array, after: number): Generator<DocumentChange> {
    for (const { key, value } of rangeEntries(
      this.env.stores.changes,
      prefixRange(uuidBytes(uuid)),
      this.read,
    )) {
      const changeNumber = decodeNumber(value);
      if (changeNumber > after) yield { idKey: Buffer.from(idKeyPart(key)), changeNumber };
    }
  }

  /**
   * Per-document entries numbered up to this were forgotten (`prune`), so `since(uuid, after)`
   * is complete only for `after` at or above it; 0 if nothing was pruned.
   */
  prunedThrough(): number {
    const raw = this.env.stores.state.get(PRUNED_THROUGH, { ...this.read });
    return raw === undefined ? 0 : decodeNumber(raw);
  }

  /**
   * Forgets per-document entries numbered ≤ `through`: once a snapshot at change number `through`
   * is complete, later deltas build on it and never ask for older changes (a snapshot building on
   * an older one writes a new base instead). Visits at most `limit` entries from key `from` on, in
   * the caller's write transaction, so that one call stays short; returns the key to go on from,
   * or undefined when every entry was visited (then `prunedThrough` becomes `through`).
   */
  prune(through: number, limit: number, from?: Buffer): Buffer | undefined {
    this.env.assertWriting("pruning changes");
    const doomed: Buffer[] = [];
    let visited = 0;
    for (const { key, value } of this.env.stores.changes.getRange(from ? { start: from } : {})) {
      if (visited++ === limit) {
        for (const k of doomed) this.env.stores.changes.removeSync(k);
        return Buffer.from(key);
      }
      if (decodeNumber(value) <= through) doomed.push(Buffer.from(key));
    }
    for (const k of doomed) this.env.stores.changes.removeSync(k);
    if (through > this.prunedThrough()) this.env.stores.state.putSync(PRUNED_THROUGH, encodeNumber(through));
    return undefined;
  }

  /** The number of the last emptying or drop of collection `uuid`, if any. */
  collectionChange(uuid: Binary | Uint8Array): number | undefined {
    const raw = this.env.stores.collectionChanges.get(uuidBytes(uuid), { ...this.read });
    return raw === undefined ? undefined : decodeNumber(raw);
  }

  /** The collections emptied or dropped after change number `after`, in UUID order. */
  collectionsChangedSince(after: number): CollectionChange[] {
    const changed: CollectionChange[] = [];
    for (const { key, value } of this.env.stores.collectionChanges.getRange({ ...this.read })) {
      const changeNumber = decodeNumber(value);
      if (changeNumber > after)
        changed.push({ uuid: new UUID(Buffer.from(key.subarray(0, UUID_LENGTH))), changeNumber });
    }
    return changed;
  }

  /** Records a change of the document at `documentKey` (UUID + `_id` key). Called by `Documents`. */
  recordDocument(documentKey: Buffer): void {
    if (!this.isTracking()) return;
    this.env.stores.changes.putSync(documentKey, this.number());
  }

  /**
   * Records that collection `uuid` was emptied or dropped, and forgets its per-document entries:
   * they are older, and the collection-level number covers them. Called by `Documents.truncate`.
   */
  recordCollection(uuid: Binary | Uint8Array): void {
    if (!this.isTracking()) return;
    const id = uuidBytes(uuid);
    removeRange(this.env.stores.changes, prefixRange(id));
    this.env.stores.collectionChanges.putSync(id, this.number());
  }

  /** The current write transaction's change number (8 bytes big-endian), taken on first use. */
  private number(): Buffer {
    this.env.assertWriting("recording a change");
    const serial = this.env.writeTransactionSerial;
    if (this.taken?.serial !== serial) {
      const next = this.current() + 1;
      this.env.stores.state.putSync(
        CHANGE_NUMBER,
        Buffer.from(serialize({ changeNumber: Long.fromNumber(next) })),
      );
      this.taken = { serial, value: encodeNumber(next) };
    }
    return this.taken.value;
  }
}

function encodeNumber(value: number): Buffer {
  const bytes = Buffer.alloc(8);
  bytes.writeBigUInt64BE(BigInt(value));
  return bytes;
}

function decodeNumber(bytes: Uint8Array): number {
  if (bytes.length !== 8)
    throw new HeadDbError("CORRUPT_RECORD", `a change number has 8 bytes, not ${bytes.length}`);
  return Number(Buffer.from(bytes.buffer, bytes.byteOffset, 8).readBigUInt64BE(0));
}
