import { createHash } from "node:crypto";
import { crc32 } from "node:zlib";
import {
  Binary,
  BSONError,
  deserialize,
  Double,
  Int32,
  Long,
  serialize,
  Timestamp,
  type Document,
} from "bson";
import { compress, decompress, isCodec, type Codec } from "./codecs.js";
import { checkWholeDocument, countDocuments, documentSpans, splitDocuments } from "./documentChain.js";
import { corruptSlice, SliceError } from "./errors.js";
import { oplogTimestamp, topLevelField } from "./rawFields.js";

/*
 * Slice file format, version 1 (decided for the project; see DESIGN.md "Slices"):
 *
 *   offset 0     8 bytes     magic "TDMKSLC" + format version byte 0x01
 *   offset 8     uint32 LE   header length N
 *   offset 12    N bytes     header: one BSON document (fields below, in this order)
 *   offset 12+N  uint32 LE   CRC-32 (IEEE) of the N header bytes
 *   offset 16+N  body        the compressed concatenation of BSON documents
 *
 * The header has its own CRC so a reader (a listing, the server deciding where a slice goes)
 * can trust it after reading only the first few hundred bytes; the body is covered by the
 * SHA-256 in the header, which also serves to recognise the same slice sent twice.
 */

export const SLICE_MAGIC = Buffer.from("TDMKSLC", "latin1");
export const SLICE_FORMAT_VERSION = 1;
/** Magic, version byte and header length: what precedes the header. */
export const SLICE_PREAMBLE_SIZE = SLICE_MAGIC.length + 1 + 4;
const CRC_SIZE = 4;
/** Headers are a few hundred bytes; a larger length field is damage, not a real header. */
export const MAX_HEADER_SIZE = 1024 * 1024;
/** Default refusal limit for a header's uncompressed size, so one slice cannot exhaust memory. */
export const DEFAULT_MAX_UNCOMPRESSED_SIZE = 512 * 1024 * 1024;

export type SliceKind = "documents" | "oplog" | "catalog" | "missing";
export const SLICE_KINDS: readonly SliceKind[] = ["documents", "oplog", "catalog", "missing"];

export interface SliceHeader {
  kind: SliceKind;
  /** Deployment id. */
  deployment: string;
  /** Stream within the deployment: "oplog", "documents/shop.orders", "catalog/shop", "missing/<requestId>". */
  stream: string;
  /** 0-based position of this slice within its stream (stored as int64). */
  sequence: number;
  namespace?: string;
  /** Oplog slices: `ts` of the first and last entry. */
  firstTs?: Timestamp;
  lastTs?: Timestamp;
  /**
   * Documents slices: `_id` of the last document with its exact BSON type (numbers stay Int32,
   * Long or Double wrappers), so a restarted clone resumes with `{_id: {$gt: lastId}}`.
   */
  lastId?: unknown;
  count: number;
  uncompressedSize: number;
  compressedSize: number;
  codec: Codec;
  /** SHA-256 of the compressed body as stored. */
  bodySha256: Buffer;
  createdAt: Date;
  /** Kind-specific data (catalog info, the missing-documents request); exact BSON types kept. */
  extra?: Document;
}

/**
 * What the writer of a slice says; the rest of the header (count, sizes, codec, checksum) is
 * computed from the documents, and createdAt defaults to now.
 */
export type SliceHeaderFields = Omit<
  SliceHeader,
  "count" | "uncompressedSize" | "compressedSize" | "codec" | "bodySha256" | "createdAt"
> & { createdAt?: Date };

export interface EncodeOptions {
  /** Fill firstTs/lastTs from the entries' `ts` (unless given). Default: kind "oplog". */
  trackOptimes?: boolean;
  /** Fill lastId from the last document's `_id` (unless given). Default: kind "documents". */
  trackLastId?: boolean;
}

export interface DecodeOptions {
  /** Refuse slices whose header declares a larger body than this. */
  maxUncompressedSize?: number;
  /** Check that the body holds `count` documents (default true; inspect turns it off to count). */
  checkCount?: boolean;
}

export interface DecodedSlice {
  header: SliceHeader;
  /** The uncompressed body: a valid mongodump `.bson` file (for codec "none", a view into the slice). */
  body: Buffer;
  /** The documents of the body, as views into it (no copies). */
  documents(): Generator<Buffer>;
}

/** Integers as int32 when they fit, int64 otherwise (a plain JS number would become a double). */
function bsonInteger(value: number): Int32 | Long {
  if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`not a size or count: ${value}`);
  return value <= 0x7fffffff ? new Int32(value) : Long.fromNumber(value);
}

/** Serializes the header with its fields in the order the format lists them. */
function headerDocument(header: SliceHeader): Document {
  const doc: Document = {
    kind: header.kind,
    deployment: header.deployment,
    stream: header.stream,
    sequence: Long.fromNumber(header.sequence),
  };
  if (header.namespace !== undefined) doc.namespace = header.namespace;
  if (header.firstTs !== undefined) doc.firstTs = header.firstTs;
  if (header.lastTs !== undefined) doc.lastTs = header.lastTs;
  if (header.lastId !== undefined) doc.lastId = header.lastId;
  doc.count = bsonInteger(header.count);
  doc.uncompressedSize = bsonInteger(header.uncompressedSize);
  doc.compressedSize = bsonInteger(header.compressedSize);
  doc.codec = header.codec;
  doc.bodySha256 = new Binary(header.bodySha256);
  doc.createdAt = header.createdAt;
  if (header.extra !== undefined) doc.extra = header.extra;
  return doc;
}

export function sha256(bytes: Uint8Array): Buffer {
  return createHash("sha256").update(bytes).digest();
}

/**
 * Frames an already compressed body with a complete header. The caller vouches that the header
 * describes the body; encodeSlice is the normal way to make a slice.
 */
export function assembleSlice(header: SliceHeader, compressedBody: Uint8Array): Buffer {
  const headerBytes = serialize(headerDocument(header));
  const out = Buffer.allocUnsafe(SLICE_PREAMBLE_SIZE + headerBytes.length + CRC_SIZE + compressedBody.length);
  SLICE_MAGIC.copy(out, 0);
  out[SLICE_MAGIC.length] = SLICE_FORMAT_VERSION;
  out.writeUInt32LE(headerBytes.length, SLICE_MAGIC.length + 1);
  out.set(headerBytes, SLICE_PREAMBLE_SIZE);
  out.writeUInt32LE(crc32(headerBytes), SLICE_PREAMBLE_SIZE + headerBytes.length);
  out.set(compressedBody, SLICE_PREAMBLE_SIZE + headerBytes.length + CRC_SIZE);
  return out;
}

/**
 * Makes one slice from raw BSON documents: concatenates them (the uncompressed body), compresses
 * it, and fills in count, sizes, body checksum and, by kind, the optime range or last `_id`.
 */
export function encodeSlice(
  fields: SliceHeaderFields,
  documents: readonly Uint8Array[],
  codec: Codec = "zstd",
  options: EncodeOptions = {},
): Buffer {
  documents.forEach((doc, index) => checkWholeDocument(doc, index));
  const body = Buffer.concat(documents);
  return encodeBody(
    fields,
    body,
    documents.length,
    documents[0],
    documents[documents.length - 1],
    codec,
    options,
  );
}

/**
 * Like encodeSlice, for documents already concatenated (what SliceBuilder collects), so they are
 * not copied again. The length prefixes are walked to count the documents and find the first and
 * last; SliceError MALFORMED_BSON if they do not chain exactly to the end of `body`. Nothing of
 * `body` is kept: the slice is a new buffer, whatever the codec.
 */
export function encodeSliceBody(
  fields: SliceHeaderFields,
  body: Buffer,
  codec: Codec = "zstd",
  options: EncodeOptions = {},
): Buffer {
  let count = 0;
  let first: Uint8Array | undefined;
  let lastStart = 0;
  for (const [start, end] of documentSpans(body)) {
    if (count === 0) first = body.subarray(start, end);
    lastStart = start;
    count++;
  }
  const last = count > 0 ? body.subarray(lastStart) : undefined;
  return encodeBody(fields, body, count, first, last, codec, options);
}

function encodeBody(
  fields: SliceHeaderFields,
  body: Buffer,
  count: number,
  first: Uint8Array | undefined,
  last: Uint8Array | undefined,
  codec: Codec,
  options: EncodeOptions,
): Buffer {
  const compressed = compress(codec, body);
  const trackOptimes = options.trackOptimes ?? fields.kind === "oplog";
  const trackLastId = options.trackLastId ?? fields.kind === "documents";
  const header: SliceHeader = {
    kind: fields.kind,
    deployment: fields.deployment,
    stream: fields.stream,
    sequence: fields.sequence,
    namespace: fields.namespace,
    firstTs: fields.firstTs ?? (trackOptimes && first ? oplogTimestamp(first, 0) : undefined),
    lastTs: fields.lastTs ?? (trackOptimes && last ? oplogTimestamp(last, count - 1) : undefined),
    lastId: fields.lastId ?? (trackLastId && last ? topLevelField(last, "_id") : undefined),
    count,
    uncompressedSize: body.length,
    compressedSize: compressed.length,
    codec,
    bodySha256: sha256(compressed),
    createdAt: fields.createdAt ?? new Date(),
    extra: fields.extra,
  };
  return assembleSlice(header, compressed);
}

function headerError(what: string): SliceError {
  return corruptSlice("MALFORMED_BSON", `the slice header ${what}`);
}

function requireString(doc: Document, name: string): string {
  const value = doc[name];
  if (typeof value !== "string") throw headerError(`has no string field '${name}'`);
  return value;
}

function optionalString(doc: Document, name: string): string | undefined {
  return doc[name] === undefined ? undefined : requireString(doc, name);
}

function requireCount(doc: Document, name: string): number {
  const value: unknown = doc[name];
  let number: number | undefined;
  if (value instanceof Timestamp) number = undefined;
  else if (value instanceof Long) number = value.toNumber();
  else if (value instanceof Int32 || value instanceof Double) number = value.valueOf();
  else if (typeof value === "number") number = value;
  if (number === undefined || !Number.isSafeInteger(number) || number < 0) {
    throw headerError(`has no whole-number field '${name}'`);
  }
  return number;
}

function optionalTimestamp(doc: Document, name: string): Timestamp | undefined {
  const value: unknown = doc[name];
  if (value === undefined) return undefined;
  if (!(value instanceof Timestamp)) throw headerError(`field '${name}' is not a Timestamp`);
  return value;
}

/** Turns the checked header bytes into a SliceHeader, rejecting fields of the wrong type. */
function parseHeader(bytes: Buffer): SliceHeader {
  let doc: Document;
  try {
    doc = deserialize(bytes, { promoteValues: false, validation: { utf8: true } });
  } catch (error) {
    if (!(error instanceof BSONError)) throw error;
    throw headerError(`is not valid BSON (${error.message})`);
  }
  const kind = requireString(doc, "kind");
  if (!(SLICE_KINDS as readonly string[]).includes(kind)) throw headerError(`has unknown kind '${kind}'`);
  const codec = requireString(doc, "codec");
  if (!isCodec(codec)) {
    throw new SliceError(
      "DECOMPRESS",
      `the slice uses codec '${codec}', which this version of Tidemark cannot read; upgrade Tidemark`,
    );
  }
  const sha = doc.bodySha256;
  if (!(sha instanceof Binary) || sha.length() !== 32) throw headerError("has no 32-byte bodySha256");
  if (!(doc.createdAt instanceof Date)) throw headerError("has no date field 'createdAt'");
  const extra: unknown = doc.extra;
  if (extra !== undefined && (typeof extra !== "object" || extra === null || Array.isArray(extra))) {
    throw headerError("field 'extra' is not a document");
  }
  return {
    kind: kind as SliceKind,
    deployment: requireString(doc, "deployment"),
    stream: requireString(doc, "stream"),
    sequence: requireCount(doc, "sequence"),
    namespace: optionalString(doc, "namespace"),
    firstTs: optionalTimestamp(doc, "firstTs"),
    lastTs: optionalTimestamp(doc, "lastTs"),
    lastId: doc.lastId,
    count: requireCount(doc, "count"),
    uncompressedSize: requireCount(doc, "uncompressedSize"),
    compressedSize: requireCount(doc, "compressedSize"),
    codec,
    bodySha256: Buffer.from(sha.buffer.subarray(0, 32)),
    createdAt: doc.createdAt,
    extra: extra as Document | undefined,
  };
}

/** The checked header, and where the compressed body starts. */
interface Framing {
  header: SliceHeader;
  bodyOffset: number;
}

function readFraming(buf: Uint8Array): Framing {
  const bytes = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  const magicSeen = bytes.subarray(0, SLICE_MAGIC.length);
  if (!magicSeen.equals(SLICE_MAGIC.subarray(0, magicSeen.length))) {
    throw new SliceError(
      "BAD_MAGIC",
      `not a Tidemark slice: it starts with ${JSON.stringify(magicSeen.toString("latin1"))} ` +
        `instead of "TDMKSLC"; check that the file or upload is a slice`,
    );
  }
  if (bytes.length < SLICE_PREAMBLE_SIZE) {
    throw corruptSlice("TRUNCATED", `the slice is ${bytes.length} bytes, shorter than its fixed preamble`);
  }
  const version = bytes[SLICE_MAGIC.length];
  if (version !== SLICE_FORMAT_VERSION) {
    throw new SliceError(
      "UNSUPPORTED_VERSION",
      `the slice has format version ${version}, but this version of Tidemark reads only version ` +
        `${SLICE_FORMAT_VERSION}; ` +
        (version > SLICE_FORMAT_VERSION ? "upgrade Tidemark to read it" : "the slice is corrupt"),
    );
  }
  const headerLength = bytes.readUInt32LE(SLICE_MAGIC.length + 1);
  if (headerLength > MAX_HEADER_SIZE) {
    throw corruptSlice("HEADER_CHECKSUM", `the header length field (${headerLength}) is impossibly large`);
  }
  const bodyOffset = SLICE_PREAMBLE_SIZE + headerLength + CRC_SIZE;
  if (bytes.length < bodyOffset) {
    throw corruptSlice(
      "TRUNCATED",
      `the slice is ${bytes.length} bytes but its header alone needs ${bodyOffset} bytes`,
    );
  }
  const headerBytes = bytes.subarray(SLICE_PREAMBLE_SIZE, SLICE_PREAMBLE_SIZE + headerLength);
  const stored = bytes.readUInt32LE(SLICE_PREAMBLE_SIZE + headerLength);
  const computed = crc32(headerBytes);
  if (stored !== computed) {
    throw corruptSlice(
      "HEADER_CHECKSUM",
      `the header does not match its CRC-32 (computed ${hex32(computed)}, recorded ${hex32(stored)})`,
    );
  }
  return { header: parseHeader(headerBytes), bodyOffset };
}

function hex32(value: number): string {
  return `0x${value.toString(16).padStart(8, "0")}`;
}

/**
 * Reads and checks the header (magic, version, header CRC). Needs only the start of the slice,
 * up to the end of the header, so a listing can read a few hundred bytes per slice.
 */
export function readSliceHeader(buf: Uint8Array): SliceHeader {
  return readFraming(buf).header;
}

/**
 * Reads a whole slice and checks everything: framing and header, the body's length and SHA-256,
 * that it decompresses to exactly `uncompressedSize` bytes, that those bytes are whole BSON
 * documents back to back, and that there are `count` of them. Throws SliceError on the first
 * failure.
 */
export function decodeSlice(buf: Uint8Array, options: DecodeOptions = {}): DecodedSlice {
  const { header, bodyOffset } = readFraming(buf);
  const bytes = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  const compressed = bytes.subarray(bodyOffset);
  if (compressed.length < header.compressedSize) {
    throw corruptSlice(
      "TRUNCATED",
      `the body is ${compressed.length} bytes but the header declares ${header.compressedSize}`,
    );
  }
  if (compressed.length > header.compressedSize) {
    throw corruptSlice(
      "SIZE_MISMATCH",
      `the slice has ${compressed.length - header.compressedSize} unexpected bytes after its body`,
    );
  }
  if (!sha256(compressed).equals(header.bodySha256)) {
    throw corruptSlice("BODY_CHECKSUM", "the body's SHA-256 does not match the one in the header");
  }
  const limit = options.maxUncompressedSize ?? DEFAULT_MAX_UNCOMPRESSED_SIZE;
  if (header.uncompressedSize > limit) {
    throw new SliceError(
      "SIZE_MISMATCH",
      `the slice declares ${header.uncompressedSize} uncompressed bytes, more than the limit of ` +
        `${limit}; if slices really are this large, raise maxUncompressedSize`,
    );
  }
  const body = decompress(header.codec, compressed, header.uncompressedSize);
  const count = countDocuments(body);
  if ((options.checkCount ?? true) && count !== header.count) throw countMismatch(header.count, count);
  return { header, body, documents: () => splitDocuments(body) };
}

export function countMismatch(declared: number, actual: number): SliceError {
  return corruptSlice(
    "COUNT_MISMATCH",
    `the body holds ${actual} documents but the header declares ${declared}`,
  );
}
