import { execFile, execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import Database from "better-sqlite3";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { blockHash } from "../../../src/snapshot/stores/blockStore.js";
import type { BlockStoreError } from "../../../src/snapshot/stores/errors.js";
import {
  BLOCKSTORE_APPLICATION_ID,
  SqliteBlockStore,
  type SqliteBlockStoreOptions,
} from "../../../src/snapshot/stores/sqliteBlockStore.js";
import { block, blocks, collect, describeBlockStoreContract, expectBlockError } from "./contract.js";

const root = mkdtempSync(path.join(tmpdir(), "tidemark-sqlite-blocks-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

let fileCounter = 0;
function newFile(): string {
  return path.join(root, `t${++fileCounter}`, "blockstore.sqlite");
}

/** Every store a test opens, closed after it. */
const opened: SqliteBlockStore[] = [];
afterEach(async () => {
  await Promise.all(opened.splice(0).map((s) => s.close()));
});
async function openAt(file: string, options?: SqliteBlockStoreOptions): Promise<SqliteBlockStore> {
  const store = await SqliteBlockStore.open(file, options);
  opened.push(store);
  return store;
}

/** Runs `fn` on a raw connection to the database file (what an operator or a damaged disk might do). */
function withRaw<T>(file: string, fn: (db: Database.Database) => T): T {
  const db = new Database(file);
  try {
    return fn(db);
  } finally {
    db.close();
  }
}

describeBlockStoreContract("SqliteBlockStore", async () => SqliteBlockStore.open(newFile()), {
  locationScheme: "file:///",
  // The store lists 1000 blocks per page.
  listingSize: 2345,
  // Thousands of puts, each its own fsynced transaction, take seconds; the listing tests only need
  // the rows, so they are written in one transaction on a second connection (what put writes).
  putMany: async (store, items) => {
    withRaw((store as SqliteBlockStore).path, (db) => {
      const insert = db.prepare("INSERT INTO blocks (hash, size, data, created_at) VALUES (?, ?, ?, ?)");
      db.transaction(() => {
        for (const { hash, bytes } of items) insert.run(hash, bytes.length, bytes, Date.now());
      })();
    });
  },
});

describe("SqliteBlockStore", () => {
  it("creates the database and its directories, named as a file: URL", async () => {
    const file = path.join(root, "nested", "deeper", "blocks.sqlite");
    const store = await openAt(file);
    expect(existsSync(file)).toBe(true);
    expect(store.path).toBe(file);
    expect(store.location).toBe(pathToFileURL(file).href);
    withRaw(file, (db) => {
      expect(db.pragma("application_id", { simple: true })).toBe(BLOCKSTORE_APPLICATION_ID);
      expect(db.pragma("journal_mode", { simple: true })).toBe("wal");
      expect(db.pragma("user_version", { simple: true })).toBe(1);
    });
  });

  it("resolves a relative path against the working directory", async () => {
    const relative = path.relative(process.cwd(), newFile());
    const store = await openAt(relative);
    expect(path.isAbsolute(store.path)).toBe(true);
    expect(store.path).toBe(path.resolve(relative));
  });

  it("keeps blocks across close and reopen", async () => {
    const file = newFile();
    const items = blocks(30).map((b, i) => (i === 0 ? block(randomBytes(200_000)) : b));
    const first = await SqliteBlockStore.open(file);
    for (const b of items) await first.put(b.hash, b.bytes);
    await first.delete(items[1].hash);
    await first.close();

    const second = await openAt(file);
    for (const [i, b] of items.entries()) {
      if (i === 1) await expectBlockError(second.get(b.hash), "NOT_FOUND");
      else expect((await second.get(b.hash)).equals(b.bytes)).toBe(true);
    }
    expect(await second.put(items[0].hash, items[0].bytes)).toBe(false);
    expect(await collect(second.list())).toHaveLength(29);
  });

  it("has a block durably once put resolves, even if the process is killed without closing", async () => {
    const file = newFile();
    const item = block(randomBytes(50_000));
    // The child puts, reports, and waits to be killed: no close, no checkpoint.
    const child = runStoreScript(
      `const s = await SqliteBlockStore.open(${JSON.stringify(file)});
       const stored = await s.put(${JSON.stringify(item.hash)}, Buffer.from(${JSON.stringify(item.bytes.toString("base64"))}, "base64"));
       process.stdout.write(stored ? "stored\\n" : "not stored\\n");
       setTimeout(() => {}, 20_000);`,
    );
    await child.output("stored");
    child.process.kill("SIGKILL");
    await child.exited;
    expect(existsSync(`${file}-wal`)).toBe(true); // the block is (at least) in the WAL
    const store = await openAt(file);
    expect((await store.get(item.hash)).equals(item.bytes)).toBe(true);
  });

  describe("a damaged block", () => {
    it("fails get with CORRUPT_BLOCK naming the block, when a byte of the row is flipped", async () => {
      const file = newFile();
      const store = await openAt(file);
      const damaged = block(randomBytes(4096));
      const intact = block(randomBytes(4096));
      await store.put(damaged.hash, damaged.bytes);
      await store.put(intact.hash, intact.bytes);
      const flipped = Buffer.from(damaged.bytes);
      flipped[1234] ^= 0x20;
      withRaw(file, (db) =>
        db.prepare("UPDATE blocks SET data = ? WHERE hash = ?").run(flipped, damaged.hash),
      );

      const err = await expectBlockError(store.get(damaged.hash), "CORRUPT_BLOCK");
      expect(err.hash).toBe(damaged.hash);
      expect(err.message).toContain(damaged.hash);
      expect(err.message).toContain(store.location);
      expect(err.message).toContain(blockHash(flipped));
      expect(err.message).toContain("delete the block");
      // Only that block: the other reads fine, and has() does not read the bytes.
      expect((await store.get(intact.hash)).equals(intact.bytes)).toBe(true);
      expect(await store.has(damaged.hash)).toBe(true);
      // A put of the good bytes does not repair it (the block is "there"); delete and put does.
      expect(await store.put(damaged.hash, damaged.bytes)).toBe(false);
      await store.delete(damaged.hash);
      expect(await store.put(damaged.hash, damaged.bytes)).toBe(true);
      expect((await store.get(damaged.hash)).equals(damaged.bytes)).toBe(true);
    });

    it("fails get with CORRUPT_BLOCK when the row was truncated, saying what size was stored", async () => {
      const file = newFile();
      const store = await openAt(file);
      const item = block(randomBytes(1000));
      await store.put(item.hash, item.bytes);
      withRaw(file, (db) =>
        db.prepare("UPDATE blocks SET data = substr(data, 1, 600) WHERE hash = ?").run(item.hash),
      );
      const err = await expectBlockError(store.get(item.hash), "CORRUPT_BLOCK");
      expect(err.message).toContain("600 bytes where 1000 were stored");
    });

    it("still returns bytes (a Buffer) when the row's value was turned into TEXT", async () => {
      const file = newFile();
      const store = await openAt(file);
      const item = block(Buffer.from("plain ascii block"));
      await store.put(item.hash, item.bytes);
      withRaw(file, (db) => {
        db.prepare("UPDATE blocks SET data = CAST(data AS TEXT) WHERE hash = ?").run(item.hash);
        expect(db.prepare("SELECT typeof(data) AS t FROM blocks").get()).toEqual({ t: "text" });
      });
      const read = await store.get(item.hash);
      expect(Buffer.isBuffer(read)).toBe(true);
      expect(read.equals(item.bytes)).toBe(true);
    });
  });

  describe("with a maxBytes quota", () => {
    it("fails a put that does not fit with NO_SPACE, storing nothing, and keeps serving reads", async () => {
      const file = newFile();
      const store = await openAt(file, { maxBytes: 256 * 1024 });
      const fitted: Array<{ hash: string; bytes: Buffer }> = [];
      let err: BlockStoreError | undefined;
      for (let i = 0; i < 100 && err === undefined; i++) {
        const item = block(randomBytes(20_000));
        try {
          await store.put(item.hash, item.bytes);
          fitted.push(item);
        } catch (e) {
          err = await expectBlockError(Promise.reject(e), "NO_SPACE");
          expect(err.hash).toBe(item.hash);
          expect(err.message).toContain(item.hash);
          expect(err.message).toContain(store.location);
          expect(err.message).toContain("SQLITE_FULL");
          expect(err.hint).toContain(`free space on the disk holding ${file}`);
          // Nothing of it is stored, by this connection's view or another's.
          expect(await store.has(item.hash)).toBe(false);
          withRaw(file, (db) =>
            expect(db.prepare("SELECT count(*) AS n FROM blocks WHERE hash = ?").get(item.hash)).toEqual({
              n: 0,
            }),
          );
        }
      }
      expect(err, "the quota was never reached").toBeDefined();
      // Roughly the quota's worth went in, no more.
      expect(fitted.length).toBeGreaterThanOrEqual(8);
      expect(fitted.length).toBeLessThanOrEqual(13);

      // Reads, has, list, and puts of blocks already there all still work at the full quota.
      for (const item of fitted) expect((await store.get(item.hash)).equals(item.bytes)).toBe(true);
      expect(await collect(store.list())).toHaveLength(fitted.length);
      expect(await store.put(fitted[0].hash, fitted[0].bytes)).toBe(false);
      // A block bigger than the whole quota never fits.
      const huge = block(randomBytes(400_000));
      await expectBlockError(store.put(huge.hash, huge.bytes), "NO_SPACE");
      // Deleting frees room (SQLite reuses the freed pages) for a new block.
      await store.delete(fitted[0].hash);
      await store.delete(fitted[1].hash);
      const next = block(randomBytes(20_000));
      expect(await store.put(next.hash, next.bytes)).toBe(true);
      withRaw(file, (db) => expect(db.pragma("integrity_check", { simple: true })).toBe("ok"));
    });

    it("applies to this connection only: reopened without it, the store grows again", async () => {
      const file = newFile();
      const limited = await openAt(file, { maxBytes: 64 * 1024 });
      const big = block(randomBytes(100_000));
      await expectBlockError(limited.put(big.hash, big.bytes), "NO_SPACE");
      await limited.close();
      const unlimited = await openAt(file);
      expect(await unlimited.put(big.hash, big.bytes)).toBe(true);
    });

    it("rejects a quota that is not a positive integer", async () => {
      for (const maxBytes of [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
        await expect(SqliteBlockStore.open(newFile(), { maxBytes })).rejects.toThrow(
          /maxBytes must be a positive integer/,
        );
      }
    });
  });

  describe("on a real full disk (1 MiB tmpfs)", () => {
    let mountPoint = "";
    let skipReason: string | undefined;
    beforeAll(() => {
      if (process.getuid?.() !== 0) {
        skipReason = "not running as root, so no tmpfs can be mounted";
        return;
      }
      mountPoint = mkdtempSync(path.join(tmpdir(), "tidemark-full-"));
      try {
        execFileSync("mount", ["-t", "tmpfs", "-o", "size=1m", "tmpfs", mountPoint], { stdio: "pipe" });
      } catch (err) {
        skipReason = `mount -t tmpfs failed (${err instanceof Error ? err.message.trim() : String(err)})`;
      }
    });
    afterAll(() => {
      if (skipReason === undefined) execFileSync("umount", [mountPoint], { stdio: "pipe" });
      if (mountPoint) rmSync(mountPoint, { recursive: true, force: true });
    });

    it("fails the put that does not fit with NO_SPACE, storing nothing, and keeps serving reads", async (ctx) => {
      if (skipReason !== undefined) {
        console.warn(`SKIPPED real full-disk test: ${skipReason}`);
        ctx.skip(skipReason);
      }
      const file = path.join(mountPoint, "blockstore.sqlite");
      const store = await SqliteBlockStore.open(file);
      const fitted: Array<{ hash: string; bytes: Buffer }> = [];
      let err: BlockStoreError | undefined;
      for (let i = 0; i < 20 && err === undefined; i++) {
        const item = block(randomBytes(100_000));
        err = await store.put(item.hash, item.bytes).then(
          () => void fitted.push(item),
          (e: unknown) => expectBlockError(Promise.reject(e), "NO_SPACE"),
        );
        if (err !== undefined) {
          expect(err.message).toContain(item.hash);
          expect(err.message).toMatch(/disk is full/);
          expect(err.hint).toContain(`free space on the disk holding ${file}`);
          expect(await store.has(item.hash)).toBe(false);
        }
      }
      expect(err, "the disk never filled").toBeDefined();
      expect(fitted.length).toBeGreaterThan(3);
      for (const item of fitted) expect((await store.get(item.hash)).equals(item.bytes)).toBe(true);
      await store.close();
      withRaw(file, (db) => expect(db.pragma("integrity_check", { simple: true })).toBe("ok"));
    });
  });

  describe("two stores on one file", () => {
    it("see each other's puts and deletes", async () => {
      const file = newFile();
      const a = await openAt(file);
      const b = await openAt(file);
      const item = block(randomBytes(3000));
      expect(await a.put(item.hash, item.bytes)).toBe(true);
      expect(await b.has(item.hash)).toBe(true);
      expect((await b.get(item.hash)).equals(item.bytes)).toBe(true);
      expect(await b.put(item.hash, item.bytes)).toBe(false);
      expect(await collect(b.list())).toEqual([{ hash: item.hash, size: 3000 }]);
      await b.delete(item.hash);
      await expectBlockError(a.get(item.hash), "NOT_FOUND");
      // Closing one leaves the other working.
      await b.close();
      expect(await a.put(item.hash, item.bytes)).toBe(true);
    });

    it("waits for another connection's write lock, then fails UNAVAILABLE; reads go on meanwhile", async () => {
      const file = newFile();
      const store = await openAt(file, { busyTimeoutMs: 200 });
      const stored = block(Buffer.from("stored before the lock"));
      await store.put(stored.hash, stored.bytes);
      const locker = new Database(file);
      try {
        locker.exec("BEGIN IMMEDIATE");
        const item = block(Buffer.from("waits for the lock"));
        const started = Date.now();
        const err = await expectBlockError(store.put(item.hash, item.bytes), "UNAVAILABLE");
        expect(Date.now() - started).toBeGreaterThanOrEqual(150);
        expect(err.message).toContain("locked by another connection");
        expect(err.message).toContain(item.hash);
        expect((await store.get(stored.hash)).equals(stored.bytes)).toBe(true);
        locker.exec("ROLLBACK");
        expect(await store.put(item.hash, item.bytes)).toBe(true);
      } finally {
        locker.close();
      }
    });

    it("can be created by several processes at once", async () => {
      const file = newFile();
      const go = path.join(root, `go-${fileCounter}`);
      // Each child starts, says so, spins until told to go, then opens the new file and puts its
      // own block and a shared one: all of them create the schema at the same moment.
      const children = Array.from({ length: 6 }, (_, i) =>
        runStoreScript(
          `process.stdout.write("ready\\n");
           const until = Date.now() + 20_000;
           while (!existsSync(${JSON.stringify(go)})) if (Date.now() > until) process.exit(3);
           const s = await SqliteBlockStore.open(${JSON.stringify(file)});
           const mine = Buffer.from("child ${i}"), shared = Buffer.from("shared");
           await s.put(blockHash(mine), mine);
           await s.put(blockHash(shared), shared);
           await s.close();
           process.stdout.write("ok\\n");`,
        ),
      );
      await Promise.all(children.map((c) => c.output("ready")));
      writeFileSync(go, "");
      const outputs = await Promise.all(children.map((c) => c.result));
      expect(outputs.map((o) => o.trim())).toEqual(Array(6).fill("ready\nok"));
      const store = await openAt(file);
      const expected = [...Array.from({ length: 6 }, (_, i) => `child ${i}`), "shared"]
        .map((s) => blockHash(Buffer.from(s)))
        .sort();
      expect((await collect(store.list())).map((b) => b.hash)).toEqual(expected);
    });
  });

  describe("refuses files that are not a blockstore database", () => {
    it("another SQLite database (the catalog, say), without changing it", async () => {
      const file = path.join(root, "catalog.sqlite");
      withRaw(file, (db) => {
        db.pragma("application_id = 1414415699");
        db.exec("CREATE TABLE deployments (id TEXT PRIMARY KEY); INSERT INTO deployments VALUES ('dep1')");
      });
      const before = readFileSync(file);
      const err = await expectBlockError(SqliteBlockStore.open(file), "UNAVAILABLE");
      expect(err.message).toContain("not a Tidemark blockstore database");
      expect(err.message).toContain(pathToFileURL(file).href);
      expect(err.hint).toContain("a path of its own");
      // Not switched to WAL, no table added: byte for byte the same file.
      expect(readFileSync(file).equals(before)).toBe(true);
      expect(existsSync(`${file}-wal`)).toBe(false);
    });

    it("a SQLite database with tables but no application_id", async () => {
      const file = path.join(root, "other.sqlite");
      withRaw(file, (db) => db.exec("CREATE TABLE t (x)"));
      const err = await expectBlockError(SqliteBlockStore.open(file), "UNAVAILABLE");
      expect(err.message).toContain("not a Tidemark blockstore database");
    });

    it("a file that is not SQLite at all", async () => {
      const file = path.join(root, "notes.sqlite");
      writeFileSync(file, "these are my notes, not a database ".repeat(20));
      const err = await expectBlockError(SqliteBlockStore.open(file), "UNAVAILABLE");
      expect(err.message).toContain("is not a SQLite database");
      expect(err.message).toContain(file);
      expect(readFileSync(file, "utf8")).toContain("these are my notes");
    });

    it("a blockstore database from a newer tidemark", async () => {
      const file = newFile();
      await (await SqliteBlockStore.open(file)).close();
      withRaw(file, (db) => db.pragma("user_version = 99"));
      const err = await expectBlockError(SqliteBlockStore.open(file), "UNAVAILABLE");
      expect(err.message).toContain("schema version 99");
      expect(err.message).toContain("upgrade tidemark");
    });

    it("a directory", async () => {
      const dir = path.join(root, "dir.sqlite");
      mkdirSync(dir, { recursive: true });
      const err = await expectBlockError(SqliteBlockStore.open(dir), "IO");
      expect(err.message).toContain(`cannot open ${dir}`);
      expect(err.message).toContain("SQLITE_CANTOPEN");
    });

    it("a path under a regular file", async () => {
      const file = path.join(root, "plain-file");
      writeFileSync(file, "x");
      const err = await expectBlockError(SqliteBlockStore.open(path.join(file, "b.sqlite")), "IO");
      expect(err.message).toContain(`cannot create the directory ${file}`);
      expect(err.hint).toContain("is a directory (not a file)");
    });
  });

  it("an empty file is a new database", async () => {
    const file = path.join(root, "empty.sqlite");
    writeFileSync(file, "");
    const store = await openAt(file);
    const item = block(Buffer.from("first"));
    expect(await store.put(item.hash, item.bytes)).toBe(true);
  });
});

interface StoreScript {
  process: ReturnType<typeof execFile>;
  /** Resolves once stdout contains `text`. */
  output(text: string): Promise<void>;
  /** stdout, once the process exits with status 0. */
  result: Promise<string>;
  exited: Promise<void>;
}

/** The compiled stores that globalSetup builds into dist/, so that other Node processes can use them. */
const compiled = (file: string): string =>
  pathToFileURL(path.resolve(fileURLToPath(import.meta.url), "../../../../dist/src/snapshot/stores", file))
    .href;

/** Runs `body` as an ES module in a new Node process, with SqliteBlockStore, blockHash and existsSync imported. */
function runStoreScript(body: string): StoreScript {
  const source = [
    `import { existsSync } from "node:fs";`,
    `import { SqliteBlockStore } from ${JSON.stringify(compiled("sqliteBlockStore.js"))};`,
    `import { blockHash } from ${JSON.stringify(compiled("blockStore.js"))};`,
    body,
  ].join("\n");
  let stdout = "";
  const waiters: Array<() => void> = [];
  let settle!: (value: string) => void;
  let fail!: (err: Error) => void;
  const result = new Promise<string>((resolve, reject) => {
    settle = resolve;
    fail = reject;
  });
  // The timeout (and the children's own deadlines) keep a failed test from leaving processes behind.
  const options = { timeout: 20_000 };
  const child = execFile(
    process.execPath,
    ["--input-type=module", "-e", source],
    options,
    (err, out, stderr) => {
      if (err && !err.killed) fail(new Error(`child failed: ${err.message}\n${stderr}`));
      else settle(out);
    },
  );
  child.stdout?.on("data", (chunk: Buffer) => {
    stdout += chunk.toString();
    for (const wake of waiters.splice(0)) wake();
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  return {
    process: child,
    result,
    exited,
    output: (text) =>
      new Promise<void>((resolve, reject) => {
        const check = (): void => {
          if (stdout.includes(text)) resolve();
          else waiters.push(check);
        };
        result.then(
          () => (stdout.includes(text) ? resolve() : reject(new Error(`child exited without "${text}"`))),
          reject,
        );
        check();
      }),
  };
}
