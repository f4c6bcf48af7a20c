import { readFileSync } from "node:fs";
import { deserialize, EJSON, Timestamp, type Document } from "bson";
import type { MongoClient } from "mongodb";

/** One real oplog entry from `test/fixtures/oplog/real-entries.json` (see the fixtures README). */
export interface RealEntry {
  name: string;
  source: { repository: string; commit: string; conformancePath: string; entryIndex: number };
  server: string;
  /** The entry as canonical Extended JSON; `realEntry` turns it back into BSON values. */
  entry: Document;
}

const REAL_ENTRIES = JSON.parse(
  readFileSync(new URL("../fixtures/oplog/real-entries.json", import.meta.url), "utf8"),
) as RealEntry[];

/** A real entry by name, with its BSON types (Int32, Long, Double, Binary...) kept. */
export function realEntry(name: string): Document {
  const found = REAL_ENTRIES.find((entry) => entry.name === name);
  if (!found) throw new Error(`no real oplog entry named ${name}`);
  return EJSON.parse(JSON.stringify(found.entry), { relaxed: false }) as Document;
}

/** The BSON type of a value decoded with `promoteValues: false`, e.g. "Int32", "Binary(4)". */
export function bsonType(value: unknown): string {
  if (value === null) return "Null";
  if (value instanceof Date) return "Date";
  if (Array.isArray(value)) return "Array";
  if (typeof value === "string") return "String";
  if (typeof value === "boolean") return "Boolean";
  if (typeof value === "number") return Number.isInteger(value) ? "Int32" : "Double";
  if (typeof value === "object") {
    const type = (value as { _bsontype?: string })._bsontype;
    if (type === "Binary") return `Binary(${(value as { sub_type: number }).sub_type})`;
    if (type) return type;
    return "Object";
  }
  return typeof value;
}

/** The top-level fields of a document, in order, with their BSON types. */
export function fieldsOf(doc: Document): string[] {
  return Object.entries(doc).map(([name, value]) => `${name}:${bsonType(value)}`);
}

/**
 * Every path of a value with its BSON type, in document order (`o.diff.u.a:Double`), so two
 * entries can be compared for shape: names, order and types, not values.
 */
export function shapeOf(value: unknown, path = ""): string[] {
  const type = bsonType(value);
  const here = path === "" ? [] : [`${path}:${type}`];
  if (type === "Object" || type === "Array") {
    const entries = Array.isArray(value)
      ? value.map((v, i) => [String(i), v] as const)
      : Object.entries(value as Document);
    return [
      ...here,
      ...entries.flatMap(([key, child]) => shapeOf(child, path === "" ? key : `${path}.${key}`)),
    ];
  }
  return here;
}

/** Decodes raw BSON keeping every type (Int32, Double, Long stay wrapped). */
export function decode(raw: Uint8Array): Document {
  return deserialize(raw, { promoteValues: false, promoteLongs: false, promoteBuffers: false });
}

/** The newest oplog entry's ts. */
export async function newestTs(client: MongoClient): Promise<Timestamp> {
  const [newest] = await client
    .db("local")
    .collection("oplog.rs")
    .find({}, { sort: { $natural: -1 }, limit: 1 })
    .toArray();
  return newest.ts as Timestamp;
}

/**
 * Oplog entries after `after` (all of them when undefined), as raw BSON in natural order. The
 * periodic no-op writer can add entries at any time, so callers filter by `ns` or `op`.
 */
export async function oplogAfter(
  client: MongoClient,
  after?: Timestamp,
  filter: Document = {},
): Promise<Buffer[]> {
  const query = after ? { ...filter, ts: { $gt: after } } : filter;
  const docs = await client.db("local").collection("oplog.rs").find(query, { raw: true }).toArray();
  return docs as unknown as Buffer[];
}

/** Decoded entries after `after`, leaving out no-ops. */
export async function entriesAfter(
  client: MongoClient,
  after: Timestamp,
  filter: Document = {},
): Promise<Document[]> {
  return (await oplogAfter(client, after, { op: { $ne: "n" }, ...filter })).map(decode);
}

const FIXED_SIZES: Record<number, number> = {
  0x01: 8,
  0x06: 0,
  0x07: 12,
  0x08: 1,
  0x09: 8,
  0x0a: 0,
  0x10: 4,
  0x11: 8,
  0x12: 8,
  0x13: 16,
  0x7f: 0,
  0xff: 0,
};

/** The exact bytes of embedded document `name` in a raw BSON document, to compare byte for byte. */
export function rawField(raw: Uint8Array, name: string): Buffer | undefined {
  const buf = Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength);
  let at = 4;
  while (at < buf.length - 1) {
    const type = buf[at];
    const nameEnd = buf.indexOf(0, at + 1);
    const field = buf.toString("utf8", at + 1, nameEnd);
    const start = nameEnd + 1;
    let size: number;
    if (type in FIXED_SIZES) size = FIXED_SIZES[type];
    else if (type === 0x02 || type === 0x0d || type === 0x0e) size = 4 + buf.readInt32LE(start);
    else if (type === 0x03 || type === 0x04 || type === 0x0f) size = buf.readInt32LE(start);
    else if (type === 0x05) size = 5 + buf.readInt32LE(start);
    else if (type === 0x0c) size = 4 + buf.readInt32LE(start) + 12;
    else if (type === 0x0b) {
      const patternEnd = buf.indexOf(0, start);
      size = buf.indexOf(0, patternEnd + 1) + 1 - start;
    } else throw new Error(`rawField: unknown BSON type 0x${type.toString(16)}`);
    if (field === name) return type === 0x03 ? Buffer.from(buf.subarray(start, start + size)) : undefined;
    at = start + size;
  }
  return undefined;
}
