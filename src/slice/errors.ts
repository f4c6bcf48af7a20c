/**
 * What can be wrong with a slice. Each code names the first check that failed, in the order a
 * reader checks them: framing (magic, version, length), header checksum, body checksum,
 * decompression, the BSON inside, the document count.
 */
export type SliceErrorCode =
  | "BAD_MAGIC"
  | "UNSUPPORTED_VERSION"
  | "TRUNCATED"
  | "HEADER_CHECKSUM"
  | "BODY_CHECKSUM"
  | "DECOMPRESS"
  | "SIZE_MISMATCH"
  | "COUNT_MISMATCH"
  | "MALFORMED_BSON";

/**
 * Said after every damaged-slice message: what the damage means for the backup. A slice is
 * checked when the server receives it (the upload is refused and the agent sends it again) and
 * again whenever it is read from the oplog store.
 */
export const CORRUPT_SLICE_ADVICE =
  "the slice is corrupt or truncated; an upload is refused and the agent re-sends it, " +
  "a stored copy must be fetched again (or the stream resynced) before it can be applied";

/** A slice that cannot be read. `code` is stable for programs; the message is for people. */
export class SliceError extends Error {
  override readonly name = "SliceError";

  constructor(
    readonly code: SliceErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** A damaged-slice error whose message ends with what it means for the user. */
export function corruptSlice(code: SliceErrorCode, what: string): SliceError {
  return new SliceError(code, `${what}: ${CORRUPT_SLICE_ADVICE}`);
}
