/**
 * One deployment's head database: an LMDB environment holding the documents, the catalog, the
 * missing set, held transaction entries and the resume state, plus the operations that change
 * several of them at once (a drop removes a collection's documents, missing ids and record
 * together). Everything that changes state runs inside `write`.
 */
import { serialize, UUID, type Binary, type Document } from "bson";
import { Catalog, type CollectionRecord } from "./catalog.js";
import { Changes } from "./changes.js";
import { databaseHash, type DatabaseHash } from "./dbHash.js";
import { Documents } from "./documents.js";
import { HeadEnvironment, type HeadEnvironmentOptions } from "./environment.js";
import { encodeIdKey } from "../bson/keyEncoding.js";
import { HeadDbError } from "./errors.js";
import { deserializeExact } from "./exactBson.js";
import { idKeyOf, uuidBytes } from "./keys.js";
import { MissingSet } from "./missing.js";
import { PendingTransactions } from "./pendingTransactions.js";
import { HeadSnapshot } from "./readSnapshot.js";
import { ResumeState } from "./resumeState.js";
import { removeViews, syncView, SYSTEM_VIEWS, viewDefinition } from "./views.js";

/** The `_id` index every collection gets unless created without one (clustered, autoIndexId). */
export const DEFAULT_ID_INDEX: Document = { v: 2, key: { _id: 1 }, name: "_id_" };

export interface NewCollection {
  uuid: Binary | Uint8Array;
  db: string;
  name: string;
  options?: Document;
  indexes?: Document[];
}

export class HeadDatabase {
  readonly catalog: Catalog;
  readonly changes: Changes;
  readonly documents: Documents;
  readonly missing: MissingSet;
  readonly pending: PendingTransactions;
  readonly state: ResumeState;

  private constructor(readonly env: HeadEnvironment) {
    this.catalog = new Catalog(env);
    this.changes = new Changes(env);
    this.documents = new Documents(env, this.changes);
    this.missing = new MissingSet(env);
    this.pending = new PendingTransactions(env);
    this.state = new ResumeState(env);
  }

  static open(options: HeadEnvironmentOptions): HeadDatabase {
    const head = new HeadDatabase(HeadEnvironment.open(options));
    if (!head.state.identity()) head.write(() => head.state.ensureIdentity());
    return head;
  }

  /** Runs `action` in one write transaction: all of its changes commit together, or none. */
  write<T>(action: () => T): T {
    return this.env.write(action);
  }

  /**
   * Runs `read` with a consistent view of the last committed state (see `readSnapshot.ts`): its
   * documents, catalog, applied optime and changes stay as they were when it started while later
   * writes commit. `read` may be async: the view ends when its promise settles, and reading it
   * after that throws. Not inside `write`; `close` waits for open views.
   */
  readSnapshot<T>(read: (snapshot: HeadSnapshot) => T): T {
    return this.env.readView((options) => read(new HeadSnapshot(this.env, options)));
  }

  /**
   * Forgets the per-document change entries numbered ≤ `through` (see `Changes.prune`), a batch
   * per write transaction with a turn of the event loop between, so the applier keeps going.
   * Returns how many batches it took.
   */
  async pruneChanges(through: number, batch = 10_000): Promise<number> {
    let from: Buffer | undefined;
    let batches = 0;
    do {
      from = this.write(() => this.changes.prune(through, batch, from));
      batches++;
      await new Promise((resolve) => setImmediate(resolve));
    } while (from);
    return batches;
  }

  async flushed(): Promise<void> {
    await this.env.flushed();
  }

  async close(): Promise<void> {
    await this.env.close();
  }

  /**
   * Creates collection `uuid` empty under `db.name` (taking the name), or, if the UUID is known,
   * empties it and resets its options and indexes: an oplog `create` means the collection had no
   * documents at that moment, and every later write to it is in the oplog after the create.
   */
  createCollection(init: NewCollection): CollectionRecord {
    this.env.assertWriting("createCollection");
    const uuid = new UUID(uuidBytes(init.uuid));
    if (this.catalog.collection(uuid)) this.emptyCollection(uuid);
    const record: CollectionRecord = {
      uuid,
      db: init.db,
      name: init.name,
      options: init.options ?? {},
      indexes: init.indexes ?? [DEFAULT_ID_INDEX],
      indexBuilds: [],
    };
    this.catalog.putCollection(record);
    return record;
  }

  /** Deletes a collection's documents and missing ids (and, for system.views, its views). */
  emptyCollection(uuid: Binary | Uint8Array): number {
    const record = this.catalog.collection(uuid);
    this.missing.removeCollection(uuid);
    if (record?.name === SYSTEM_VIEWS) removeViews(this.catalog, record.db);
    return this.documents.truncate(uuid);
  }

  /** Drops a collection: documents, missing ids, record and name. False if it is unknown. */
  dropCollection(uuid: Binary | Uint8Array): boolean {
    this.env.assertWriting("dropCollection");
    if (!this.catalog.collection(uuid)) return false;
    this.emptyCollection(uuid);
    this.catalog.removeCollection(uuid);
    return true;
  }

  /**
   * Drops every collection and view of `db`, including collection records of `db` whose name
   * another collection holds (they cannot outlive the database either).
   */
  dropDatabase(db: string): number {
    this.env.assertWriting("dropDatabase");
    let dropped = 0;
    for (const entry of this.catalog.namespaces(db)) {
      if (entry.type === "view") this.catalog.removeView(db, entry.name);
      else this.dropCollection(entry.collection.uuid);
      dropped++;
    }
    for (const record of this.catalog.collections()) {
      if (record.db === db && this.dropCollection(record.uuid)) dropped++;
    }
    return dropped;
  }

  /** Moves a collection to `toDb.toName`, keeping its UUID, documents and indexes. */
  renameCollection(uuid: Binary | Uint8Array, toDb: string, toName: string): CollectionRecord {
    this.env.assertWriting("renameCollection");
    const record = this.catalog.collection(uuid);
    if (!record)
      throw new HeadDbError(
        "INVALID_ARGUMENT",
        `no collection with UUID ${new UUID(uuidBytes(uuid)).toHexString()}`,
      );
    const moved = { ...record, db: toDb, name: toName };
    this.catalog.putCollection(moved);
    return moved;
  }

  /**
   * Adds one entry of a catalog read from the deployment: the agent's catalog documents
   * (`{name, type, options, uuid, idIndex, indexes}`, listCollections + listIndexes).
   */
  importCatalogEntry(db: string, entry: Document): void {
    this.env.assertWriting("importCatalogEntry");
    const name = entry.name as string;
    if (entry.type === "view") {
      this.catalog.putView({ db, name, options: (entry.options as Document | undefined) ?? {} });
      return;
    }
    if (entry.uuid === undefined)
      throw new HeadDbError("INVALID_ARGUMENT", `catalog entry ${db}.${name} has no uuid`, { db, name });
    this.catalog.putCollection({
      uuid: new UUID(uuidBytes(entry.uuid as Binary)),
      db,
      name,
      options: (entry.options as Document | undefined) ?? {},
      indexes:
        (entry.indexes as Document[] | undefined) ?? (entry.idIndex ? [entry.idIndex as Document] : []),
      indexBuilds: [],
    });
  }

  /** Inserts cloned documents (raw BSON) into collection `uuid`; an existing `_id` is replaced. */
  insertDocuments(uuid: Binary | Uint8Array, docs: Iterable<Uint8Array>): number {
    this.env.assertWriting("insertDocuments");
    const record = this.catalog.collection(uuid);
    // Inserting settles missing ids but never adds any, so a collection without missing ids (any
    // collection while it is being built) needs no probe of the missing set per document.
    const settlesMissing = this.missing.hasAny(uuid);
    let count = 0;
    for (const raw of docs) {
      const idKey = this.documents.put(uuid, raw);
      if (settlesMissing) this.missing.remove(uuid, idKey);
      if (record?.name === SYSTEM_VIEWS) this.refreshView(record, deserializeExact(raw)._id);
      count++;
    }
    return count;
  }

  /**
   * Inserts the missing documents the agent fetched and forgets the `_id`s it did not find. Only
   * ids still in the missing set are touched: an insert or delete applied since the ids were
   * listed has settled them already, and a dropped collection took its ids with it.
   */
  resolveMissing(
    uuid: Binary | Uint8Array,
    fetched: Iterable<Uint8Array>,
    notFound: Iterable<Uint8Array> = [],
  ): { inserted: number; forgotten: number } {
    this.env.assertWriting("resolveMissing");
    let inserted = 0;
    let forgotten = 0;
    for (const raw of fetched) {
      const idKey = idKeyOf(raw);
      if (!this.missing.remove(uuid, idKey)) continue;
      this.documents.putWithKey(uuid, idKey, raw);
      inserted++;
    }
    for (const idDocument of notFound) if (this.missing.remove(uuid, idKeyOf(idDocument))) forgotten++;
    return { inserted, forgotten };
  }

  /**
   * Mirrors the system.views document with `_id` `viewId` ("<db>.<view>") into the view catalog
   * (see `views.ts`), after it was inserted, replaced, updated or deleted.
   */
  refreshView(systemViews: CollectionRecord, viewId: unknown): void {
    if (typeof viewId !== "string") return;
    syncView(this.catalog, systemViews.db, viewId, this.documents.get(systemViews.uuid, encodeIdKey(viewId)));
  }

  /** Creates or updates a view from a create command with `viewOn`, and its system.views document if that collection exists. */
  putView(db: string, name: string, options: Document): void {
    this.env.assertWriting("putView");
    this.catalog.putView({ db, name, options });
    const systemViews = this.catalog.collectionByName(db, SYSTEM_VIEWS);
    if (systemViews)
      this.documents.put(systemViews.uuid, Buffer.from(serialize(viewDefinition(db, name, options))));
  }

  /** dbHash of one database (see `dbHash.ts`). */
  dbHash(db: string, only?: string[]): DatabaseHash {
    return databaseHash(this.catalog, this.documents, db, only);
  }
}
