/**
 * The LMDB environment of one deployment's head database and the discipline around it: every
 * change happens inside `write`, one LMDB write transaction, so documents, the catalog, the
 * applied optime, the phase state, the slice cursors, the missing set and held transaction
 * entries always change together. LMDB commits a transaction atomically (copy-on-write pages and
 * a meta page switch), so a crash at any point leaves the environment at the last committed
 * `write`, and the daemon resumes from its applied optime and slice cursors exactly.
 */
import { mkdirSync } from "node:fs";
import { open, type Database, type RootDatabase } from "lmdb";
import { HeadDbError } from "./errors.js";

export interface HeadEnvironmentOptions {
  /** The environment's directory (created if missing). */
  path: string;
  /**
   * Skip fsync at commit. Only for tests and throw-away databases (a point-in-time restore's
   * temporary head database): a power loss could then lose committed transactions.
   */
  noSync?: boolean;
  /** Initial memory map size in bytes; lmdb-js grows it as needed. */
  mapSize?: number;
}

/** The stores (LMDB named databases) of the environment. */
export interface HeadStores {
  /** (collection UUID + `_id` key) → the document's raw BSON. */
  documents: Database<Buffer, Buffer>;
  /** collection UUID → the collection's catalog record (BSON). */
  collections: Database<Buffer, Buffer>;
  /** "db\0name" → `{type: "collection", uuid}` or `{type: "view", options}` (BSON). */
  namespaces: Database<Buffer, Buffer>;
  /** (collection UUID + `_id` key) → `{_id}` (BSON) of a document an update could not find. */
  missing: Database<Buffer, Buffer>;
  /** (transaction id + NUL + ts) → a held oplog entry of an unfinished or prepared transaction. */
  pending: Database<Buffer, Buffer>;
  /** Resume state: applied optime, phase state, slice cursors. */
  state: Database<Buffer, Buffer>;
}

const STORE_NAMES = ["documents", "collections", "namespaces", "missing", "pending", "state"] as const;

export class HeadEnvironment {
  readonly stores: HeadStores;
  private writing = false;
  private closed = false;
  private readonly abortListeners: Array<() => void> = [];

  private constructor(
    private readonly root: RootDatabase<Buffer, Buffer>,
    readonly path: string,
  ) {
    const stores: Partial<HeadStores> = {};
    for (const name of STORE_NAMES)
      stores[name] = root.openDB<Buffer, Buffer>(name, { keyEncoding: "binary", encoding: "binary" });
    this.stores = stores as HeadStores;
  }

  static open(options: HeadEnvironmentOptions): HeadEnvironment {
    mkdirSync(options.path, { recursive: true });
    const root = open<Buffer, Buffer>({
      path: options.path,
      keyEncoding: "binary",
      encoding: "binary",
      maxDbs: STORE_NAMES.length + 2,
      noSync: options.noSync ?? false,
      mapSize: options.mapSize,
      // A write must be durable and visible when `write` returns, never batched with later ones.
      eventTurnBatching: false,
    });
    return new HeadEnvironment(root, options.path);
  }

  get inWriteTransaction(): boolean {
    return this.writing;
  }

  /**
   * Runs `action` in one LMDB write transaction. If it throws, nothing it did is kept. Reads
   * inside see the transaction's own changes. Nested calls join the outer transaction. `action`
   * must be synchronous: the transaction commits when it returns.
   */
  write<T>(action: () => T): T {
    this.assertOpen();
    if (this.writing) return action();
    this.writing = true;
    try {
      return this.root.transactionSync(() => {
        const result = action();
        if (typeof (result as { then?: unknown } | undefined)?.then === "function")
          throw new HeadDbError("INVALID_ARGUMENT", "a write transaction's action must be synchronous");
        return result;
      });
    } catch (error) {
      for (const listener of this.abortListeners) listener();
      throw error;
    } finally {
      this.writing = false;
    }
  }

  /** Calls `listener` when a write transaction is rolled back, so caches of what it read or wrote can be dropped. */
  onAbort(listener: () => void): void {
    this.abortListeners.push(listener);
  }

  /** Throws unless inside `write`: every change must share the transaction of its batch. */
  assertWriting(what: string): void {
    this.assertOpen();
    if (!this.writing)
      throw new HeadDbError("NOT_IN_WRITE_TRANSACTION", `${what} must run inside HeadDatabase.write`);
  }

  assertOpen(): void {
    if (this.closed) throw new HeadDbError("CLOSED", "the head database is closed");
  }

  /** Resolves once every committed transaction is on disk. */
  async flushed(): Promise<void> {
    await this.root.flushed;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.root.close();
  }
}
