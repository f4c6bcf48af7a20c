import { mkdirSync } from "node:fs";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import Database from "better-sqlite3";
import {
  assertBlockHash,
  assertBytesMatch,
  verifiedBlock,
  type BlockInfo,
  type BlockStore,
} from "./blockStore.js";
import { BlockStoreError, closedError } from "./errors.js";

export interface SqliteBlockStoreOptions {
  /**
   * A quota for the database, in bytes (SQLite's max_page_count): a put that would grow it beyond
   * this fails with NO_SPACE, like a full disk. Default: none.
   */
  maxBytes?: number;
  /** How long to wait for another connection's write lock before UNAVAILABLE (default 5 s). */
  busyTimeoutMs?: number;
}

/** The name of the blockstore database inside the data directory. */
export const DEFAULT_BLOCKSTORE_FILE = "blockstore.sqlite";

/** PRAGMA application_id of a blockstore database ("TDMB"), so another SQLite file is never taken for one. */
export const BLOCKSTORE_APPLICATION_ID = 0x54444d42;

/** The schema, one migration per version (PRAGMA user_version), as in src/catalog/schema.ts. */
const MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE blocks (
    hash       TEXT    PRIMARY KEY NOT NULL CHECK (length(hash) = 64),
    size       INTEGER NOT NULL,
    data       BLOB    NOT NULL,
    created_at INTEGER NOT NULL -- unix ms
  );
  `,
];

/** Blocks per page of `list`. */
const LIST_PAGE = 1000;

interface BlockRow {
  size: number;
  data: Buffer;
}

/**
 * Blocks in a SQLite database file (the "blockstore database"): one row per block, the bytes in a
 * BLOB. WAL mode with synchronous=FULL, so a put is durable (its WAL frame is fsynced) when it
 * resolves, and a crash at any moment leaves each block either wholly there or absent. Several
 * processes may share the file (WAL; writers wait up to `busyTimeoutMs` for each other).
 *
 * better-sqlite3 is synchronous: each call runs to completion before it resolves, so concurrent
 * puts in one process are simply serialised.
 */
export class SqliteBlockStore implements BlockStore {
  readonly location: string;
  /** The database file, absolute. */
  readonly path: string;
  private readonly db: Database.Database;
  private readonly statements: {
    has: Database.Statement<[string], unknown>;
    get: Database.Statement<[string], BlockRow>;
    insert: Database.Statement<[string, number, Buffer, number]>;
    delete: Database.Statement<[string]>;
    page: Database.Statement<[string, number], BlockInfo>;
  };
  private closed = false;

  private constructor(file: string, db: Database.Database) {
    this.path = file;
    this.location = pathToFileURL(file).href;
    this.db = db;
    this.statements = {
      has: db.prepare("SELECT 1 FROM blocks WHERE hash = ?"),
      // CAST: a row damaged into TEXT still comes back as bytes (a Buffer), for get to check and refuse.
      get: db.prepare("SELECT size, CAST(data AS BLOB) AS data FROM blocks WHERE hash = ?"),
      insert: db.prepare(
        "INSERT INTO blocks (hash, size, data, created_at) VALUES (?, ?, ?, ?) ON CONFLICT (hash) DO NOTHING",
      ),
      delete: db.prepare("DELETE FROM blocks WHERE hash = ?"),
      page: db.prepare("SELECT hash, size FROM blocks WHERE hash > ? ORDER BY hash LIMIT ?"),
    };
  }

  /** Opens (creating if needed, with its directory) the blockstore database at `file`. */
  static async open(file: string, options: SqliteBlockStoreOptions = {}): Promise<SqliteBlockStore> {
    const absolute = path.resolve(file);
    const location = pathToFileURL(absolute).href;
    if (options.maxBytes !== undefined && !(Number.isSafeInteger(options.maxBytes) && options.maxBytes > 0)) {
      throw new RangeError(`block store ${location}: maxBytes must be a positive integer`);
    }
    const directory = path.dirname(absolute);
    try {
      mkdirSync(directory, { recursive: true });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? "error";
      throw new BlockStoreError("IO", {
        location,
        problem: `cannot create the directory ${directory} (${code})`,
        hint: "check that each part of the path is a directory (not a file) that the user running tidemark can write to",
        cause: err,
      });
    }
    let db: Database.Database | undefined;
    try {
      db = new Database(absolute);
      const opened = db;
      const busyTimeoutMs = Math.max(0, Math.floor(options.busyTimeoutMs ?? 5_000));
      opened.pragma(`busy_timeout = ${busyTimeoutMs}`);
      await retryWhileBusy(busyTimeoutMs, () => {
        // Checked before switching to WAL, which rewrites the header of whatever file this is.
        opened.transaction(() => checkKind(opened, location))();
        opened.pragma("journal_mode = WAL");
      });
      opened.pragma("synchronous = FULL");
      migrate(opened, location);
      if (options.maxBytes !== undefined) {
        const pageSize = opened.pragma("page_size", { simple: true }) as number;
        opened.pragma(`max_page_count = ${Math.max(1, Math.floor(options.maxBytes / pageSize))}`);
      }
      return new SqliteBlockStore(absolute, opened);
    } catch (err) {
      db?.close();
      throw sqliteError(err, location, "open the blockstore database");
    }
  }

  async put(hash: string, bytes: Buffer): Promise<boolean> {
    this.assertOpen();
    assertBlockHash(hash, this.location);
    assertBytesMatch(hash, bytes, this.location);
    try {
      // Reading first keeps a put of a stored block a pure read: no write lock, no fsync.
      if (this.statements.has.get(hash) !== undefined) return false;
      return this.statements.insert.run(hash, bytes.length, bytes, Date.now()).changes === 1;
    } catch (err) {
      throw sqliteError(err, this.location, "store the block", hash);
    }
  }

  async get(hash: string): Promise<Buffer> {
    this.assertOpen();
    assertBlockHash(hash, this.location);
    let row: BlockRow | undefined;
    try {
      row = this.statements.get.get(hash);
    } catch (err) {
      throw sqliteError(err, this.location, "read the block", hash);
    }
    if (row === undefined) {
      throw new BlockStoreError("NOT_FOUND", {
        location: this.location,
        hash,
        problem: "no such block",
        hint: "it was never stored or has been deleted (groom)",
      });
    }
    return verifiedBlock(hash, row.data, this.location, row.size);
  }

  async has(hash: string): Promise<boolean> {
    this.assertOpen();
    assertBlockHash(hash, this.location);
    try {
      return this.statements.has.get(hash) !== undefined;
    } catch (err) {
      throw sqliteError(err, this.location, "check the block", hash);
    }
  }

  async delete(hash: string): Promise<void> {
    this.assertOpen();
    assertBlockHash(hash, this.location);
    try {
      this.statements.delete.run(hash);
    } catch (err) {
      throw sqliteError(err, this.location, "delete the block", hash);
    }
  }

  /** Pages by hash (keyset), so no statement stays open between pages and puts and deletes may run meanwhile. */
  async *list(): AsyncGenerator<BlockInfo> {
    this.assertOpen();
    let after = "";
    while (true) {
      this.assertOpen();
      let page: BlockInfo[];
      try {
        page = this.statements.page.all(after, LIST_PAGE);
      } catch (err) {
        throw sqliteError(err, this.location, "list the blocks");
      }
      for (const { hash, size } of page) yield { hash, size };
      if (page.length < LIST_PAGE) return;
      after = page[page.length - 1].hash;
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.db.close();
  }

  private assertOpen(): void {
    if (this.closed) throw closedError(this.location);
  }
}

/**
 * Refuses a SQLite file that is something else (the catalog, say), before changing anything in it.
 * Run inside a transaction: its two reads must see the same state of a file that another process
 * may be creating the schema in.
 */
/**
 * Runs `step` again while SQLite answers SQLITE_BUSY, for up to `timeoutMs`: switching a new file
 * to WAL needs the file to itself, and SQLite refuses at once, without its busy handler, while
 * another process opening the same new file holds it (several servers or tools starting together).
 */
async function retryWhileBusy(timeoutMs: number, step: () => void): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      step();
      return;
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      if (code !== "SQLITE_BUSY" || Date.now() >= deadline) throw err;
      await new Promise((resolve) => setTimeout(resolve, 10 + Math.random() * 40));
    }
  }
}

function checkKind(db: Database.Database, location: string): void {
  const applicationId = db.pragma("application_id", { simple: true }) as number;
  if (applicationId === BLOCKSTORE_APPLICATION_ID) return;
  const tables = db.prepare("SELECT count(*) AS n FROM sqlite_master").get() as { n: number };
  if (applicationId === 0 && tables.n === 0) return; // new, empty
  throw new BlockStoreError("UNAVAILABLE", {
    location,
    problem: "the file is a SQLite database but not a Tidemark blockstore database",
    hint: "give the snapshot store a path of its own (a new file ending .sqlite), not the catalog's or another program's",
  });
}

/**
 * Brings the schema up to date. Several processes may open a new file at once, so the version is
 * read and the migrations applied in one IMMEDIATE transaction: the write lock is taken (waiting
 * up to the busy timeout) before reading, and whoever comes second sees the schema already made.
 * (A deferred transaction would read first and then fail SQLITE_BUSY at once on upgrading to a
 * write, without waiting, when another connection has written meanwhile.)
 */
function migrate(db: Database.Database, location: string): void {
  db.transaction(() => {
    checkKind(db, location);
    const version = db.pragma("user_version", { simple: true }) as number;
    if (version > MIGRATIONS.length) {
      throw new BlockStoreError("UNAVAILABLE", {
        location,
        problem: `the blockstore database has schema version ${version}, newer than this tidemark knows (${MIGRATIONS.length})`,
        hint: "a newer tidemark wrote it; upgrade tidemark",
      });
    }
    if (version === MIGRATIONS.length) return;
    for (let next = version; next < MIGRATIONS.length; next++) db.exec(MIGRATIONS[next]);
    db.pragma(`application_id = ${BLOCKSTORE_APPLICATION_ID}`);
    db.pragma(`user_version = ${MIGRATIONS.length}`);
  }).immediate();
}

/** Classifies a better-sqlite3 error (SqliteError codes are SQLite's extended result code names). */
function sqliteError(err: unknown, location: string, action: string, hash?: string): BlockStoreError {
  if (err instanceof BlockStoreError) return err;
  const code =
    typeof err === "object" && err !== null && "code" in err && typeof err.code === "string" ? err.code : "";
  const message = err instanceof Error ? err.message : String(err);
  const file = location.startsWith("file:") ? fileURLToPath(location) : location;
  const base = { location, hash, cause: err };
  const what = `${message}${code ? ` (${code})` : ""}`;
  if (code === "SQLITE_FULL" || (code.startsWith("SQLITE_IOERR") && /ENOSPC|disk is full/i.test(message))) {
    return new BlockStoreError("NO_SPACE", {
      ...base,
      problem: `cannot ${action}: the blockstore database is full (${what})`,
      hint: `free space on the disk holding ${file}, or raise the store's size limit`,
    });
  }
  if (code.startsWith("SQLITE_BUSY") || code.startsWith("SQLITE_LOCKED")) {
    return new BlockStoreError("UNAVAILABLE", {
      ...base,
      problem: `cannot ${action}: the blockstore database is locked by another connection (${what})`,
      hint: "another process holds a long write transaction on it; retry later, or check that only tidemark uses the file",
    });
  }
  if (code === "SQLITE_NOTADB") {
    return new BlockStoreError("UNAVAILABLE", {
      ...base,
      problem: `cannot ${action}: ${file} is not a SQLite database (${what})`,
      hint: "give the snapshot store a path of its own (a new file ending .sqlite)",
    });
  }
  if (code.startsWith("SQLITE_CORRUPT")) {
    return new BlockStoreError("IO", {
      ...base,
      problem: `cannot ${action}: the blockstore database file is damaged (${what})`,
      hint: `check the disk holding ${file}; "sqlite3 ${file} 'PRAGMA integrity_check'" shows the damage; restore the file from a copy`,
    });
  }
  if (code.startsWith("SQLITE_CANTOPEN") || code.startsWith("SQLITE_READONLY") || code === "SQLITE_PERM") {
    return new BlockStoreError("IO", {
      ...base,
      problem: `cannot ${action}: cannot open ${file} for writing (${what})`,
      hint: `check that ${file} is a file (not a directory) on a writable file system, owned by the user running tidemark`,
    });
  }
  return new BlockStoreError("IO", {
    ...base,
    problem: `cannot ${action}: ${what}`,
    hint: `check the disk holding ${file} (kernel log, file system errors)`,
  });
}
