/**
 * The head database's collection catalog: each collection's record (database, name, options,
 * indexes, index builds in progress) keyed by its UUID, and a name index from "db\0name" to the
 * collection's UUID or to a view definition.
 *
 * Records are keyed by UUID because oplog entries name collections by `ui`: a rename keeps the
 * UUID, and a dropped and re-created collection gets a new one. The name index says which
 * collection holds a name now. While the oplog is replayed over a fuzzy clone, a catalog read
 * during the clone can hold a collection under a name that an older entry gives to another
 * collection; the later assignment takes the name (`putCollection`), the other record stays
 * "detached" until a later create or rename in the oplog gives it its name back (`detached()`
 * lists them; a consistent head database has none).
 */
import { serialize, UUID, type Binary, type Document } from "bson";
import type { HeadEnvironment, ReadOptions } from "./environment.js";
import { HeadDbError } from "./errors.js";
import { deserializeExact } from "./exactBson.js";
import { databasePrefix, namespaceKey, parseNamespaceKey, prefixRange, uuidBytes } from "./keys.js";

/** A two-phase index build seen in the oplog (startIndexBuild) and not yet committed or aborted. */
export interface IndexBuild {
  buildUUID: Binary;
  indexes: Document[];
}

export interface CollectionRecord {
  uuid: UUID;
  db: string;
  name: string;
  /** The collection's options as listCollections shows them (create options, then collMod's). */
  options: Document;
  /** Index specs as listIndexes shows them, `_id_` included. */
  indexes: Document[];
  indexBuilds: IndexBuild[];
}

export interface ViewRecord {
  db: string;
  name: string;
  /** `{viewOn, pipeline, collation?}`. */
  options: Document;
}

export type NamespaceEntry =
  | { type: "collection"; db: string; name: string; collection: CollectionRecord }
  | { type: "view"; db: string; name: string; view: ViewRecord };

export class Catalog {
  /**
   * Decoded records by UUID (hex): the applier asks for the same collection entry after entry.
   * Emptied by every change to the records and by a rolled-back transaction. Callers copy a
   * record before changing it (as putCollection's callers do), so the cached one stays as stored.
   */
  private readonly records = new Map<string, CollectionRecord | undefined>();

  /**
   * `read` gives the reads a snapshot's transaction: such an instance only reads, and its cache
   * stays valid (the snapshot never changes).
   */
  constructor(
    private readonly env: HeadEnvironment,
    private readonly read: ReadOptions = {},
  ) {
    if (!("transaction" in read)) env.onAbort(() => this.records.clear());
  }

  /** The record of collection `uuid`, wherever its name is. */
  collection(uuid: Binary | Uint8Array): CollectionRecord | undefined {
    const id = uuidBytes(uuid);
    const key = Buffer.from(id).toString("hex");
    if (this.records.has(key)) return this.records.get(key);
    const raw = this.env.stores.collections.get(id, { ...this.read });
    const record = raw && decodeCollection(raw);
    this.records.set(key, record);
    return record;
  }

  /** What holds `db.name` now: a collection, a view, or nothing. */
  lookup(db: string, name: string): NamespaceEntry | undefined {
    const raw = this.env.stores.namespaces.get(namespaceKey(db, name), { ...this.read });
    return raw && this.decodeNamespace(db, name, raw);
  }

  collectionByName(db: string, name: string): CollectionRecord | undefined {
    const entry = this.lookup(db, name);
    return entry?.type === "collection" ? entry.collection : undefined;
  }

  /**
   * Writes a collection's record and gives it its name: the name index entry of its former name
   * is removed if it still points to it, and whatever held the new name (another collection, a
   * view) loses it.
   */
  putCollection(record: CollectionRecord): void {
    this.env.assertWriting("putCollection");
    const id = uuidBytes(record.uuid);
    const previous = this.collection(id);
    if (previous && (previous.db !== record.db || previous.name !== record.name))
      this.releaseName(previous.db, previous.name, id);
    this.env.stores.namespaces.putSync(
      namespaceKey(record.db, record.name),
      Buffer.from(serialize({ type: "collection", uuid: new UUID(id) })),
    );
    this.env.stores.collections.putSync(id, encodeCollection(record));
    this.records.clear();
  }

  /** Removes a collection's record and its name (if it still holds it); returns the record. */
  removeCollection(uuid: Binary | Uint8Array): CollectionRecord | undefined {
    this.env.assertWriting("removeCollection");
    const id = uuidBytes(uuid);
    const record = this.collection(id);
    if (!record) return undefined;
    this.releaseName(record.db, record.name, id);
    this.env.stores.collections.removeSync(id);
    this.records.clear();
    return record;
  }

  putView(view: ViewRecord): void {
    this.env.assertWriting("putView");
    this.env.stores.namespaces.putSync(
      namespaceKey(view.db, view.name),
      Buffer.from(serialize({ type: "view", options: view.options })),
    );
  }

  /** Removes the view `db.name`; a collection holding the name is left alone. */
  removeView(db: string, name: string): boolean {
    this.env.assertWriting("removeView");
    if (this.lookup(db, name)?.type !== "view") return false;
    return this.env.stores.namespaces.removeSync(namespaceKey(db, name));
  }

  /** Names of the databases that hold at least one collection or view, in byte order. */
  databases(): string[] {
    const names: string[] = [];
    for (const key of this.env.stores.namespaces.getKeys({ ...this.read })) {
      const { db } = parseNamespaceKey(key);
      if (names[names.length - 1] !== db) names.push(db);
    }
    return names;
  }

  /** The collections and views of `db`, in name byte order (MongoDB's dbHash order). */
  namespaces(db: string): NamespaceEntry[] {
    const entries: NamespaceEntry[] = [];
    for (const { key, value } of this.env.stores.namespaces.getRange({
      ...prefixRange(databasePrefix(db)),
      ...this.read,
    })) {
      const { name } = parseNamespaceKey(key);
      entries.push(this.decodeNamespace(db, name, value));
    }
    return entries;
  }

  /** Every collection record, named or detached. */
  collections(): CollectionRecord[] {
    return [...this.env.stores.collections.getRange({ ...this.read })].map(({ value }) =>
      decodeCollection(value),
    );
  }

  /** Collections whose name is held by something else (see the file comment). */
  detached(): CollectionRecord[] {
    return this.collections().filter((record) => {
      const holder = this.lookup(record.db, record.name);
      return holder?.type !== "collection" || !holder.collection.uuid.equals(record.uuid);
    });
  }

  private releaseName(db: string, name: string, id: Buffer): void {
    const key = namespaceKey(db, name);
    const raw = this.env.stores.namespaces.get(key);
    if (!raw) return;
    const holder = deserializeExact(raw);
    if (holder.type === "collection" && uuidBytes(holder.uuid as Binary).equals(id))
      this.env.stores.namespaces.removeSync(key);
  }

  private decodeNamespace(db: string, name: string, raw: Buffer): NamespaceEntry {
    const holder = deserializeExact(raw);
    if (holder.type === "view")
      return { type: "view", db, name, view: { db, name, options: holder.options } };
    const collection = this.collection(holder.uuid as Binary);
    if (!collection)
      throw new HeadDbError(
        "CORRUPT_RECORD",
        `namespace ${db}.${name} points to a missing collection record`,
      );
    return { type: "collection", db, name, collection };
  }
}

function encodeCollection(record: CollectionRecord): Buffer {
  return Buffer.from(
    serialize({
      uuid: record.uuid,
      db: record.db,
      name: record.name,
      options: record.options,
      indexes: record.indexes,
      indexBuilds: record.indexBuilds,
    }),
  );
}

function decodeCollection(raw: Buffer): CollectionRecord {
  const doc = deserializeExact(raw);
  return {
    uuid: new UUID(uuidBytes(doc.uuid as Binary)),
    db: doc.db as string,
    name: doc.name as string,
    options: doc.options as Document,
    indexes: doc.indexes as Document[],
    indexBuilds: doc.indexBuilds as IndexBuild[],
  };
}
