import { createHash } from "node:crypto";
import { BlockStoreError } from "./errors.js";

/**
 * A block store keeps snapshot blocks by content: a block's name is the SHA-256 of its bytes (64
 * lowercase hex digits), so identical blocks are stored once, whichever snapshot or deployment
 * writes them (DESIGN.md "Snapshots"). Blocks are opaque here: the snapshot
 * writer has already compressed (and maybe encrypted) them, and hashes what it hands over.
 *
 * Everything at rest carries a checksum: `put` refuses bytes that do not hash to their name, and
 * `get` re-hashes what it read, so a damaged block is reported (CORRUPT_BLOCK), never returned.
 * Every method rejects a malformed hash with `BlockStoreError` code INVALID_HASH.
 */
export interface BlockStore {
  /** Where it stores, for logs and errors: "file:///abs/blockstore.sqlite" or "s3://bucket/prefix". Never includes credentials. */
  readonly location: string;
  /**
   * Stores `bytes` as block `hash`; resolves only once the block is durable. A block that is already
   * stored is left alone (no write). Bytes that do not hash to `hash` are refused (HASH_MISMATCH)
   * and nothing is written. Resolves true if this call stored the block, false if it was there
   * already (or a concurrent put of the same block stored it): the snapshot's `storedBytes`.
   */
  put(hash: string, bytes: Buffer): Promise<boolean>;
  /** The block's bytes, after checking they hash to `hash`: NOT_FOUND if absent, CORRUPT_BLOCK if damaged. */
  get(hash: string): Promise<Buffer>;
  /** Whether the block is stored (without reading or checking its bytes). */
  has(hash: string): Promise<boolean>;
  /** Removes the block; no error if absent. */
  delete(hash: string): Promise<void>;
  /**
   * Every stored block with its size in bytes, in hash order. Memory stays bounded (pages), and the
   * store may be written to (put, delete) while a listing is under way.
   */
  list(): AsyncIterable<BlockInfo>;
  /** Releases files and connections; the store must not be used afterwards (UNAVAILABLE). */
  close(): Promise<void>;
}

/** One entry of `BlockStore.list`. */
export interface BlockInfo {
  hash: string;
  size: number;
}

const HASH = /^[0-9a-f]{64}$/;

/** The name of a block: the SHA-256 of its bytes, as 64 lowercase hex digits. */
export function blockHash(bytes: Buffer): string {
  return createHash("sha256").update(bytes).digest("hex");
}

export function isBlockHash(hash: unknown): hash is string {
  return typeof hash === "string" && HASH.test(hash);
}

export function assertBlockHash(hash: unknown, location: string): asserts hash is string {
  if (isBlockHash(hash)) return;
  throw new BlockStoreError("INVALID_HASH", {
    location,
    hash: typeof hash === "string" ? hash : String(hash),
    problem: "not a block hash",
    hint: "a block is named by the SHA-256 of its bytes: 64 lowercase hex digits",
  });
}

/** Refuses bytes that do not hash to `hash` (the caller's bug: nothing is stored). */
export function assertBytesMatch(hash: string, bytes: Buffer, location: string): void {
  if (!Buffer.isBuffer(bytes)) {
    throw new TypeError(`block store ${location}, block ${hash}: bytes must be a Buffer`);
  }
  const actual = blockHash(bytes);
  if (actual === hash) return;
  throw new BlockStoreError("HASH_MISMATCH", {
    location,
    hash,
    problem: `refused to store ${bytes.length} bytes whose SHA-256 is ${actual}, not the block's hash`,
    hint: "a block must be stored under the SHA-256 of exactly the bytes given (hash after compressing and encrypting)",
  });
}

/** Returns `bytes` if they hash to `hash` (and have `expectedSize`, the size recorded at put, when known); CORRUPT_BLOCK otherwise. */
export function verifiedBlock(hash: string, bytes: Buffer, location: string, expectedSize?: number): Buffer {
  const actual = blockHash(bytes);
  if (actual === hash && (expectedSize === undefined || expectedSize === bytes.length)) return bytes;
  const size =
    expectedSize !== undefined && expectedSize !== bytes.length
      ? `${bytes.length} bytes where ${expectedSize} were stored`
      : `${bytes.length} bytes`;
  throw new BlockStoreError("CORRUPT_BLOCK", {
    location,
    hash,
    problem: `the stored block is damaged: read ${size} whose SHA-256 is ${actual}`,
    hint:
      "the copy in the store no longer matches its hash; snapshots that use this block cannot be restored " +
      "from it. Check the storage for errors, then delete the block so the next snapshot writes it again, " +
      "or restore the store from a copy",
  });
}
