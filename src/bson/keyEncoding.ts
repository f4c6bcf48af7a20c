/**
 * Order-preserving binary keys for MongoDB `_id` values.
 *
 * `Buffer.compare` on two keys gives the same answer as MongoDB's sort order on the two values
 * (`compareBsonValues`), and values the server treats as equal (int32 1, double 1.0, int64 1,
 * Decimal128 "1.000") get byte-identical keys, so a key identifies a document the way the `_id`
 * index does. Keys are self-delimiting, so embedded documents and arrays stay ordered element by
 * element. There is no decoder: the documents hold their real `_id`.
 *
 * Layout: every value is one type byte (the server's canonical type rank + 2, so 0x00 can end a
 * document and sorts before any element) followed by a payload:
 *
 * - MinKey, Undefined, Null, MaxKey: nothing.
 * - String, Symbol, Code: the UTF-8 bytes with 0x00 escaped as 0x00 0xFF, then 0x00 0x00.
 * - Document: per element `type byte, field name, 0x00, value`, then 0x00.
 *   Array: per element `type byte, value`, then 0x00 (the server also compares array field names,
 *   which only differ in malformed arrays).
 * - BinData: length (4 bytes, big-endian), subtype, bytes: the server compares length first.
 * - ObjectId: its 12 bytes. Boolean: 0 or 1. Date: int64 with the sign bit flipped, big-endian.
 *   Timestamp: seconds then increment, unsigned big-endian. Regex: pattern 0x00 flags 0x00.
 *   DBPointer: value size (4 bytes), then the value bytes after the string length.
 *   Code with scope: the code as a string, then the scope as a document.
 * - Number: see `writeNumber`.
 */
import { Decimal128, serialize } from "bson";
import { CANONICAL_RANK, decomposeDouble, exactDecimal, type BsonKind } from "./compare.js";

const END_OF_DOCUMENT = 0x00;

// Markers after a number's floor double (see `writeNumber`).
const NEGATIVE_INEXACT = 0x01;
const EXACT = 0x02;
const POSITIVE_INEXACT = 0x03;

const BSON_TYPE_KIND: Readonly<Record<number, BsonKind>> = {
  0x01: "number",
  0x02: "string",
  0x03: "object",
  0x04: "array",
  0x05: "binData",
  0x06: "undefined",
  0x07: "objectId",
  0x08: "bool",
  0x09: "date",
  0x0a: "null",
  0x0b: "regex",
  0x0c: "dbPointer",
  0x0d: "code",
  0x0e: "string",
  0x0f: "codeWithScope",
  0x10: "number",
  0x11: "timestamp",
  0x12: "number",
  0x13: "number",
  0xff: "minKey",
  0x7f: "maxKey",
};

const ID_FIELD = Buffer.from("_id\0", "latin1");

/** The key of the `_id` of a raw BSON document, read without deserializing the document. */
export function encodeIdKeyFromDocument(doc: Uint8Array): Buffer {
  const reader = new BsonReader(doc);
  const end = reader.documentEnd(0);
  let pos = 4;
  while (true) {
    const type = reader.byte(pos, end);
    if (type === 0) break;
    const valueStart = reader.cstringEnd(pos + 1, end) + 1;
    if (valueStart - pos - 1 === ID_FIELD.length && ID_FIELD.equals(doc.subarray(pos + 1, valueStart))) {
      const key = new KeyWriter();
      new KeyEncoder(reader, key).value(type, valueStart, end);
      return key.toBuffer();
    }
    pos = valueStart + reader.valueLength(type, valueStart, end);
  }
  throw new Error("document has no _id field");
}

/** The key of an `_id` held as a JS value (from `bson`'s deserialize, promoted or not). */
export function encodeIdKey(value: unknown): Buffer {
  if (value === undefined) throw new Error("_id is undefined");
  return encodeIdKeyFromDocument(serialize({ _id: value }));
}

class KeyWriter {
  private readonly bytes: number[] = [];

  push(...bytes: number[]): void {
    for (const b of bytes) this.bytes.push(b);
  }

  pushAll(bytes: Iterable<number>): void {
    for (const b of bytes) this.bytes.push(b);
  }

  uint32(value: number): void {
    this.push((value >>> 24) & 0xff, (value >>> 16) & 0xff, (value >>> 8) & 0xff, value & 0xff);
  }

  toBuffer(): Buffer {
    return Buffer.from(this.bytes);
  }
}

/** Bounds-checked reads from raw BSON; every offset is checked against the enclosing `end`. */
class BsonReader {
  readonly view: DataView;

  constructor(readonly bytes: Uint8Array) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  need(pos: number, length: number, end: number): void {
    if (length < 0 || pos + length > end) throw new Error(`malformed BSON: truncated at offset ${pos}`);
  }

  byte(pos: number, end: number): number {
    this.need(pos, 1, end);
    return this.bytes[pos];
  }

  int32(pos: number, end: number): number {
    this.need(pos, 4, end);
    return this.view.getInt32(pos, true);
  }

  /** The offset just past an embedded document starting at `pos`. */
  documentEnd(pos: number, end = this.bytes.length): number {
    const size = this.int32(pos, end);
    this.need(pos, size, end);
    if (size < 5 || this.bytes[pos + size - 1] !== 0) throw new Error(`malformed BSON document at ${pos}`);
    return pos + size;
  }

  /** The offset of the NUL ending the C string starting at `pos`. */
  cstringEnd(pos: number, end: number): number {
    const nul = this.bytes.indexOf(0, pos);
    if (nul < 0 || nul >= end) throw new Error(`malformed BSON: unterminated name at ${pos}`);
    return nul;
  }

  /** The bytes of a BSON string (int32 length, bytes, NUL) at `pos`, without the NUL. */
  string(pos: number, end: number): Uint8Array {
    const length = this.int32(pos, end);
    this.need(pos + 4, length, end);
    if (length < 1 || this.bytes[pos + 4 + length - 1] !== 0)
      throw new Error(`malformed BSON string at ${pos}`);
    return this.bytes.subarray(pos + 4, pos + 4 + length - 1);
  }

  valueLength(type: number, pos: number, end: number): number {
    switch (type) {
      case 0x06:
      case 0x0a:
      case 0xff:
      case 0x7f:
        return 0;
      case 0x08:
        return 1;
      case 0x10:
        return 4;
      case 0x01:
      case 0x09:
      case 0x11:
      case 0x12:
        return 8;
      case 0x07:
        return 12;
      case 0x13:
        return 16;
      case 0x02:
      case 0x0d:
      case 0x0e:
        return 4 + this.string(pos, end).length + 1;
      case 0x03:
      case 0x04:
      case 0x0f:
        return this.documentEnd(pos, end) - pos;
      case 0x05: {
        const length = this.int32(pos, end);
        if (length < 0) throw new Error(`malformed BSON binary at ${pos}`);
        return 5 + length;
      }
      case 0x0b:
        return this.cstringEnd(this.cstringEnd(pos, end) + 1, end) + 1 - pos;
      case 0x0c:
        return 4 + this.string(pos, end).length + 1 + 12;
      default:
        throw new Error(`unknown BSON type 0x${type.toString(16)} at ${pos}`);
    }
  }
}

class KeyEncoder {
  constructor(
    private readonly reader: BsonReader,
    private readonly out: KeyWriter,
  ) {}

  /** Writes the key of the value of BSON type `type` starting at `pos`; returns its length. */
  value(type: number, pos: number, end: number): number {
    this.out.push(typeByte(type, pos));
    return this.payload(type, pos, end);
  }

  /** Writes the part of a value's key after its type byte; returns the value's length. */
  private payload(type: number, pos: number, limit: number): number {
    const length = this.reader.valueLength(type, pos, limit);
    this.reader.need(pos, length, limit);
    this.writePayload(type, pos, pos + length);
    return length;
  }

  private writePayload(type: number, pos: number, end: number): void {
    const { reader, out } = this;
    switch (type) {
      case 0x01:
        return writeDouble(out, reader.view.getFloat64(pos, true));
      case 0x10:
        return writeDouble(out, reader.view.getInt32(pos, true));
      case 0x12:
        return writeInteger(out, reader.view.getBigInt64(pos, true));
      case 0x13:
        return writeDecimal(out, new Decimal128(reader.bytes.slice(pos, pos + 16)).toString());
      case 0x02:
      case 0x0d:
      case 0x0e:
        return writeString(out, reader.string(pos, end));
      case 0x03:
        return this.document(pos, end, true);
      case 0x04:
        return this.document(pos, end, false);
      case 0x05:
        out.uint32(reader.int32(pos, end));
        return out.pushAll(reader.bytes.subarray(pos + 4, end));
      case 0x07:
        return out.pushAll(reader.bytes.subarray(pos, end));
      case 0x08:
        return out.push(reader.bytes[pos] === 0 ? 0 : 1);
      case 0x09:
        out.uint32((reader.view.getUint32(pos + 4, true) ^ 0x80000000) >>> 0);
        return out.uint32(reader.view.getUint32(pos, true));
      case 0x11:
        out.uint32(reader.view.getUint32(pos + 4, true));
        return out.uint32(reader.view.getUint32(pos, true));
      case 0x0b:
        // Both C strings keep their NUL, which sorts before any other byte (strcmp order).
        return out.pushAll(reader.bytes.subarray(pos, end));
      case 0x0c:
        out.uint32(end - pos);
        return out.pushAll(reader.bytes.subarray(pos + 4, end));
      case 0x0f: {
        const code = reader.string(pos + 4, end);
        writeString(out, code);
        return this.document(pos + 4 + 4 + code.length + 1, end, true);
      }
      default:
        // MinKey, MaxKey, Null and Undefined have no payload.
        return;
    }
  }

  private document(pos: number, limit: number, withFieldNames: boolean): void {
    const { reader, out } = this;
    const end = reader.documentEnd(pos, limit);
    let cursor = pos + 4;
    while (true) {
      const type = reader.byte(cursor, end);
      if (type === 0) break;
      const valueStart = reader.cstringEnd(cursor + 1, end) + 1;
      if (withFieldNames) {
        out.push(typeByte(type, cursor));
        out.pushAll(reader.bytes.subarray(cursor + 1, valueStart));
        cursor = valueStart + this.payload(type, valueStart, end);
      } else {
        cursor = valueStart + this.value(type, valueStart, end);
      }
    }
    out.push(END_OF_DOCUMENT);
  }
}

/** The server's canonical type rank + 2: 0x00 ends a document, and MinKey (rank -1) is 0x01. */
function typeByte(type: number, pos: number): number {
  const kind = BSON_TYPE_KIND[type];
  if (kind === undefined) throw new Error(`unknown BSON type 0x${type.toString(16)} at ${pos}`);
  return CANONICAL_RANK[kind] + 2;
}

function writeString(out: KeyWriter, utf8: Uint8Array): void {
  // Escaping NUL keeps the terminator 0x00 0x00 below every continuation, so a string sorts
  // before any longer string it is a prefix of, as the server's memcmp-then-length compare does.
  for (const b of utf8) {
    if (b === 0) out.push(0x00, 0xff);
    else out.push(b);
  }
  out.push(0x00, 0x00);
}

/*
 * Numbers. The server compares int32, int64, double and Decimal128 by exact value, so one
 * encoding must cover them all. A number's key is:
 *
 *   8 bytes: the order-preserving form of its "floor double" D, the double of largest magnitude
 *            not exceeding the number's magnitude, with the number's sign (NaN: 8 zero bytes,
 *            which no other double produces);
 *   1 byte:  EXACT if the number equals D; otherwise POSITIVE_INEXACT or NEGATIVE_INEXACT;
 *   inexact numbers then carry their own magnitude in decimal (adjusted exponent, digit pairs,
 *            terminator), bytewise inverted when negative so that larger magnitudes sort first.
 *
 * Every double is its own D, so doubles, int32s and every int64 or Decimal128 equal to a double
 * get identical 9-byte keys. An inexact number lies strictly between D and the next double away
 * from zero, so the marker alone places it correctly against all doubles, and numbers sharing a
 * D (an int64 beyond 2^53, a Decimal128 like 0.1) order by their exact decimal value. This covers
 * every Decimal128 exactly, including those beyond the double range (D is then +-MAX_VALUE or 0).
 * Decimal128 NaN and infinities map to the double ones, and -0 of any type to 0. Keys are at most
 * 1 + 8 + 1 + 2 + 17 + 1 bytes.
 */

function writeDouble(out: KeyWriter, value: number): void {
  writeOrderedDouble(out, value);
  out.push(EXACT);
}

function writeOrderedDouble(out: KeyWriter, value: number): void {
  if (Number.isNaN(value)) return out.push(0, 0, 0, 0, 0, 0, 0, 0);
  const bytes = new Uint8Array(8);
  // `value || 0` turns -0 into 0, which the server treats as equal.
  new DataView(bytes.buffer).setFloat64(0, value || 0);
  // Positive doubles sort by their bits once the sign bit is set; negative ones by the inverse.
  if (bytes[0] & 0x80) for (let i = 0; i < 8; i++) bytes[i] = ~bytes[i] & 0xff;
  else bytes[0] |= 0x80;
  out.pushAll(bytes);
}

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

function writeInteger(out: KeyWriter, value: bigint): void {
  if (value >= -MAX_SAFE && value <= MAX_SAFE) return writeDouble(out, Number(value));
  writeExactDecimal(out, value < 0n, value < 0n ? -value : value, 0);
}

function writeDecimal(out: KeyWriter, text: string): void {
  const exact = exactDecimal(text);
  if (exact.kind === "nan") return writeDouble(out, NaN);
  if (exact.kind === "infinity") return writeDouble(out, exact.negative ? -Infinity : Infinity);
  const negative = exact.coefficient < 0n;
  writeExactDecimal(out, negative, negative ? -exact.coefficient : exact.coefficient, exact.exponent10);
}

/** Writes `(negative ? -1 : 1) * magnitude * 10^exponent10` (magnitude >= 0). */
function writeExactDecimal(out: KeyWriter, negative: boolean, magnitude: bigint, exponent10: number): void {
  if (magnitude === 0n) return writeDouble(out, 0);
  const floor = floorDouble(magnitude, exponent10);
  writeOrderedDouble(out, negative ? -floor.value : floor.value);
  if (floor.exact) return out.push(EXACT);
  out.push(negative ? NEGATIVE_INEXACT : POSITIVE_INEXACT);
  const digits = decimalMagnitudeBytes(magnitude, exponent10);
  out.pushAll(negative ? digits.map((b) => ~b & 0xff) : digits);
}

/** The largest double <= magnitude * 10^exponent10 (magnitude > 0), and whether it is equal. */
function floorDouble(magnitude: bigint, exponent10: number): { value: number; exact: boolean } {
  // Number parsing rounds correctly to the nearest double, so the floor is it or the one below.
  let value = Number(`${magnitude}e${exponent10}`);
  if (value === Infinity) value = Number.MAX_VALUE;
  const comparison = compareWithDouble(magnitude, exponent10, value);
  if (comparison >= 0) return { value, exact: comparison === 0 };
  return { value: nextDoubleDown(value), exact: false };
}

/** Sign of `magnitude * 10^exponent10 - value` for a finite double `value >= 0`, exactly. */
function compareWithDouble(magnitude: bigint, exponent10: number, value: number): number {
  if (value === 0) return 1;
  const { mantissa, exponent2 } = decomposeDouble(value);
  let left = magnitude;
  let right = mantissa;
  if (exponent10 >= 0) left *= 10n ** BigInt(exponent10);
  else right *= 10n ** BigInt(-exponent10);
  if (exponent2 >= 0) right <<= BigInt(exponent2);
  else left <<= BigInt(-exponent2);
  return left < right ? -1 : left > right ? 1 : 0;
}

function nextDoubleDown(value: number): number {
  const view = new DataView(new ArrayBuffer(8));
  view.setFloat64(0, value);
  view.setBigUint64(0, view.getBigUint64(0) - 1n);
  return view.getFloat64(0);
}

/**
 * A positive decimal as: adjusted exponent (power of ten of the leading digit, +0x8000, 2 bytes),
 * the significant digits in pairs (each pair 1..100, a lone last digit padded with 0), then 0x00.
 * Trailing zeros are dropped, so equal values give equal bytes and a digit prefix sorts first.
 */
function decimalMagnitudeBytes(magnitude: bigint, exponent10: number): number[] {
  const text = magnitude.toString();
  const adjustedExponent = exponent10 + text.length - 1 + 0x8000;
  const digits = text.replace(/0+$/, "");
  const bytes = [adjustedExponent >> 8, adjustedExponent & 0xff];
  for (let i = 0; i < digits.length; i += 2) {
    bytes.push(1 + Number(digits[i]) * 10 + Number(digits[i + 1] ?? "0"));
  }
  bytes.push(0);
  return bytes;
}
