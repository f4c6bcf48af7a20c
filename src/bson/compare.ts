/**
 * MongoDB's comparison order for BSON values held as JS values (as produced by `bson`'s
 * `deserialize`, with or without `promoteValues`).
 *
 * This mirrors the server's `BSONElement::compareElements` / `woCompare` (the "Comparison/Sort
 * Order" page of the MongoDB manual): values of different types compare by canonical type rank;
 * numbers of all four types compare by exact value; strings and field names compare by UTF-8 bytes
 * (simple binary collation); documents compare element by element (type rank, field name, value)
 * with a shorter prefix first.
 *
 * It is the reference the order-preserving `_id` key encoding is tested against, and the emulator
 * uses it for sorting.
 */
import { Binary, Code, DBRef, Decimal128, Long, ObjectId, Timestamp, type Document } from "bson";

/** The kinds of BSON value, as far as comparison is concerned. */
export type BsonKind =
  | "minKey"
  | "undefined"
  | "null"
  | "number"
  | "string"
  | "object"
  | "array"
  | "binData"
  | "objectId"
  | "bool"
  | "date"
  | "timestamp"
  | "regex"
  | "dbPointer"
  | "code"
  | "codeWithScope"
  | "maxKey";

/**
 * The server's canonical type ranks (`canonicalizeBSONType`). Types with the same rank compare by
 * value; Symbol shares String's rank and all numeric types share one rank.
 */
export const CANONICAL_RANK: Readonly<Record<BsonKind, number>> = {
  minKey: -1,
  undefined: 0,
  null: 5,
  number: 10,
  string: 15,
  object: 20,
  array: 25,
  binData: 30,
  objectId: 35,
  bool: 40,
  date: 45,
  timestamp: 47,
  regex: 50,
  dbPointer: 55,
  code: 60,
  codeWithScope: 65,
  maxKey: 127,
};

/** True for a JS value that `bson` serializes as an embedded document (BSON type 3). */
export function isPlainDocument(value: unknown): value is Document {
  if (typeof value !== "object" || value === null) return false;
  if (Array.isArray(value) || "_bsontype" in value) return false;
  return !(value instanceof Date || value instanceof RegExp || value instanceof Uint8Array);
}

/**
 * A DBRef is a `bson` class, but on the wire it is an ordinary embedded document
 * `{$ref, $id, $db?, ...fields}`; `bson` builds one whenever a sub-document starts with those
 * fields. Anything that must see BSON's structure (comparison, diffs) uses this document form.
 */
export function dbRefAsDocument(ref: DBRef): Document {
  const doc: Document = { $ref: ref.collection, $id: ref.oid };
  if (ref.db) doc.$db = ref.db;
  return Object.assign(doc, ref.fields);
}

/** The document form of a value BSON stores as an embedded document (DBRef included), else undefined. */
export function asEmbeddedDocument(value: unknown): Document | undefined {
  if (isPlainDocument(value)) return value;
  if (value instanceof DBRef) return dbRefAsDocument(value);
  return undefined;
}

/** The BSON kind of a deserialized JS value; throws for values `bson` would not produce. */
export function bsonKindOf(value: unknown): BsonKind {
  if (value === undefined) return "undefined";
  if (value === null) return "null";
  switch (typeof value) {
    case "number":
    case "bigint":
      return "number";
    case "string":
      return "string";
    case "boolean":
      return "bool";
    case "object":
      return objectKind(value);
    default:
      throw new TypeError(`not a BSON value: ${typeof value}`);
  }
}

function objectKind(value: object): BsonKind {
  if (Array.isArray(value)) return "array";
  if (value instanceof Date) return "date";
  if (value instanceof RegExp) return "regex";
  if (value instanceof Uint8Array) return "binData";
  if (!("_bsontype" in value)) return "object";
  switch (value._bsontype) {
    case "Int32":
    case "Double":
    case "Long":
    case "Decimal128":
      return "number";
    case "BSONSymbol":
      return "string";
    case "DBRef":
      return "object";
    case "Binary":
      return "binData";
    case "ObjectId":
      return "objectId";
    case "Timestamp":
      return "timestamp";
    case "BSONRegExp":
      return "regex";
    case "Code":
      return (value as Code).scope == null ? "code" : "codeWithScope";
    case "MinKey":
      return "minKey";
    case "MaxKey":
      return "maxKey";
    default:
      throw new TypeError(`unsupported BSON class: ${String(value._bsontype)}`);
  }
}

/** MongoDB's sort order: negative, zero or positive, like `Array.prototype.sort` wants. */
export function compareBsonValues(a: unknown, b: unknown): number {
  const kindA = bsonKindOf(a);
  const kindB = bsonKindOf(b);
  const rankDiff = CANONICAL_RANK[kindA] - CANONICAL_RANK[kindB];
  if (rankDiff !== 0) return Math.sign(rankDiff);
  return compareSameRank(kindA, a, b);
}

function compareSameRank(kind: BsonKind, a: unknown, b: unknown): number {
  switch (kind) {
    case "minKey":
    case "maxKey":
    case "undefined":
    case "null":
      return 0;
    case "number":
      return compareNumbers(toExactNumber(a), toExactNumber(b));
    case "string":
      return compareUtf8(stringValue(a), stringValue(b));
    case "object":
      return compareDocuments(documentValue(a), documentValue(b));
    case "array":
      return compareArrays(a as unknown[], b as unknown[]);
    case "binData":
      return compareBinData(a as Binary | Uint8Array, b as Binary | Uint8Array);
    case "objectId":
      return Math.sign(Buffer.compare((a as ObjectId).id, (b as ObjectId).id));
    case "bool":
      return Number(a) - Number(b);
    case "date":
      return Math.sign((a as Date).getTime() - (b as Date).getTime());
    case "timestamp":
      return compareTimestamps(a as Timestamp, b as Timestamp);
    case "regex":
      return compareRegexes(a, b);
    case "code":
      return compareUtf8((a as Code).code, (b as Code).code);
    case "codeWithScope":
      return (
        compareUtf8((a as Code).code, (b as Code).code) ||
        compareDocuments((a as Code).scope as Document, (b as Code).scope as Document)
      );
    case "dbPointer":
      // `bson` turns DBPointer into DBRef when deserializing, so no JS value has this kind.
      throw new TypeError("DBPointer values cannot be compared as JS values");
  }
}

/** Field names and strings compare as UTF-8 bytes (the server's simple binary collation). */
export function compareUtf8(a: string, b: string): number {
  if (a === b) return 0;
  return Math.sign(Buffer.compare(Buffer.from(a, "utf8"), Buffer.from(b, "utf8")));
}

function stringValue(value: unknown): string {
  return typeof value === "string" ? value : (value as { value: string }).value;
}

function documentValue(value: unknown): Document {
  return value instanceof DBRef ? dbRefAsDocument(value) : (value as Document);
}

function compareDocuments(a: Document, b: Document): number {
  const keysA = Object.keys(a);
  const keysB = Object.keys(b);
  const common = Math.min(keysA.length, keysB.length);
  for (let i = 0; i < common; i++) {
    const valueA = a[keysA[i]];
    const valueB = b[keysB[i]];
    const rankDiff = CANONICAL_RANK[bsonKindOf(valueA)] - CANONICAL_RANK[bsonKindOf(valueB)];
    if (rankDiff !== 0) return Math.sign(rankDiff);
    const byName = compareUtf8(keysA[i], keysB[i]);
    if (byName !== 0) return byName;
    const byValue = compareBsonValues(valueA, valueB);
    if (byValue !== 0) return byValue;
  }
  return Math.sign(keysA.length - keysB.length);
}

function compareArrays(a: unknown[], b: unknown[]): number {
  const common = Math.min(a.length, b.length);
  for (let i = 0; i < common; i++) {
    const byValue = compareBsonValues(a[i], b[i]);
    if (byValue !== 0) return byValue;
  }
  return Math.sign(a.length - b.length);
}

function binDataParts(value: Binary | Uint8Array): { subtype: number; bytes: Uint8Array } {
  if (value instanceof Uint8Array) return { subtype: 0, bytes: value };
  return { subtype: value.sub_type, bytes: value.buffer.subarray(0, value.position) };
}

// The server compares BinData by length first, then subtype, then bytes.
function compareBinData(a: Binary | Uint8Array, b: Binary | Uint8Array): number {
  const partsA = binDataParts(a);
  const partsB = binDataParts(b);
  return (
    Math.sign(partsA.bytes.length - partsB.bytes.length) ||
    Math.sign(partsA.subtype - partsB.subtype) ||
    Math.sign(Buffer.compare(partsA.bytes, partsB.bytes))
  );
}

// Timestamps compare as unsigned 64-bit integers: seconds, then increment.
function compareTimestamps(a: Timestamp, b: Timestamp): number {
  return Math.sign(a.t - b.t) || Math.sign(a.i - b.i);
}

function regexParts(value: unknown): { pattern: string; flags: string } {
  if (value instanceof RegExp) return { pattern: value.source, flags: [...value.flags].sort().join("") };
  const regex = value as { pattern: string; options: string };
  return { pattern: regex.pattern, flags: regex.options };
}

function compareRegexes(a: unknown, b: unknown): number {
  const partsA = regexParts(a);
  const partsB = regexParts(b);
  return compareUtf8(partsA.pattern, partsB.pattern) || compareUtf8(partsA.flags, partsB.flags);
}

/**
 * A number as an exact value: `coefficient * 10^exponent10 * 2^exponent2`, or one of the
 * non-finite values. Every double, int64 and Decimal128 has this form exactly, which lets numbers
 * of different types compare without rounding (the server compares them exactly too).
 */
export type ExactNumber =
  | { kind: "nan" }
  | { kind: "infinity"; negative: boolean }
  | { kind: "finite"; coefficient: bigint; exponent10: number; exponent2: number };

/** The exact value of a numeric JS value (number, bigint, Int32, Double, Long or Decimal128). */
export function toExactNumber(value: unknown): ExactNumber {
  if (typeof value === "number") return exactDouble(value);
  if (typeof value === "bigint") return { kind: "finite", coefficient: value, exponent10: 0, exponent2: 0 };
  if (value instanceof Long)
    return { kind: "finite", coefficient: value.toBigInt(), exponent10: 0, exponent2: 0 };
  if (value instanceof Decimal128) return exactDecimal(value.toString());
  const wrapped = (value as { value?: unknown }).value;
  if (typeof wrapped === "number") return exactDouble(wrapped);
  throw new TypeError("not a BSON number");
}

function exactDouble(value: number): ExactNumber {
  if (Number.isNaN(value)) return { kind: "nan" };
  if (!Number.isFinite(value)) return { kind: "infinity", negative: value < 0 };
  const { mantissa, exponent2 } = decomposeDouble(value);
  return { kind: "finite", coefficient: mantissa, exponent10: 0, exponent2 };
}

/** A finite double as `mantissa * 2^exponent2` with an integer (signed) mantissa. */
export function decomposeDouble(value: number): { mantissa: bigint; exponent2: number } {
  const view = new DataView(new ArrayBuffer(8));
  view.setFloat64(0, value);
  const bits = view.getBigUint64(0);
  const negative = bits >> 63n === 1n;
  const biasedExponent = Number((bits >> 52n) & 0x7ffn);
  const fraction = bits & 0xfffffffffffffn;
  // Subnormals have no implicit leading 1 and the exponent of the smallest normal.
  const mantissa = biasedExponent === 0 ? fraction : fraction | (1n << 52n);
  const exponent2 = (biasedExponent === 0 ? 1 : biasedExponent) - 1075;
  return { mantissa: negative ? -mantissa : mantissa, exponent2 };
}

const DECIMAL_STRING = /^(-)?(\d+)(?:\.(\d+))?(?:[eE]([+-]?\d+))?$/;

/** Parses `Decimal128.toString()` output ("1.5E+3", "-0", "NaN", "-Infinity", ...). */
export function exactDecimal(text: string): ExactNumber {
  if (/^-?NaN$/.test(text)) return { kind: "nan" };
  if (/^-?Infinity$/.test(text)) return { kind: "infinity", negative: text.startsWith("-") };
  const match = DECIMAL_STRING.exec(text);
  if (!match) throw new TypeError(`unexpected Decimal128 text: ${text}`);
  const [, sign, integerDigits, fractionDigits = "", exponentText = "0"] = match;
  const magnitude = BigInt(integerDigits + fractionDigits);
  return {
    kind: "finite",
    coefficient: sign ? -magnitude : magnitude,
    exponent10: Number(exponentText) - fractionDigits.length,
    exponent2: 0,
  };
}

/** NaN first (and equal to NaN), then -Infinity, the finite values, +Infinity. */
export function compareNumbers(a: ExactNumber, b: ExactNumber): number {
  const orderA = numberClass(a);
  const orderB = numberClass(b);
  if (orderA !== orderB || a.kind !== "finite" || b.kind !== "finite") return Math.sign(orderA - orderB);
  return compareFinite(a, b);
}

function numberClass(value: ExactNumber): number {
  if (value.kind === "nan") return 0;
  if (value.kind === "infinity") return value.negative ? 1 : 3;
  return 2;
}

type FiniteNumber = Extract<ExactNumber, { kind: "finite" }>;

function compareFinite(a: FiniteNumber, b: FiniteNumber): number {
  // Bring both to a common scale by multiplying out the smaller exponents; exact, if slow for
  // extreme exponents, which only Decimal128 can reach.
  let left = a.coefficient;
  let right = b.coefficient;
  if (left === 0n || right === 0n || left < 0n !== right < 0n) return Math.sign(signOf(left) - signOf(right));
  const scale10 = a.exponent10 - b.exponent10;
  if (scale10 > 0) left *= 10n ** BigInt(scale10);
  else right *= 10n ** BigInt(-scale10);
  const scale2 = a.exponent2 - b.exponent2;
  if (scale2 > 0) left <<= BigInt(scale2);
  else right <<= BigInt(-scale2);
  return left < right ? -1 : left > right ? 1 : 0;
}

function signOf(value: bigint): number {
  return value > 0n ? 1 : value < 0n ? -1 : 0;
}
