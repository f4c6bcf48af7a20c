/** Why a head database operation failed; stable strings the daemon can branch on. */
export type HeadDbErrorCode =
  /** A change was attempted outside `HeadDatabase.write`, which would break "same transaction". */
  | "NOT_IN_WRITE_TRANSACTION"
  /** The encoded `_id` does not fit LMDB's largest key. */
  | "KEY_TOO_LARGE"
  /** A stored record or key cannot be read back. */
  | "CORRUPT_RECORD"
  /** An argument is not what the head database accepts (a 15-byte UUID, a document without `_id`). */
  | "INVALID_ARGUMENT"
  /** The environment was closed. */
  | "CLOSED";

/** An error of the head database, with the namespace or collection it concerns when known. */
export class HeadDbError extends Error {
  override readonly name = "HeadDbError";

  constructor(
    readonly code: HeadDbErrorCode,
    message: string,
    readonly context: Record<string, unknown> = {},
  ) {
    super(`${code}: ${message}`);
  }
}
