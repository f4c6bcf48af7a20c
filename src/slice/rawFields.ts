import { deserialize, Long, Timestamp } from "bson";
import { elements } from "../bson/elements.js";
import { SliceError } from "./errors.js";

/*
 * Slice headers carry a few values taken from the documents (the last `_id`, the first and last
 * oplog `ts`). Documents can be 16 MB, so only the wanted element is decoded: it is copied into
 * a one-field document and deserialized with promoteValues off, which keeps its exact BSON type
 * (an int32 `_id` stays Int32, not a JS number that would be written back as a double).
 */

/** The value of top-level field `name` of raw document `raw`, exact type kept; undefined if absent. */
export function topLevelField(raw: Uint8Array, name: string): unknown {
  let found: { start: number; end: number } | undefined;
  try {
    for (const element of elements(raw)) {
      if (element.name === name) {
        found = { start: element.valueStart - Buffer.byteLength(name, "utf8") - 2, end: element.valueEnd };
        break;
      }
    }
  } catch (error) {
    throw new SliceError("MALFORMED_BSON", `cannot read field '${name}': ${(error as Error).message}`);
  }
  if (!found) return undefined;
  const single = Buffer.alloc(4 + (found.end - found.start) + 1);
  single.writeInt32LE(single.length, 0);
  single.set(raw.subarray(found.start, found.end), 4);
  return deserialize(single, { promoteValues: false })[name];
}

/** An oplog entry's `ts`; SliceError if it has none (every oplog entry has one). */
export function oplogTimestamp(entry: Uint8Array, index: number): Timestamp {
  const ts = topLevelField(entry, "ts");
  if (!(ts instanceof Timestamp)) {
    throw new SliceError("MALFORMED_BSON", `oplog entry ${index} has no Timestamp field 'ts'`);
  }
  return ts;
}

/** An oplog entry's term `t` as a number, if present (absent before protocol version 1). */
export function oplogTerm(entry: Uint8Array): number | undefined {
  const t = topLevelField(entry, "t");
  if (t instanceof Long) return t.toNumber();
  if (typeof t === "object" && t !== null && "valueOf" in t) {
    const value = (t as { valueOf(): unknown }).valueOf();
    if (typeof value === "number") return value;
  }
  return undefined;
}
