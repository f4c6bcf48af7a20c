import { corruptSlice, SliceError } from "./errors.js";

/*
 * A slice body is BSON documents back to back, exactly like a mongodump `.bson` file: each
 * starts with its int32 length and ends with a 0x00 byte. Walking the length prefixes is cheap
 * (no values are decoded) and catches truncation and garbage: every prefix must land exactly on
 * the next document, and the last one exactly on the end of the body.
 */

const MIN_DOCUMENT_SIZE = 5; // int32 length + terminator

/** Throws unless `raw` is one whole BSON document by its framing (length prefix and terminator). */
export function checkWholeDocument(raw: Uint8Array, index: number): void {
  const declared =
    raw.length >= 4 ? (raw[0] | (raw[1] << 8) | (raw[2] << 16) | (raw[3] << 24)) >>> 0 : undefined;
  if (declared !== raw.length || raw.length < MIN_DOCUMENT_SIZE || raw[raw.length - 1] !== 0) {
    throw new SliceError(
      "MALFORMED_BSON",
      `document ${index} is not one whole BSON document (${raw.length} bytes, length prefix ` +
        `${declared ?? "missing"}); pass each document's raw bytes exactly as the driver returned them`,
    );
  }
}

/** Offset and length of every document in `body`; SliceError MALFORMED_BSON if they do not chain. */
export function* documentSpans(body: Uint8Array): Generator<[start: number, end: number]> {
  let pos = 0;
  let index = 0;
  while (pos < body.length) {
    const left = body.length - pos;
    if (left < MIN_DOCUMENT_SIZE) {
      throw corruptSlice(
        "MALFORMED_BSON",
        `the body ends with ${left} stray bytes after ${index} documents (too short for a BSON document)`,
      );
    }
    const size = (body[pos] | (body[pos + 1] << 8) | (body[pos + 2] << 16) | (body[pos + 3] << 24)) >>> 0;
    if (size < MIN_DOCUMENT_SIZE || size > left) {
      throw corruptSlice(
        "MALFORMED_BSON",
        `document ${index} at body offset ${pos} has length ${size}, but ${left} bytes remain`,
      );
    }
    if (body[pos + size - 1] !== 0) {
      throw corruptSlice(
        "MALFORMED_BSON",
        `document ${index} at body offset ${pos} does not end with the BSON terminator byte`,
      );
    }
    yield [pos, pos + size];
    pos += size;
    index++;
  }
}

/** Number of documents in `body`, checking that they chain exactly to its end. */
export function countDocuments(body: Uint8Array): number {
  let count = 0;
  for (const _span of documentSpans(body)) count++;
  return count;
}

/** The documents of `body` as views into it (no copies). */
export function* splitDocuments(body: Buffer): Generator<Buffer> {
  for (const [start, end] of documentSpans(body)) yield body.subarray(start, end);
}
