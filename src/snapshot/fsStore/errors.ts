/**
 * What went wrong in the file system snapshot store:
 * - INVALID_ID: the snapshot id is not a safe file name (a caller bug).
 * - INVALID_INPUT: a collection the caller gave cannot be written (bad name, a view with documents,
 *   a document that is not BSON, two collections with one name); nothing is kept.
 * - EXISTS: a snapshot (or an unfinished write) with this id is already there.
 * - NOT_FOUND: no complete snapshot with this id, or no such namespace in it.
 * - NO_SPACE: the disk or quota is full (ENOSPC, EDQUOT).
 * - IO: any other read or write failure of the file system (permissions, read-only, I/O errors).
 * - CORRUPT: stored bytes that do not match the manifest (SHA-256, size, BSON, count, MD5), a
 *   damaged manifest, or a file that cannot be unsealed or gunzipped.
 * - SOURCE: reading the documents or collections to write failed (the caller's iterable threw).
 */
export type FsStoreErrorCode =
  "INVALID_ID" | "INVALID_INPUT" | "EXISTS" | "NOT_FOUND" | "NO_SPACE" | "IO" | "CORRUPT" | "SOURCE";

export interface FsStoreErrorDetails {
  /** The store's `location` (a file:// URL). */
  location: string;
  /** The snapshot the operation was about, if any. */
  snapshotId?: string;
  /** The file, relative to the snapshot directory (or the store root for work directories). */
  file?: string;
  /** What happened, in a few words. */
  problem: string;
  /** What an operator can do about it. */
  hint?: string;
  cause?: unknown;
}

/**
 * The only error the file system snapshot store throws (besides TypeError for arguments of the
 * wrong type). The message names the store, the snapshot and the file, and ends with a hint.
 */
export class FsStoreError extends Error {
  override readonly name = "FsStoreError";
  readonly code: FsStoreErrorCode;
  readonly location: string;
  readonly snapshotId: string | undefined;
  readonly file: string | undefined;
  readonly problem: string;
  readonly hint: string | undefined;

  constructor(code: FsStoreErrorCode, details: FsStoreErrorDetails) {
    super(formatMessage(details), details.cause === undefined ? undefined : { cause: details.cause });
    this.code = code;
    this.location = details.location;
    this.snapshotId = details.snapshotId;
    this.file = details.file;
    this.problem = details.problem;
    this.hint = details.hint;
  }

  /** True if `err` is an FsStoreError (with `code`, when given). */
  static is(err: unknown, code?: FsStoreErrorCode): err is FsStoreError {
    return err instanceof FsStoreError && (code === undefined || err.code === code);
  }
}

function formatMessage({ location, snapshotId, file, problem, hint }: FsStoreErrorDetails): string {
  let subject = `snapshot store ${location}`;
  if (snapshotId !== undefined) subject += `, snapshot ${quote(snapshotId)}`;
  if (file !== undefined) subject += `, file ${quote(file)}`;
  return `${subject}: ${problem}${hint ? `; ${hint}` : ""}`;
}

function quote(value: string): string {
  const max = 300;
  if (/^[\w.%+~/-]{1,300}$/.test(value)) return value;
  return JSON.stringify(value.length > max ? `${value.slice(0, max)}...` : value);
}

/** The errno-style code of an error or of any error in its `cause` chain. */
export function systemCode(err: unknown): string | undefined {
  for (let e = err, depth = 0; e !== undefined && e !== null && depth < 10; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string" && /^E[A-Z0-9]+$/.test(code)) return code;
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}

/** True for "the disk is full" in any of its forms. */
export function isNoSpace(err: unknown): boolean {
  const code = systemCode(err);
  return code === "ENOSPC" || code === "EDQUOT";
}
