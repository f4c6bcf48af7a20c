/**
 * What went wrong in a block store, as a code callers can act on:
 * - NOT_FOUND: no such block (get only; has and delete treat absence as normal).
 * - CORRUPT_BLOCK: the stored bytes no longer hash to the block's name; the message names both.
 * - INVALID_HASH: the hash is not 64 lowercase hex digits (a caller bug, never retried).
 * - HASH_MISMATCH: a put whose bytes do not hash to the hash given (a caller bug; nothing stored).
 * - NO_SPACE: the disk, the database's `maxBytes` quota or the S3 service is full.
 * - UNAVAILABLE: the store cannot be reached or refuses us (network, timeouts, credentials, missing
 *   bucket, a database locked by another process or not a blockstore database, a closed store);
 *   retrying later or fixing configuration helps.
 * - IO: anything else (disk errors, a damaged database file, unexpected service errors).
 */
export type BlockStoreErrorCode =
  "NOT_FOUND" | "CORRUPT_BLOCK" | "INVALID_HASH" | "HASH_MISMATCH" | "NO_SPACE" | "UNAVAILABLE" | "IO";

export interface BlockStoreErrorDetails {
  /** The store's `location` (never with credentials). */
  location: string;
  /** The block the operation was about, if any. */
  hash?: string;
  /** What happened, in a few words. */
  problem: string;
  /** What an operator can do about it. */
  hint?: string;
  cause?: unknown;
}

/**
 * The only error the block stores throw (besides TypeError for arguments of the wrong type). Like
 * OplogStoreError, the message names the store and the block and ends with a hint, since it ends
 * up in logs, `tidemark snapshots verify` and the Backup page.
 */
export class BlockStoreError extends Error {
  override readonly name = "BlockStoreError";
  readonly code: BlockStoreErrorCode;
  readonly location: string;
  readonly hash: string | undefined;
  readonly problem: string;
  readonly hint: string | undefined;

  constructor(code: BlockStoreErrorCode, details: BlockStoreErrorDetails) {
    super(formatMessage(details), details.cause === undefined ? undefined : { cause: details.cause });
    this.code = code;
    this.location = details.location;
    this.hash = details.hash;
    this.problem = details.problem;
    this.hint = details.hint;
  }

  /** True if `err` is a BlockStoreError (with `code`, when given). */
  static is(err: unknown, code?: BlockStoreErrorCode): err is BlockStoreError {
    return err instanceof BlockStoreError && (code === undefined || err.code === code);
  }
}

function formatMessage({ location, hash, problem, hint }: BlockStoreErrorDetails): string {
  const subject =
    hash === undefined ? `block store ${location}` : `block store ${location}, block ${quoteHash(hash)}`;
  return `${subject}: ${problem}${hint ? `; ${hint}` : ""}`;
}

/** A valid hash as is; anything else JSON-quoted and cut short, so it cannot garble a log line. */
function quoteHash(hash: string): string {
  if (/^[0-9a-f]{64}$/.test(hash)) return hash;
  const max = 100;
  return JSON.stringify(hash.length > max ? `${hash.slice(0, max)}...` : hash);
}

/** A closed store refuses every call. */
export function closedError(location: string): BlockStoreError {
  return new BlockStoreError("UNAVAILABLE", {
    location,
    problem: "the store is closed",
    hint: "this is a bug in the caller: open the store again",
  });
}
