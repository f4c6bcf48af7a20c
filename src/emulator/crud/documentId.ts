import { deserialize, ObjectId, serialize } from "bson";
import { CommandError, ErrorCode } from "../errors.js";

function firstFieldName(raw: Buffer): string | undefined {
  if (raw.length <= 5) return undefined;
  const end = raw.indexOf(0, 5);
  return raw.toString("utf8", 5, end);
}

/**
 * Returns the document with `_id` as its first field, as mongod stores it: unchanged when it
 * already is, reordered when `_id` is elsewhere, with a new ObjectId when it has none.
 */
export function withIdFirst(raw: Buffer): Buffer {
  if (firstFieldName(raw) === "_id") {
    assertValidId(raw[4]);
    return raw;
  }
  const doc = deserialize(raw, { promoteValues: false });
  const { _id, ...rest } = doc;
  const id = _id === undefined ? new ObjectId() : _id;
  const out = Buffer.from(serialize({ _id: id, ...rest }));
  assertValidId(out[4]);
  return out;
}

const ARRAY = 0x04;
const UNDEFINED = 0x06;
const REGEX = 0x0b;

function assertValidId(type: number): void {
  if (type === ARRAY)
    throw new CommandError(ErrorCode.InvalidIdField, "The '_id' value cannot be of type array");
  if (type === UNDEFINED) throw new CommandError(ErrorCode.InvalidIdField, "can't use a undefined for _id");
  if (type === REGEX) throw new CommandError(ErrorCode.InvalidIdField, "can't use a regex for _id");
}
