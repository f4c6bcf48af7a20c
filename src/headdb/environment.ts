/**
 * The LMDB environment of one deployment's head database and the discipline around it: every
 * change happens inside `write`, one LMDB write transaction, so documents, the catalog, the
 * applied optime, the phase state, the slice cursors, the missing set and held transaction
 * entries always change together. LMDB commits a transaction atomically (copy-on-write pages and
 * a meta page switch), so a crash at any point leaves the environment at the last committed
 * `write`, and the daemon resumes from its applied optime and slice cursors exactly.
 */
import { mkdirSync } from "node:fs";
import { open, type Database, type RootDatabase, type Transaction } from "lmdb";
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
  /** Resume state: applied optime, phase state, slice cursors, the last change number. */
  state: Database<Buffer, Buffer>;
  /** (collection UUID + `_id` key) → the change number of the document's last change (`changes.ts`). */
  changes: Database<Buffer, Buffer>;
  /** collection UUID → the change number of the collection's last emptying or drop (`changes.ts`). */
  collectionChanges: Database<Buffer, Buffer>;
}

const STORE_NAMES = [
  "documents",
  "collections",
  "namespaces",
  "missing",
  "pending",
  "state",
  "changes",
  "collectionChanges",
] as const;

/**
 * Read options: in a view's read transaction when one is given (`HeadEnvironment.readView`). Pass
 * them to lmdb as a copy made at the read (`get(key, { ...read })`, `getRange({ ...range, ...read })`):
 * a view's `transaction` is a getter that checks, as it is copied, that the view is still open
 * and not read inside a write transaction (where lmdb-js serves a `get` from the write without
 * looking at the options).
 */
export interface ReadOptions {
  readonly transaction?: Transaction;
}

/** A view's range reads (`rangeEntries`) read at most this many entries, or bytes, at a time. */
const VIEW_CHUNK_ENTRIES = 1000;
const VIEW_CHUNK_BYTES = 4 * 1024 * 1024;

/**
 * The entries of `range` in key order, read lazily. In a view (`read` has a transaction), a
 * bounded chunk at a time, each chunk's LMDB cursor closed before its entries are yielded: an
 * open cursor holds its read transaction, so an iteration left unfinished (a manual `next()`, an
 * exception in the loop) would pin the view's transaction after the view ended, for good (LMDB's
 * reader table fills up, and the file can no longer reuse the pages the view saw).
 */
export function* rangeEntries(
  store: Database<Buffer, Buffer>,
  range: { start: Buffer; end?: Buffer },
  read: ReadOptions,
): Generator<{ key: Buffer; value: Buffer }> {
  if (!("transaction" in read)) {
    yield* store.getRange(range);
    return;
  }
  let start = range.start;
  let exclusiveStart = false;
  for (;;) {
    const chunk: Array<{ key: Buffer; value: Buffer }> = [];
    let bytes = 0;
    for (const entry of store.getRange({ ...range, start, exclusiveStart, ...read })) {
      chunk.push(entry);
      bytes += entry.key.length + entry.value.length;
      if (chunk.length === VIEW_CHUNK_ENTRIES || bytes >= VIEW_CHUNK_BYTES) break;
    }
    if (chunk.length === 0) return;
    yield* chunk;
    start = chunk[chunk.length - 1].key;
    exclusiveStart = true;
  }
}

export class HeadEnvironment {
  readonly stores: HeadStores;
  private writing = false;
  /** Counts outermost write transactions, so state kept per transaction can tell them apart. */
  private writeSerial = 0;
  private closed = false;
  private readonly abortListeners: Array<() => void> = [];
  /** The promises of the async read views open now (`readView`), which `close` waits for. */
  private readonly openViews = new Set<Promise<unknown>>();

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
   * A number identifying the current write transaction (unique for the environment's lifetime,
   * also across rolled-back transactions); only meaningful inside `write`.
   */
  get writeTransactionSerial(): number {
    return this.writeSerial;
  }

  /**
   * Runs `read` with read options on one LMDB read transaction of the last committed state: reads
   * given them see that state however many write transactions commit meanwhile (LMDB keeps the
   * pages it sees, so the file cannot reuse them while it is open: end it promptly). `read` may be
   * async: the transaction ends when it returns or its promise settles, and reads with the options
   * throw from then on. Neither the view nor its reads may run inside `write`: lmdb-js serves a
   * `get` from the open write transaction whatever transaction it is given. `close` waits for the
   * views open at the time to end.
   */
  readView<T>(read: (options: ReadOptions) => T): T {
    this.assertOpen();
    if (this.writing)
      throw new HeadDbError(
        "INVALID_ARGUMENT",
        "a read snapshot cannot start inside a write transaction (its reads would see the write)",
      );
    const transaction = this.root.useReadTransaction();
    let ended = false;
    const usable = (): Transaction => {
      if (ended)
        throw new HeadDbError(
          "INVALID_ARGUMENT",
          "this read snapshot has ended: read it only inside its callback",
        );
      this.assertOpen();
      if (this.writing)
        throw new HeadDbError(
          "INVALID_ARGUMENT",
          "a read snapshot cannot be read inside a write transaction (lmdb would read the write)",
        );
      return transaction;
    };
    // Checked at every read that copies the options (see `ReadOptions`).
    const options: ReadOptions = {
      get transaction() {
        return usable();
      },
    };
    const end = () => {
      ended = true;
      transaction.done();
    };
    let result: T;
    try {
      result = read(options);
    } catch (error) {
      end();
      throw error;
    }
    if (!isThenable(result)) {
      end();
      return result;
    }
    const view: Promise<unknown> = Promise.resolve(result).finally(() => {
      end();
      this.openViews.delete(view);
    });
    this.openViews.add(view);
    return view as T;
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
    this.writeSerial++;
    try {
      return this.root.transactionSync(() => {
        const result = action();
        if (isThenable(result))
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

  /**
   * Refuses new writes, views and view reads at once, waits for the open views to end (their
   * transactions must end before the environment does), then closes.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.allSettled([...this.openViews]);
    await this.root.close();
  }
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return typeof (value as { then?: unknown } | undefined)?.then === "function";
}
