import { BTree } from "./btree.js";
import { deserialize, UUID, type Document } from "bson";
import { encodeIdKeyFromDocument } from "../../bson/keyEncoding.js";
import { CommandError, ErrorCode } from "../errors.js";
import { IndexCatalog, type IndexSpec } from "./indexes.js";

/** Order-preserving `_id` key as a latin1 string, so it works as a Map key and a B-tree key. */
export type IdKey = string;

export function idKeyOf(raw: Uint8Array): IdKey {
  return encodeIdKeyFromDocument(raw).toString("latin1");
}

const compareRecordIds = (a: bigint, b: bigint) => (a < b ? -1 : a > b ? 1 : 0);

export interface CollectionOptions {
  /** create-command options exactly as given (capped, size, max, validator, collation...). */
  options: Document;
  uuid?: UUID;
  /** The oplog has no _id index. */
  autoIndexId?: boolean;
}

/**
 * One collection: records in insertion order under a RecordId (as WiredTiger keeps them; the
 * oplog uses the entry's timestamp as RecordId) and an `_id` index over them.
 */
export class Collection {
  readonly uuid: UUID;
  options: Document;
  readonly indexes: IndexCatalog;
  private readonly records = new BTree<bigint, Buffer>(undefined, compareRecordIds);
  private readonly idIndex = new BTree<IdKey, bigint>();
  private readonly recordIdOf = new Map<bigint, IdKey>();
  private nextRecordId = 1n;
  private bytes = 0;
  /** The oplog has no `_id` index; its records are found by RecordId only. */
  private readonly hasIdIndex: boolean;

  constructor(
    public db: string,
    public name: string,
    init: CollectionOptions,
  ) {
    this.uuid = init.uuid ?? new UUID();
    this.options = init.options;
    this.hasIdIndex = init.autoIndexId !== false;
    this.indexes = new IndexCatalog(() => this.ns, this.hasIdIndex);
  }

  get ns(): string {
    return `${this.db}.${this.name}`;
  }

  get count(): number {
    return this.records.size;
  }

  get dataSize(): number {
    return this.bytes;
  }

  get capped(): boolean {
    return this.options.capped === true;
  }

  getById(key: IdKey): Buffer | undefined {
    const recordId = this.idIndex.get(key);
    return recordId === undefined ? undefined : this.records.get(recordId);
  }

  /**
   * Inserts a document (raw BSON, `_id` first). Checks `_id` and unique-index uniqueness before
   * changing anything, so a failed insert leaves the collection as it was.
   */
  insert(raw: Buffer, recordId?: bigint): IdKey {
    if (!this.hasIdIndex) {
      const id = recordId ?? this.nextRecordId++;
      if (id >= this.nextRecordId) this.nextRecordId = id + 1n;
      this.records.set(id, raw);
      this.bytes += raw.length;
      return "";
    }
    const key = idKeyOf(raw);
    if (this.idIndex.has(key)) {
      const id = deserialize(raw)._id as unknown;
      throw new CommandError(
        ErrorCode.DuplicateKey,
        `E11000 duplicate key error collection: ${this.ns} index: _id_ dup key: { _id: ${JSON.stringify(id)} }`,
        { keyPattern: { _id: 1 }, keyValue: { _id: id } },
      );
    }
    const doc = this.indexes.hasUniqueSecondary ? deserialize(raw) : undefined;
    if (doc) this.indexes.check(key, doc);
    const id = recordId ?? this.nextRecordId++;
    if (id >= this.nextRecordId) this.nextRecordId = id + 1n;
    this.records.set(id, raw);
    this.idIndex.set(key, id);
    this.recordIdOf.set(id, key);
    this.bytes += raw.length;
    if (doc) this.indexes.onInsert(key, doc);
    return key;
  }

  /** Replaces the document with `_id` key `key` in place (same RecordId). */
  replace(key: IdKey, raw: Buffer): Buffer {
    const recordId = this.idIndex.get(key);
    if (recordId === undefined) throw new Error(`replace: no document with that _id in ${this.ns}`);
    const old = this.records.get(recordId)!;
    if (this.indexes.hasUniqueSecondary) {
      const doc = deserialize(raw);
      this.indexes.check(key, doc);
      this.indexes.onRemove(key, deserialize(old));
      this.indexes.onInsert(key, doc);
    }
    this.records.set(recordId, raw);
    this.bytes += raw.length - old.length;
    return old;
  }

  remove(key: IdKey): Buffer | undefined {
    const recordId = this.idIndex.get(key);
    if (recordId === undefined) return undefined;
    return this.removeRecord(recordId);
  }

  /** Removes the oldest records, for capped collections and the oplog. */
  removeOldest(): Buffer | undefined {
    const oldest = this.records.minKey();
    return oldest === undefined ? undefined : this.removeRecord(oldest);
  }

  private removeRecord(recordId: bigint): Buffer {
    const raw = this.records.get(recordId)!;
    const key = this.recordIdOf.get(recordId);
    this.records.delete(recordId);
    this.recordIdOf.delete(recordId);
    if (key !== undefined) this.idIndex.delete(key);
    this.bytes -= raw.length;
    if (key !== undefined && this.indexes.hasUniqueSecondary) this.indexes.onRemove(key, deserialize(raw));
    return raw;
  }

  /**
   * Documents in `_id` order after `afterKey`. Each step looks the next key up afresh, so the
   * scan stays valid while the collection changes underneath it (like a yielding server scan).
   */
  *scanById(afterKey?: IdKey): Generator<[IdKey, Buffer]> {
    let pair = afterKey === undefined ? this.firstIdPair() : this.idIndex.nextHigherPair(afterKey);
    while (pair) {
      const raw = this.records.get(pair[1]);
      if (raw) yield [pair[0], raw];
      pair = this.idIndex.nextHigherPair(pair[0]);
    }
  }

  /** Documents in `_id` descending order. */
  *scanByIdReverse(): Generator<[IdKey, Buffer]> {
    let pair = this.idIndex.size > 0 ? this.idIndex.nextLowerPair(undefined) : undefined;
    while (pair) {
      const raw = this.records.get(pair[1]);
      if (raw) yield [pair[0], raw];
      pair = this.idIndex.nextLowerPair(pair[0]);
    }
  }

  /** Records in insertion (natural) order with RecordId greater than `after`. */
  *scanNatural(after?: bigint): Generator<[bigint, Buffer]> {
    let pair = after === undefined ? this.firstRecordPair() : this.records.nextHigherPair(after);
    while (pair) {
      yield pair;
      pair = this.records.nextHigherPair(pair[0]);
    }
  }

  *scanNaturalReverse(): Generator<[bigint, Buffer]> {
    let pair = this.records.size > 0 ? this.records.nextLowerPair(undefined) : undefined;
    while (pair) {
      yield pair;
      pair = this.records.nextLowerPair(pair[0]);
    }
  }

  /** The first record at or after `from` in natural order. */
  firstRecordAtOrAfter(from: bigint): [bigint, Buffer] | undefined {
    const exact = this.records.get(from);
    return exact ? [from, exact] : this.records.nextHigherPair(from);
  }

  /** The record after `id` in natural order (the first one when `id` is undefined). */
  recordAfter(id: bigint | undefined): [bigint, Buffer] | undefined {
    return this.records.nextHigherPair(id);
  }

  hasRecord(id: bigint): boolean {
    return this.records.has(id);
  }

  newestRecordId(): bigint | undefined {
    return this.records.maxKey();
  }

  oldestRecordId(): bigint | undefined {
    return this.records.minKey();
  }

  *entries(): Generator<[IdKey, Buffer]> {
    yield* this.scanById();
  }

  addIndex(spec: IndexSpec): void {
    this.indexes.add(spec, this.entries());
  }

  private firstIdPair(): [IdKey, bigint] | undefined {
    const min = this.idIndex.minKey();
    return min === undefined ? undefined : [min, this.idIndex.get(min)!];
  }

  private firstRecordPair(): [bigint, Buffer] | undefined {
    const min = this.records.minKey();
    return min === undefined ? undefined : [min, this.records.get(min)!];
  }
}
