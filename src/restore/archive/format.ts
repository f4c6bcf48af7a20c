import { elements } from "../../bson/elements.js";

/** The archive's first four bytes: int32 0x8199e26d, little-endian. */
export const ARCHIVE_MAGIC = Buffer.from([0x6d, 0xe2, 0x99, 0x81]);
/** First bytes of a gzip stream (`mongodump --archive --gzip` gzips the whole archive). */
export const GZIP_MAGIC = Buffer.from([0x1f, 0x8b]);
/** Ends the prelude and every namespace segment: int32 -1. */
export const TERMINATOR = Buffer.from([0xff, 0xff, 0xff, 0xff]);
/** The only archive format version there is. */
export const ARCHIVE_VERSION = "0.1";

/** Map key of a namespace (the db may be "" for the oplog; names may contain dots). */
export function namespaceKey(db: string, collection: string): string {
  return JSON.stringify([db, collection]);
}

/** The prefix of a timeseries collection's buckets collection, which holds its data. */
export const BUCKETS_PREFIX = "system.buckets.";

/**
 * Why `doc` (one whole document, its length prefix already checked) is not well-formed BSON, with
 * the offset inside the document, or undefined if it is. Walks every element and embedded
 * document without decoding values.
 */
export function bsonProblem(doc: Uint8Array): { problem: string; at: number } | undefined {
  try {
    return documentProblem(doc, 0, 0);
  } catch (err) {
    return { problem: err instanceof Error ? err.message : String(err), at: 0 };
  }
}

function int32(bytes: Uint8Array, pos: number): number {
  return bytes[pos] | (bytes[pos + 1] << 8) | (bytes[pos + 2] << 16) | (bytes[pos + 3] << 24);
}

function documentProblem(
  bytes: Uint8Array,
  start: number,
  depth: number,
): { problem: string; at: number } | undefined {
  if (depth > 200) return { problem: "documents nested more than 200 deep", at: start };
  if (start + 5 > bytes.length) return { problem: "embedded document overruns its parent", at: start };
  const length = int32(bytes, start);
  const end = start + length;
  if (length < 5 || end > bytes.length)
    return { problem: `bad embedded document length ${length}`, at: start };
  if (bytes[end - 1] !== 0) return { problem: "document does not end with a NUL byte", at: end - 1 };
  let last = start + 4;
  for (const element of elements(bytes, start)) {
    if (element.valueEnd < element.valueStart || element.valueEnd > end - 1) {
      return {
        problem: `element ${JSON.stringify(element.name)} overruns its document`,
        at: element.valueStart,
      };
    }
    switch (element.type) {
      case 0x02: // string, code, symbol: int32 length (>= 1) then bytes ending with NUL
      case 0x0d:
      case 0x0e:
        if (element.valueEnd - element.valueStart < 5 || bytes[element.valueEnd - 1] !== 0) {
          return { problem: `string ${JSON.stringify(element.name)} is malformed`, at: element.valueStart };
        }
        break;
      case 0x05:
        if (int32(bytes, element.valueStart) < 0)
          return {
            problem: `binary ${JSON.stringify(element.name)} has a negative length`,
            at: element.valueStart,
          };
        break;
      case 0x03:
      case 0x04: {
        const inner = documentProblem(bytes.subarray(0, element.valueEnd), element.valueStart, depth + 1);
        if (inner) return inner;
        break;
      }
      case 0x0f: {
        // code with scope: int32 total, string, document
        const strLen = int32(bytes, element.valueStart + 4);
        const scope = element.valueStart + 8 + strLen;
        if (strLen < 1 || scope >= element.valueEnd || bytes[scope - 1] !== 0)
          return {
            problem: `code with scope ${JSON.stringify(element.name)} is malformed`,
            at: element.valueStart,
          };
        const inner = documentProblem(bytes.subarray(0, element.valueEnd), scope, depth + 1);
        if (inner) return inner;
        break;
      }
      case 0x08:
        if (bytes[element.valueStart] > 1)
          return {
            problem: `boolean ${JSON.stringify(element.name)} is neither 0 nor 1`,
            at: element.valueStart,
          };
        break;
    }
    last = element.valueEnd;
  }
  if (last !== end - 1) return { problem: "the last element overruns the document's final NUL", at: last };
  return undefined;
}
