/**
 * What went wrong reading or writing a mongodump archive:
 * - BAD_MAGIC: the stream is neither a mongodump archive nor a gzipped one.
 * - UNSUPPORTED: an archive format version other than "0.1".
 * - TRUNCATED: the archive ends early (inside a document, a segment, the prelude, or before every
 *   namespace's EOF block), or its gzip stream is cut off.
 * - MALFORMED: bytes that are not valid BSON or not in the archive's structure (bad length, a
 *   segment for a namespace missing from the prelude, data after a namespace's EOF block, ...).
 * - CRC: a namespace's documents do not match the CRC-64 of its EOF block.
 * - METADATA: a prelude entry's metadata string is not a valid metadata.json document.
 * - INVALID_INPUT: the writer was given something it cannot write (a caller bug).
 * - SOURCE: reading the input stream (or a writer's document source) failed.
 * - SINK: writing the archive to its sink failed.
 */
export type ArchiveErrorCode =
  | "BAD_MAGIC"
  | "UNSUPPORTED"
  | "TRUNCATED"
  | "MALFORMED"
  | "CRC"
  | "METADATA"
  | "INVALID_INPUT"
  | "SOURCE"
  | "SINK";

export interface ArchiveErrorDetails {
  /** What happened, in a few words. */
  problem: string;
  /** The namespace concerned, if any (db "" with collection "oplog" is the dump's oplog). */
  db?: string;
  collection?: string;
  /** Byte offset in the (uncompressed) archive where the problem is. */
  offset?: number;
  cause?: unknown;
}

/** The only error the archive reader and writer throw (besides TypeError for wrong argument types). */
export class ArchiveError extends Error {
  override readonly name = "ArchiveError";
  readonly code: ArchiveErrorCode;
  readonly problem: string;
  readonly db: string | undefined;
  readonly collection: string | undefined;
  readonly offset: number | undefined;

  constructor(code: ArchiveErrorCode, details: ArchiveErrorDetails) {
    super(formatMessage(details), details.cause === undefined ? undefined : { cause: details.cause });
    this.code = code;
    this.problem = details.problem;
    this.db = details.db;
    this.collection = details.collection;
    this.offset = details.offset;
  }

  /** The namespace as "db.collection" ("oplog" for the oplog), if the error names one. */
  get namespace(): string | undefined {
    return this.collection === undefined ? undefined : namespaceName(this.db ?? "", this.collection);
  }

  /** True if `err` is an ArchiveError (with `code`, when given). */
  static is(err: unknown, code?: ArchiveErrorCode): err is ArchiveError {
    return err instanceof ArchiveError && (code === undefined || err.code === code);
  }
}

/** "db.collection", or just the collection for the oplog's empty database name. */
export function namespaceName(db: string, collection: string): string {
  return db === "" ? collection : `${db}.${collection}`;
}

function formatMessage({ problem, db, collection, offset }: ArchiveErrorDetails): string {
  let subject = "mongodump archive";
  if (collection !== undefined)
    subject += `, namespace ${JSON.stringify(namespaceName(db ?? "", collection))}`;
  if (offset !== undefined) subject += `, byte ${offset}`;
  return `${subject}: ${problem}`;
}
