/**
 * What can be wrong with a stored block or a run. Each code names the first check that failed, in
 * the order `decodeBlock` and the run reader check them: the stored bytes' SHA-256 against the
 * address they were fetched by, framing (magic, version, length), codec, decompression, the entries
 * inside (framing, key order, BSON), and finally agreement with the run descriptor's block ref.
 */
export type BlockErrorCode =
  | "HASH_MISMATCH"
  | "BAD_MAGIC"
  | "UNSUPPORTED_VERSION"
  | "TRUNCATED"
  | "UNKNOWN_CODEC"
  | "DECOMPRESS"
  | "SIZE_MISMATCH"
  | "MALFORMED_ENTRY"
  | "MALFORMED_BSON"
  | "KEY_ORDER"
  | "KEY_MISMATCH"
  | "COUNT_MISMATCH"
  | "REF_MISMATCH";

/** Said after every damaged-block message: what the damage means for the snapshot. */
export const CORRUPT_BLOCK_ADVICE =
  "the block is corrupt or is not the block this run refers to; the snapshots that use it cannot be " +
  "restored from this store until it is repaired (verify names every snapshot affected)";

/** A block that cannot be read. `code` is stable for programs; the message is for people. */
export class BlockError extends Error {
  override readonly name = "BlockError";

  constructor(
    readonly code: BlockErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** A damaged-block error: `where` names the block, the message ends with what it means. */
export function corruptBlock(code: BlockErrorCode, where: string, what: string): BlockError {
  return new BlockError(code, `${where}: ${what}: ${CORRUPT_BLOCK_ADVICE}`);
}

export type RunErrorCode =
  | "OUT_OF_ORDER"
  | "DUPLICATE_KEY"
  | "DELETION_IN_BASE"
  | "BAD_ENTRY"
  | "FINISHED"
  | "BUSY"
  | "BAD_DESCRIPTOR"
  | "BAD_CHAIN";

/**
 * A run written or described wrongly: entries out of `_id` key order, a deletion marker in a base
 * run, a descriptor that does not add up, a chain whose runs are not base + deltas. These are
 * programming errors (or a damaged manifest), never silently fixed.
 */
export class RunError extends Error {
  override readonly name = "RunError";

  constructor(
    readonly code: RunErrorCode,
    message: string,
  ) {
    super(message);
  }
}
