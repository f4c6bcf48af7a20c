import { mkdir, readFile, rmdir, stat, unlink } from "node:fs/promises";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { errnoCode, writeFileDurably } from "./durableWrite.js";
import { OplogStoreError } from "./errors.js";
import { fsError } from "./fsErrors.js";
import { KeyedMutex } from "./keyedMutex.js";
import { assertValidKey, assertValidPrefix } from "./keys.js";
import type { OplogStore, StoredObject } from "./oplogStore.js";
import { walkSorted } from "./sortedWalk.js";
import { sweepStore } from "./sweep.js";

export interface FileSystemOplogStoreOptions {
  /**
   * Quota over the total size of the stored objects, in bytes. A put that would exceed it fails
   * with NO_SPACE before writing anything, so the oplog store cannot fill the disk it shares with
   * the head databases. Overwriting a key counts only the growth.
   */
  maxBytes?: number;
}

/**
 * An oplog store in a directory: key "a/b/c" is the file <root>/a/b/c.
 *
 * One process owns a store directory at a time (the running size total is kept in memory).
 * Puts are atomic and durable (see durableWrite.ts); puts and deletes of the same key are
 * serialized so the total stays exact; directories left empty by deletes are removed.
 */
export class FileSystemOplogStore implements OplogStore {
  readonly location: string;
  private readonly locks = new KeyedMutex();
  /** Bytes promised to puts in flight, so concurrent puts cannot overshoot the quota together. */
  private reservedBytes = 0;
  private closed = false;

  private constructor(
    /** Absolute path of the store's directory. */
    readonly root: string,
    readonly maxBytes: number | undefined,
    private totalBytes: number,
    /** Temp files of crashed puts removed at open (for logs). */
    readonly removedTempFiles: number,
  ) {
    this.location = pathToFileURL(root).href;
  }

  /** Creates the directory if needed, removes crash leftovers, and measures the store for the quota. */
  static async open(root: string, options: FileSystemOplogStoreOptions = {}): Promise<FileSystemOplogStore> {
    const abs = path.resolve(root);
    const location = pathToFileURL(abs).href;
    const { maxBytes } = options;
    if (maxBytes !== undefined && !(Number.isSafeInteger(maxBytes) && maxBytes >= 0)) {
      throw new RangeError(
        `oplog store ${location}: maxBytes must be a non-negative integer, got ${maxBytes}`,
      );
    }
    try {
      await mkdir(abs, { recursive: true });
      const swept = await sweepStore(abs);
      return new FileSystemOplogStore(abs, maxBytes, swept.bytes, swept.removedTempFiles);
    } catch (err) {
      throw fsError(err, { location, root: abs, action: "open the store" });
    }
  }

  /** Total size of the stored objects in bytes (the figure the quota is checked against). */
  get usedBytes(): number {
    return this.totalBytes;
  }

  async put(key: string, data: Buffer): Promise<void> {
    this.assertOpen();
    assertValidKey(key, this.location);
    await this.locks.run(key, async () => {
      const target = this.pathOf(key);
      const ctx = { location: this.location, root: this.root, key, action: "store the object" };
      const previous = await this.sizeOf(target, key);
      const growth = data.length - previous;
      const reserve = Math.max(growth, 0);
      if (this.maxBytes !== undefined && reserve > 0) {
        const wouldUse = this.totalBytes + this.reservedBytes + reserve;
        if (wouldUse > this.maxBytes) throw this.quotaError(key, data.length);
      }
      this.reservedBytes += reserve;
      try {
        await writeFileDurably(target, data);
        this.totalBytes += growth;
      } catch (err) {
        // The rename may have happened before a later step failed; count what is really there.
        this.totalBytes += (await this.sizeOf(target, key).catch(() => previous)) - previous;
        throw fsError(err, ctx);
      } finally {
        this.reservedBytes -= reserve;
      }
    });
  }

  async get(key: string): Promise<Buffer> {
    this.assertOpen();
    assertValidKey(key, this.location);
    try {
      return await readFile(this.pathOf(key));
    } catch (err) {
      const code = errnoCode(err);
      if (code === "ENOENT" || code === "ENOTDIR" || code === "EISDIR") throw this.notFound(key, err);
      throw fsError(err, { location: this.location, root: this.root, key, action: "read the object" });
    }
  }

  async exists(key: string): Promise<boolean> {
    this.assertOpen();
    assertValidKey(key, this.location);
    try {
      return (await stat(this.pathOf(key))).isFile();
    } catch (err) {
      const code = errnoCode(err);
      if (code === "ENOENT" || code === "ENOTDIR") return false;
      throw fsError(err, { location: this.location, root: this.root, key, action: "check the object" });
    }
  }

  async delete(key: string): Promise<void> {
    this.assertOpen();
    assertValidKey(key, this.location);
    await this.deleteKey(key);
  }

  async deletePrefix(prefix: string): Promise<number> {
    this.assertOpen();
    assertValidPrefix(prefix, this.location, false);
    let removed = 0;
    try {
      // Safe while walking: each directory is read once, and entries deleted since are skipped.
      for await (const { key } of walkSorted(this.root, prefix)) {
        if (await this.deleteKey(key)) removed++;
      }
    } catch (err) {
      throw fsError(err, {
        location: this.location,
        root: this.root,
        key: prefix,
        action: "delete by prefix",
      });
    }
    return removed;
  }

  async *list(prefix: string): AsyncGenerator<StoredObject> {
    this.assertOpen();
    assertValidPrefix(prefix, this.location, true);
    try {
      yield* walkSorted(this.root, prefix);
    } catch (err) {
      throw fsError(err, { location: this.location, root: this.root, key: prefix, action: "list" });
    }
  }

  async close(): Promise<void> {
    // Nothing is held open between calls; closing only stops further use.
    this.closed = true;
  }

  private pathOf(key: string): string {
    // Safe because keys are validated: no "..", no empty or absolute parts.
    return path.join(this.root, ...key.split("/"));
  }

  /** Size of the object at `target`, 0 if absent; a directory there is a key collision. */
  private async sizeOf(target: string, key: string): Promise<number> {
    try {
      const info = await stat(target);
      if (info.isDirectory()) throw Object.assign(new Error(`${target} is a directory`), { code: "EISDIR" });
      return info.size;
    } catch (err) {
      const code = errnoCode(err);
      if (code === "ENOENT" || code === "ENOTDIR") return 0;
      throw fsError(err, { location: this.location, root: this.root, key, action: "store the object" });
    }
  }

  /** Removes one object; true if it existed. */
  private deleteKey(key: string): Promise<boolean> {
    return this.locks.run(key, async () => {
      const target = this.pathOf(key);
      const ctx = { location: this.location, root: this.root, key, action: "delete the object" };
      try {
        const info = await stat(target);
        if (!info.isFile()) return false;
        await unlink(target);
        this.totalBytes -= info.size;
      } catch (err) {
        const code = errnoCode(err);
        if (code === "ENOENT" || code === "ENOTDIR") return false;
        throw fsError(err, ctx);
      }
      await this.pruneEmptyDirectories(path.dirname(target));
      return true;
    });
  }

  /**
   * Removes now-empty directories up to the root, so a terminated deployment leaves nothing behind
   * and listing does not wade through dead directories. A put racing with this redoes its mkdir.
   */
  private async pruneEmptyDirectories(dir: string): Promise<void> {
    for (let d = dir; d !== this.root && d.startsWith(this.root + path.sep); d = path.dirname(d)) {
      try {
        await rmdir(d);
      } catch {
        return; // ENOTEMPTY (still used), ENOENT (already gone) or anything else: stop quietly.
      }
    }
  }

  private assertOpen(): void {
    if (this.closed) {
      throw new OplogStoreError("UNAVAILABLE", {
        location: this.location,
        problem: "the store is closed",
        hint: "this is a bug in the caller: open the store again",
      });
    }
  }

  private notFound(key: string, cause: unknown): OplogStoreError {
    return new OplogStoreError("NOT_FOUND", {
      location: this.location,
      key,
      problem: "no such object",
      hint: "it was never stored or has already been deleted",
      cause,
    });
  }

  private quotaError(key: string, size: number): OplogStoreError {
    return new OplogStoreError("NO_SPACE", {
      location: this.location,
      key,
      problem:
        `storing ${size} bytes would exceed the store's quota ` +
        `(${this.totalBytes + this.reservedBytes} of ${this.maxBytes} bytes used)`,
      hint: `free space on ${this.root} (let the backup daemon consume slices) or raise --oplog-store-max-gb`,
    });
  }
}
