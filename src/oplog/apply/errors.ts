import { EJSON, type Timestamp } from "bson";
import { deserializeExact } from "../../headdb/exactBson.js";

/** Why the applier stopped; stable strings the daemon can branch on. */
export type ApplyErrorCode =
  /** The entry's `op` is not one the applier knows. */
  | "UNKNOWN_OP"
  /** A command entry (`op: "c"`) the applier does not know. */
  | "UNKNOWN_COMMAND"
  /** An update whose `o` is neither a `$v:2` diff, a `$v:1` $set/$unset, nor a replacement. */
  | "UNSUPPORTED_UPDATE"
  /** A field the entry kind needs is missing or has the wrong type. */
  | "MALFORMED_ENTRY"
  /** A `$v:2` diff the server's reader would reject. */
  | "MALFORMED_DIFF"
  /** An entry's ts is not after the previous entry's in the same batch. */
  | "OUT_OF_ORDER"
  /** A transaction entry whose prevOpTime chain does not join what the applier holds. */
  | "TXN_CHAIN_BROKEN"
  /** A transaction's last entry counts a different number of operations than its chain holds. */
  | "TXN_COUNT_MISMATCH"
  /** The head database refused a change (a key too large, ...); `cause` says why. */
  | "HEAD_DB_ERROR";

const MAX_ENTRY_TEXT = 4000;

/**
 * The applier stopped at an entry. The message names the code, the namespace, the ts of the
 * (top-level) entry and shows the entry as canonical Extended JSON, so an operator sees exactly
 * what could not be applied; nothing is skipped silently.
 */
export class OplogApplyError extends Error {
  override readonly name = "OplogApplyError";

  constructor(
    readonly code: ApplyErrorCode,
    readonly reason: string,
    readonly context: {
      namespace?: string;
      ts?: Timestamp;
      /** The entry (or the operation inside an applyOps) as canonical Extended JSON. */
      entry: string;
    },
    options?: { cause?: unknown },
  ) {
    const at = context.ts ? ` at ts ${context.ts.t}:${context.ts.i}` : "";
    const ns = context.namespace ? ` on ${context.namespace}` : "";
    super(`${code}: ${reason}${ns}${at}; entry: ${context.entry}`, options);
  }
}

/** An entry as canonical Extended JSON, shortened if very large. */
export function entryText(raw: Uint8Array): string {
  let text: string;
  try {
    text = EJSON.stringify(deserializeExact(raw), { relaxed: false });
  } catch (error) {
    text = `<unreadable BSON (${(error as Error).message}): ${Buffer.from(raw.subarray(0, 256)).toString("hex")}>`;
  }
  return text.length > MAX_ENTRY_TEXT
    ? `${text.slice(0, MAX_ENTRY_TEXT)}... (${text.length} characters)`
    : text;
}
