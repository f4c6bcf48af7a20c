/**
 * A quick, conservative look at a raw document's bytes before the loader hands it to the driver:
 * "plain" means it holds only what a JS object carries back to the very same bytes, so the full
 * round trip of exactDocument.ts (serialize again and compare) can be skipped. Whatever JS
 * objects or the bson library reshape is not plain: DBPointer, Undefined, symbols, code with
 * scope, regular expressions (options get sorted), DBRef-like `$` names (field order changes),
 * integer-like names (JS moves them first), repeated names, array indexes out of sequence, NaN
 * and infinite doubles (payloads), dates outside JS's range, old binary and vectors, names or
 * strings that are not UTF-8. Such a document takes the full round trip, which decides exactly.
 * Reads element headers (and checks strings' UTF-8 natively): no values are decoded and no
 * strings made, so it costs a fraction of a serialization.
 */

import { isUtf8 } from "node:buffer";

const DOUBLE = 0x01;
const STRING = 0x02;
const DOCUMENT = 0x03;
const ARRAY = 0x04;
const BINARY = 0x05;
const OBJECT_ID = 0x07;
const BOOLEAN = 0x08;
const DATE = 0x09;
const NULL = 0x0a;
const CODE = 0x0d;
const INT32 = 0x10;
const TIMESTAMP = 0x11;
const INT64 = 0x12;
const DECIMAL128 = 0x13;
const MIN_KEY = 0xff;
const MAX_KEY = 0x7f;

const BINARY_OLD = 0x02;
const BINARY_VECTOR = 0x09;
/** The largest |milliseconds| a JS Date holds (ECMAScript's time value range). */
const JS_DATE_LIMIT = 8.64e15;
/** Past this many fields in one document the repeated-name check would cost more than a round trip. */
const MAX_COMPARED_FIELDS = 64;

const DIGIT_0 = 0x30;
const DIGIT_9 = 0x39;
const DOLLAR = 0x24;
const PROTO = Buffer.from("__proto__");

/**
 * Start and length of each name of the documents being looked at, outermost first, as pairs: a
 * shared stack rather than arrays per document, since this runs for every restored document.
 * A document nested past what it holds is simply not plain.
 */
const names = new Int32Array(2 * 4096);
let top = 0;

function int32(bytes: Uint8Array, pos: number): number {
  return bytes[pos] | (bytes[pos + 1] << 8) | (bytes[pos + 2] << 16) | (bytes[pos + 3] << 24);
}

/** True when the bytes `[aStart, aStart+length)` and `[bStart, bStart+length)` are equal. */
function sameBytes(bytes: Uint8Array, aStart: number, bStart: number, length: number): boolean {
  for (let k = 0; k < length; k++) if (bytes[aStart + k] !== bytes[bStart + k]) return false;
  return true;
}

/** True when the name at `start` (of `length` bytes) is the decimal form of `index`. */
function isIndexName(bytes: Uint8Array, start: number, length: number, index: number): boolean {
  if (length === 0) return false;
  let rest = index;
  for (let k = length - 1; k >= 0; k--) {
    if (bytes[start + k] !== DIGIT_0 + (rest % 10)) return false;
    rest = Math.floor(rest / 10);
    if (rest === 0 && k > 0) return false;
  }
  return rest === 0;
}

/** Whether a name outside an array survives a JS object where it stands. */
function isPlainName(bytes: Uint8Array, start: number, length: number): boolean {
  const first = bytes[start];
  if (first >= DIGIT_0 && first <= DIGIT_9) return false;
  if (first === DOLLAR) return false;
  return !(length === PROTO.length && PROTO.equals(bytes.subarray(start, start + length)));
}

/** The length of a plain value of `type` at `pos`, or -1 when the value is not plain. */
function plainValueLength(bytes: Uint8Array, type: number, pos: number, end: number): number {
  switch (type) {
    case DOUBLE:
      // Exponent all ones: NaN (whose payload may not survive) or an infinity.
      return (bytes[pos + 7] & 0x7f) === 0x7f && (bytes[pos + 6] & 0xf0) === 0xf0 ? -1 : 8;
    case STRING:
    case CODE: {
      const length = int32(bytes, pos);
      if (length < 1 || pos + 4 + length > end || bytes[pos + 3 + length] !== 0) return -1;
      // Checked here so that plain documents can be read without bson's slower check.
      return isUtf8(bytes.subarray(pos + 4, pos + 3 + length)) ? 4 + length : -1;
    }
    case DOCUMENT:
    case ARRAY: {
      const length = int32(bytes, pos);
      return pos + length <= end && isPlainAt(bytes, pos, type === ARRAY) ? length : -1;
    }
    case BINARY: {
      const length = int32(bytes, pos);
      const subtype = bytes[pos + 4];
      if (length < 0 || pos + 5 + length > end) return -1;
      return subtype === BINARY_OLD || subtype === BINARY_VECTOR ? -1 : 5 + length;
    }
    case OBJECT_ID:
      return 12;
    case BOOLEAN:
      return bytes[pos] <= 1 ? 1 : -1;
    case DATE: {
      const ms = int32(bytes, pos + 4) * 4294967296 + (int32(bytes, pos) >>> 0);
      return Math.abs(ms) <= JS_DATE_LIMIT ? 8 : -1;
    }
    case NULL:
    case MIN_KEY:
    case MAX_KEY:
      return 0;
    case INT32:
      return 4;
    case TIMESTAMP:
    case INT64:
      return 8;
    case DECIMAL128:
      return 16;
    default:
      return -1;
  }
}

/** Whether the document (or array) at `start` is plain, by its element headers. */
function isPlainAt(bytes: Uint8Array, start: number, isArray: boolean): boolean {
  const size = int32(bytes, start);
  const end = start + size;
  if (size < 5 || end > bytes.length || bytes[end - 1] !== 0) return false;
  // This document's names go on the shared stack, above those of the documents around it.
  const first = top;
  let count = 0;
  let pos = start + 4;
  while (pos < end - 1) {
    const type = bytes[pos];
    const nameStart = pos + 1;
    // Names are short: a loop beats a native indexOf call per field.
    let nameEnd = nameStart;
    let ascii = true;
    for (; nameEnd < end - 1 && bytes[nameEnd] !== 0; nameEnd++) if (bytes[nameEnd] >= 0x80) ascii = false;
    if (nameEnd >= end - 1) return false;
    const nameLength = nameEnd - nameStart;
    // bson reads names without checking their UTF-8: a bad sequence would come back as U+FFFD.
    if (!ascii && !isUtf8(bytes.subarray(nameStart, nameEnd))) return false;
    if (isArray) {
      if (!isIndexName(bytes, nameStart, nameLength, count)) return false;
    } else {
      if (!isPlainName(bytes, nameStart, nameLength)) return false;
      if (count === MAX_COMPARED_FIELDS || top === names.length) return false;
      for (let k = first; k < top; k += 2) {
        if (names[k + 1] === nameLength && sameBytes(bytes, names[k], nameStart, nameLength)) return false;
      }
      names[top++] = nameStart;
      names[top++] = nameLength;
    }
    count++;
    const valueLength = plainValueLength(bytes, type, nameEnd + 1, end - 1);
    if (valueLength < 0) return false;
    pos = nameEnd + 1 + valueLength;
  }
  top = first;
  return pos === end - 1;
}

/** True when `bytes`, one whole BSON document, certainly survives a JS object byte for byte. */
export function isPlainDocument(bytes: Uint8Array): boolean {
  top = 0;
  return bytes.length >= 5 && int32(bytes, 0) === bytes.length && isPlainAt(bytes, 0, false);
}
