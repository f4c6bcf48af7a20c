/**
 * The documents of every collection, keyed by collection UUID + order-preserving `_id` key, so a
 * collection is one range of the store in MongoDB's `_id` order. Values are the documents' raw
 * BSON exactly as the deployment stored them (clone batches and oplog `o` fields are copied, not
 * re-encoded). Every put, replacement, delete and truncation is also recorded in `changes` (see
 * `changes.ts`), in the same transaction.
 */
import type { Binary } from "bson";
import type { Database } from "lmdb";
import type { Changes } from "./changes.js";
import { rangeEntries, type HeadEnvironment, type ReadOptions } from "./environment.js";
import { documentKey, idKeyOf, idKeyPart, prefixRange, uuidBytes } from "./keys.js";

/**
 * Removes every key of a range, a bounded chunk of keys at a time: keys are collected before they
 * are removed (removing under a cursor that walks the same range is unsafe), and a collection can
 * be larger than memory.
 */
export function removeRange(store: Database<Buffer, Buffer>, range: { start: Buffer; end?: Buffer }): number {
  let removed = 0;
  for (;;) {
    const keys = [...store.getKeys({ ...range, limit: 10_000 })];
    if (keys.length === 0) return removed;
    for (const key of keys) store.removeSync(key);
    removed += keys.length;
  }
}

/** `bytes` as a Buffer over the same memory (no copy). */
function bufferView(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

export interface StoredDocument {
  /** The `_id` key (without the UUID prefix). */
  idKey: Buffer;
  raw: Buffer;
}

export class Documents {
  /**
   * `changes` records what this instance changes; `read` gives the reads a snapshot's
   * transaction (a snapshot's instance only reads).
   */
  constructor(
    private readonly env: HeadEnvironment,
    private readonly changes: Changes,
    private readonly read: ReadOptions = {},
  ) {}

  get(uuid: Binary | Uint8Array, idKey: Uint8Array): Buffer | undefined {
    return this.env.stores.documents.get(documentKey(uuidBytes(uuid), idKey), { ...this.read });
  }

  /** Inserts or replaces the document with the same `_id`; returns its `_id` key. */
  put(uuid: Binary | Uint8Array, raw: Uint8Array): Buffer {
    const idKey = idKeyOf(raw);
    this.putWithKey(uuid, idKey, raw);
    return idKey;
  }

  /** As `put`, when the caller already has the `_id` key. */
  putWithKey(uuid: Binary | Uint8Array, idKey: Uint8Array, raw: Uint8Array): void {
    this.env.assertWriting("putting a document");
    // Inside a write transaction lmdb copies the value into its page during putSync, so a view of
    // the caller's bytes will do: copying them first cost about a fifth of building.
    const key = documentKey(uuidBytes(uuid), idKey);
    this.env.stores.documents.putSync(key, bufferView(raw));
    this.changes.recordDocument(key);
  }

  /** Deletes one document; false if there was none. */
  delete(uuid: Binary | Uint8Array, idKey: Uint8Array): boolean {
    this.env.assertWriting("deleting a document");
    const key = documentKey(uuidBytes(uuid), idKey);
    if (!this.env.stores.documents.removeSync(key)) return false;
    this.changes.recordDocument(key);
    return true;
  }

  /**
   * Deletes every document of a collection; returns how many there were. Recorded as one
   * collection-level change (even when it had none: an emptying or drop is a change of its own).
   */
  truncate(uuid: Binary | Uint8Array): number {
    this.env.assertWriting("truncating a collection");
    const removed = removeRange(this.env.stores.documents, prefixRange(uuidBytes(uuid)));
    this.changes.recordCollection(uuid);
    return removed;
  }

  /** The documents of a collection in `_id` order; after the `_id` key `after` when given. */
  *scan(uuid: Binary | Uint8Array, after?: Uint8Array): Generator<StoredDocument> {
    const range = prefixRange(uuidBytes(uuid));
    const start = after ? documentKey(uuidBytes(uuid), after) : range.start;
    for (const { key, value } of rangeEntries(this.env.stores.documents, { ...range, start }, this.read)) {
      if (after && key.equals(start)) continue;
      yield { idKey: Buffer.from(idKeyPart(key)), raw: value };
    }
  }

  count(uuid: Binary | Uint8Array): number {
    return this.env.stores.documents.getCount({ ...prefixRange(uuidBytes(uuid)), ...this.read });
  }
}
