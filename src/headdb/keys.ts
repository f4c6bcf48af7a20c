/**
 * Keys of the head database's LMDB stores. Every key is plain bytes compared with memcmp, so a
 * range scan over a prefix visits its entries in key order:
 *
 * - documents and missing ids: collection UUID (16 bytes) + the order-preserving `_id` key of
 *   `src/bson/keyEncoding.ts`, so one collection is one contiguous range in `_id` order (what
 *   dbHash and snapshots read), and `_id`s MongoDB treats as equal (1, 1.0, NumberLong(1)) share
 *   a key, as they share an entry of the `_id` index;
 * - namespaces: UTF-8 `db`, NUL, collection name (database names cannot hold NUL), so a database's
 *   namespaces are one range in name byte order, the order of MongoDB's `std::map<std::string>`;
 * - held transaction entries: transaction id, NUL, the entry's timestamp big-endian.
 */
import type { Binary, Timestamp } from "bson";
import { encodeIdKeyFromDocument } from "../bson/keyEncoding.js";
import { HeadDbError } from "./errors.js";

export const UUID_LENGTH = 16;

/** LMDB's largest key in lmdb-js builds (`Key size is larger than the maximum key size (1978)`). */
export const MAX_KEY_LENGTH = 1978;

/**
 * The 16 bytes of a collection UUID given as a `bson` Binary/UUID or as bytes. Binary values are
 * recognised by `_bsontype`, not `instanceof`: the driver loads bson's CommonJS build and this
 * module its ES build, two copies of the same classes.
 */
export function uuidBytes(uuid: Binary | Uint8Array): Buffer {
  const bytes = isBinary(uuid) ? uuid.buffer.subarray(0, uuid.position) : (uuid as Uint8Array);
  if (bytes.length !== UUID_LENGTH)
    throw new HeadDbError("INVALID_ARGUMENT", `a collection UUID has 16 bytes, not ${bytes.length}`);
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

export function isBinary(value: unknown): value is Binary {
  return (
    typeof value === "object" && value !== null && (value as { _bsontype?: unknown })._bsontype === "Binary"
  );
}

/** The key of a document (or of a missing id) of collection `uuid`. */
export function documentKey(uuid: Uint8Array, idKey: Uint8Array): Buffer {
  const key = Buffer.concat([uuid, idKey]);
  if (key.length > MAX_KEY_LENGTH) {
    throw new HeadDbError(
      "KEY_TOO_LARGE",
      `the _id of this document encodes to ${idKey.length} bytes; the head database keys _ids of at most ${MAX_KEY_LENGTH - UUID_LENGTH}`,
      { uuid: Buffer.from(uuid).toString("hex") },
    );
  }
  return key;
}

/** The `_id` key of a raw BSON document (a stored document, or `{_id}` / `o2` of an entry). */
export function idKeyOf(doc: Uint8Array): Buffer {
  try {
    return encodeIdKeyFromDocument(doc);
  } catch (error) {
    throw new HeadDbError("INVALID_ARGUMENT", `cannot key document: ${(error as Error).message}`);
  }
}

/** The `_id` key part of a document key. */
export function idKeyPart(key: Uint8Array): Buffer {
  return Buffer.from(key.buffer, key.byteOffset + UUID_LENGTH, key.byteLength - UUID_LENGTH);
}

/** The first key after every key that starts with `prefix` (the exclusive end of its range). */
export function prefixEnd(prefix: Uint8Array): Buffer | undefined {
  const end = Buffer.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i] !== 0xff) {
      end[i]++;
      return end.subarray(0, i + 1);
    }
  }
  return undefined;
}

/** A range covering every key starting with `prefix`, for lmdb's `getRange`. */
export function prefixRange(prefix: Uint8Array): { start: Buffer; end?: Buffer } {
  return { start: Buffer.from(prefix), end: prefixEnd(prefix) };
}

export function namespaceKey(db: string, name: string): Buffer {
  return Buffer.from(`${db}\0${name}`, "utf8");
}

export function databasePrefix(db: string): Buffer {
  return Buffer.from(`${db}\0`, "utf8");
}

/** Splits a namespace key back into database and collection name. */
export function parseNamespaceKey(key: Uint8Array): { db: string; name: string } {
  const text = Buffer.from(key).toString("utf8");
  const nul = text.indexOf("\0");
  if (nul < 0) throw new HeadDbError("CORRUPT_RECORD", `namespace key without separator: ${text}`);
  return { db: text.slice(0, nul), name: text.slice(nul + 1) };
}

/** A timestamp as 8 big-endian bytes (seconds, increment), which sort as the timestamps do. */
export function timestampKey(ts: Timestamp): Buffer {
  const key = Buffer.alloc(8);
  key.writeUInt32BE(ts.t, 0);
  key.writeUInt32BE(ts.i, 4);
  return key;
}
