import { createHash } from "node:crypto";

/**
 * File names exactly as mongodump writes them (mongo-tools `common/util/file.go`
 * `EscapeCollectionName` and `mongodump/prepare.go` `outputPath`), so `mongorestore` finds every
 * collection of a snapshot directory.
 */

/** Longest escaped name mongodump keeps as is: 255 bytes less `.metadata.json.gz`. */
export const MAX_ESCAPED_NAME_BYTES = 238;
/** How much of a too-long escaped name is kept before `%24` and the hash. */
export const TRUNCATED_NAME_BYTES = 208;

const HEX = "0123456789ABCDEF";

function isUnreserved(byte: number): boolean {
  return (
    (byte >= 0x61 && byte <= 0x7a) || // a-z
    (byte >= 0x41 && byte <= 0x5a) || // A-Z
    (byte >= 0x30 && byte <= 0x39) || // 0-9
    byte === 0x2d || // -
    byte === 0x5f || // _
    byte === 0x2e || // .
    byte === 0x7e // ~
  );
}

/**
 * Go's `url.QueryEscape`: letters, digits and `-_.~` stay, a space becomes `+`, every other UTF-8
 * byte becomes `%XX` (upper-case hex). Unlike `encodeURIComponent`, it also escapes `!'()*`.
 */
export function queryEscape(value: string): string {
  let out = "";
  for (const byte of Buffer.from(value, "utf8")) {
    if (isUnreserved(byte)) out += String.fromCharCode(byte);
    else if (byte === 0x20) out += "+";
    else out += "%" + HEX[byte >> 4] + HEX[byte & 15];
  }
  return out;
}

/** Go's `url.QueryUnescape` (`+` is a space); throws on a malformed `%` escape. */
export function queryUnescape(value: string): string {
  const bytes: number[] = [];
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c === 0x25) {
      const hex = value.slice(i + 1, i + 3);
      if (!/^[0-9A-Fa-f]{2}$/.test(hex))
        throw new Error(`invalid escape ${JSON.stringify(value.slice(i, i + 3))}`);
      bytes.push(parseInt(hex, 16));
      i += 2;
    } else if (c === 0x2b) {
      bytes.push(0x20);
    } else {
      const char = String.fromCodePoint(value.codePointAt(i) as number);
      bytes.push(...Buffer.from(char, "utf8"));
      i += char.length - 1;
    }
  }
  return Buffer.from(bytes).toString("utf8");
}

/**
 * The file name stem mongodump uses for a collection: the query-escaped name or, when that is
 * longer than 238 bytes, its first 208 bytes, `%24` and the unpadded base64url SHA-1 of the raw
 * name (the real name is then only in the metadata file's `collectionName`). Sealed files end in
 * `.enc` as well, one byte more than mongodump's longest suffix (`.metadata.json.gz`), so their
 * stems are kept to 237 bytes (207 before `%24` when hashed); mongorestore reads the real name of
 * any `%24` file from its metadata, so both forms restore the same.
 */
export function collectionFileStem(collectionName: string, sealed = false): string {
  const max = sealed ? MAX_ESCAPED_NAME_BYTES - 1 : MAX_ESCAPED_NAME_BYTES;
  const escaped = queryEscape(collectionName);
  if (escaped.length <= max) return escaped;
  const hash = createHash("sha1").update(collectionName, "utf8").digest("base64url");
  return escaped.slice(0, max - (MAX_ESCAPED_NAME_BYTES - TRUNCATED_NAME_BYTES)) + "%24" + hash;
}

/**
 * `<stem>.bson.gz` (`.enc` appended when sealed); a timeseries collection's data is its buckets:
 * `system.buckets.<name>`.
 */
export function dataFileName(collectionName: string, timeseries = false, sealed = false): string {
  const stem = collectionFileStem(timeseries ? `system.buckets.${collectionName}` : collectionName, sealed);
  return stem + ".bson.gz" + (sealed ? ".enc" : "");
}

/** `<stem>.metadata.json` (`.enc` appended when sealed). */
export function metadataFileName(collectionName: string, sealed = false): string {
  return collectionFileStem(collectionName, sealed) + ".metadata.json" + (sealed ? ".enc" : "");
}

/**
 * Why a database name cannot be a directory of a dump, or undefined if it can. mongod refuses
 * these characters in database names anyway (`/\. "$` and NUL).
 */
export function databaseNameProblem(db: string): string | undefined {
  if (db.length === 0) return "the database name is empty";
  if (Buffer.byteLength(db, "utf8") > 255) return "the database name is longer than 255 bytes";
  if (/[/\\. "$\0]/.test(db)) return 'the database name contains one of / \\ . space " $ or NUL';
  return undefined;
}

/** Why a collection name cannot be dumped, or undefined if it can. */
export function collectionNameProblem(name: string): string | undefined {
  if (name.length === 0) return "the collection name is empty";
  if (name.includes("\0")) return "the collection name contains NUL";
  return undefined;
}

/**
 * Snapshot ids become directory names: 1-200 characters of letters, digits, `.`, `_` and `-`,
 * starting with a letter or digit (names starting with `.` are the store's own work directories).
 */
export function isSafeSnapshotId(id: string): boolean {
  return /^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$/.test(id);
}
