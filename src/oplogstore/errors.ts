/**
 * What went wrong, as a code callers can act on:
 * - NOT_FOUND: no object under the key (get only; delete and exists treat absence as normal).
 * - NO_SPACE: the device, a disk quota or the store's own `maxBytes` quota is full. The agent keeps
 *   the slice and retries later, so this must be distinguishable from a bad request.
 * - INVALID_KEY: the key or prefix breaks the rules in keys.ts (a caller bug, never retried).
 * - UNAVAILABLE: the store cannot be reached or refuses us (network, credentials, missing bucket,
 *   closed store); retrying later or fixing configuration helps.
 * - IO: anything else (disk errors, checksum mismatch, unexpected service errors).
 */
export type OplogStoreErrorCode = "NOT_FOUND" | "NO_SPACE" | "INVALID_KEY" | "UNAVAILABLE" | "IO";

export interface OplogStoreErrorDetails {
  /** The store's `location` (never with credentials). */
  location: string;
  /** The key or prefix the operation was about, if any. */
  key?: string;
  /** What happened, in a few words ("no space left on the device (ENOSPC)"). */
  problem: string;
  /** What an operator can do about it ("free space on /data or raise --oplog-store-max-gb"). */
  hint?: string;
  cause?: unknown;
}

/**
 * The only error the oplog stores throw. The message names the store and the key and ends with a
 * hint, because these errors end up in server logs and on the Backup page where an operator has to
 * act on them without reading code.
 */
export class OplogStoreError extends Error {
  override readonly name = "OplogStoreError";
  readonly code: OplogStoreErrorCode;
  readonly location: string;
  readonly key: string | undefined;
  /** What happened, without the store, key and hint (for stores built on this one, which word their own message). */
  readonly problem: string;
  readonly hint: string | undefined;

  constructor(code: OplogStoreErrorCode, details: OplogStoreErrorDetails) {
    super(formatMessage(details), details.cause === undefined ? undefined : { cause: details.cause });
    this.code = code;
    this.location = details.location;
    this.key = details.key;
    this.problem = details.problem;
    this.hint = details.hint;
  }

  /** True if `err` is an OplogStoreError (with `code`, when given). */
  static is(err: unknown, code?: OplogStoreErrorCode): err is OplogStoreError {
    return err instanceof OplogStoreError && (code === undefined || err.code === code);
  }
}

function formatMessage({ location, key, problem, hint }: OplogStoreErrorDetails): string {
  const subject =
    key === undefined ? `oplog store ${location}` : `oplog store ${location}, key ${quoteKey(key)}`;
  return `${subject}: ${problem}${hint ? `; ${hint}` : ""}`;
}

/** JSON quoting, so an invalid key with control characters or quotes cannot garble a log line. */
function quoteKey(key: string): string {
  const max = 300;
  return JSON.stringify(key.length > max ? `${key.slice(0, max)}...` : key);
}
