import { encodeIdKeyFromDocument } from "../bson/keyEncoding.js";
import { compress, decompress, type Codec } from "../slice/codecs.js";
import { CORRUPT_SLICE_ADVICE, SliceError } from "../slice/errors.js";
import { BlockError, corruptBlock } from "./errors.js";
import { blockHash } from "./stores/blockStore.js";

/*
 * Run block format, version 1 (see DESIGN.md "Snapshots"):
 *
 *   offset 0    8 bytes    magic "TDMKBLK" + format version byte 0x01
 *   offset 8    uint8      codec: 0 none, 1 zstd, 2 snappy, 3 gzip
 *   offset 9    uint8      reserved, 0
 *   offset 10   uint32 LE  entry count
 *   offset 14   uint32 LE  uncompressed body length
 *   offset 18   body       the compressed body
 *
 * The uncompressed body is the entries back to back, in strictly increasing key order:
 *
 *   uint8 kind (1 document, 2 deletion marker), LEB128 key length, key bytes,
 *   then for a document its raw BSON (self-delimiting by its int32 length prefix).
 *
 * A block is addressed by the SHA-256 of its stored bytes (header included), so the address is the
 * checksum: a reader that fetched a block by its hash checks the hash first, and nothing in the
 * header needs a checksum of its own. Nothing in a block depends on when or where it was written
 * (no timestamps, no deployment, no snapshot id), so identical entries with the same codec give
 * identical bytes and one stored copy, across snapshots and deployments. (Compressor output is
 * deterministic for one library version; a zstd upgrade that changes its output only costs
 * deduplication, never correctness. gzip records the OS in its header: prefer zstd or none.)
 *
 * Keys are the order-preserving `_id` keys of src/bson/keyEncoding.ts; a deletion marker needs
 * its key (there is no decoder from key to `_id`), so every entry carries its key.
 *
 * TODO(encryption, issue 6): a `transform` on the stored bytes (AES-256-GCM with a wrapped data
 * key) goes between `encodeBlock` and the sink, and its inverse before `decodeBlock`; the address
 * is then the hash of the encrypted bytes, and deduplication across deployments needs the same data
 * key (or convergent encryption), a decision for that work.
 */

export const BLOCK_MAGIC = Buffer.from("TDMKBLK", "latin1");
export const BLOCK_FORMAT_VERSION = 1;
export const BLOCK_HEADER_SIZE = 18;
/** Default refusal limit for a block's declared uncompressed length, so one block cannot exhaust memory. */
export const DEFAULT_MAX_BLOCK_BYTES = 128 * 1024 * 1024;

const KIND_DOCUMENT = 1;
const KIND_DELETED = 2;
const MIN_BSON_SIZE = 5;

const CODEC_IDS: Readonly<Record<Codec, number>> = { none: 0, zstd: 1, snappy: 2, gzip: 3 };
const CODEC_BY_ID: readonly Codec[] = ["none", "zstd", "snappy", "gzip"];

/** A live document of a run. `key` is the order-preserving key of its `_id`. */
export interface DocumentEntry {
  key: Buffer;
  doc: Buffer;
  deleted?: false;
}

/** A deletion marker of a delta run: the document with this key is gone. */
export interface DeletionEntry {
  key: Buffer;
  deleted: true;
}

export type RunEntry = DocumentEntry | DeletionEntry;

function varintLength(value: number): number {
  let length = 1;
  while (value >= 0x80) {
    value = Math.floor(value / 128);
    length++;
  }
  return length;
}

/** Bytes an entry takes in an uncompressed block body. */
export function encodedEntrySize(entry: RunEntry): number {
  const key = entry.key.length;
  return 1 + varintLength(key) + key + (entry.deleted ? 0 : entry.doc.length);
}

/**
 * The uncompressed body of the block being filled: entries are copied in (a caller may reuse its
 * buffers, as LMDB's do), into one buffer that is reused from block to block.
 */
export class BlockBodyBuilder {
  private buf: Buffer;
  private used = 0;
  count = 0;
  deletions = 0;
  /** Sum of the documents' BSON sizes: the data this block holds. */
  logicalBytes = 0;
  firstKey: Buffer | undefined;
  lastKey: Buffer | undefined;

  constructor(private readonly initialCapacity: number) {
    this.buf = Buffer.allocUnsafe(initialCapacity);
  }

  get length(): number {
    return this.used;
  }

  add(entry: RunEntry): void {
    const need = encodedEntrySize(entry);
    this.reserve(need);
    const buf = this.buf;
    let pos = this.used;
    buf[pos++] = entry.deleted ? KIND_DELETED : KIND_DOCUMENT;
    let length = entry.key.length;
    while (length >= 0x80) {
      buf[pos++] = (length & 0x7f) | 0x80;
      length = Math.floor(length / 128);
    }
    buf[pos++] = length;
    const keyStart = pos;
    pos += entry.key.copy(buf, pos);
    const key = buf.subarray(keyStart, pos);
    if (entry.deleted) this.deletions++;
    else {
      pos += entry.doc.copy(buf, pos);
      this.logicalBytes += entry.doc.length;
    }
    this.used = pos;
    this.count++;
    this.firstKey ??= Buffer.from(key);
    this.lastKey = key;
  }

  body(): Buffer {
    return this.buf.subarray(0, this.used);
  }

  /** Empties the builder; a buffer grown far past the usual size for one huge document is let go. */
  reset(): void {
    this.used = 0;
    this.count = 0;
    this.deletions = 0;
    this.logicalBytes = 0;
    this.firstKey = undefined;
    this.lastKey = undefined;
    if (this.buf.length > 4 * this.initialCapacity) this.buf = Buffer.allocUnsafe(this.initialCapacity);
  }

  private reserve(extra: number): void {
    if (this.used + extra <= this.buf.length) return;
    const grown = Buffer.allocUnsafe(Math.max(this.used + extra, this.buf.length * 2));
    this.buf.copy(grown, 0, 0, this.used);
    // lastKey points into the old buffer; it stays valid there (the old buffer is not reused).
    this.buf = grown;
  }
}

/** Compresses an uncompressed body of `count` entries into stored block bytes. A new buffer, always. */
export function encodeBlock(body: Buffer, count: number, codec: Codec = "zstd"): Buffer {
  const compressed = compress(codec, body);
  const stored = Buffer.allocUnsafe(BLOCK_HEADER_SIZE + compressed.length);
  BLOCK_MAGIC.copy(stored, 0);
  stored[BLOCK_MAGIC.length] = BLOCK_FORMAT_VERSION;
  stored[8] = CODEC_IDS[codec];
  stored[9] = 0;
  stored.writeUInt32LE(count, 10);
  stored.writeUInt32LE(body.length, 14);
  compressed.copy(stored, BLOCK_HEADER_SIZE);
  return stored;
}

export interface DecodeBlockOptions {
  /** The address the block was fetched by (hex or bytes): checked first. */
  expectedHash?: string | Uint8Array;
  /** Refuse blocks declaring more uncompressed bytes than this (default 128 MiB). */
  maxUncompressedBytes?: number;
  /** Also check that every document's key is the key of its `_id` (verify, integrity job). */
  checkIdKeys?: boolean;
  /** How messages name the block; default "block <hash prefix>". */
  label?: string;
}

export interface DecodedBlock {
  codec: Codec;
  /** The decompressed body: the entries' keys and documents are views into it. */
  body: Buffer;
  entries: RunEntry[];
  count: number;
  deletions: number;
  logicalBytes: number;
}

function hexOf(hash: string | Uint8Array): string {
  return typeof hash === "string" ? hash.toLowerCase() : Buffer.from(hash).toString("hex");
}

/** A SliceError from the shared codecs, said about a block instead. */
function fromSliceError(error: SliceError, where: string): BlockError {
  const suffix = `: ${CORRUPT_SLICE_ADVICE}`;
  const what = error.message.endsWith(suffix) ? error.message.slice(0, -suffix.length) : error.message;
  const code = error.code === "SIZE_MISMATCH" ? "SIZE_MISMATCH" : "DECOMPRESS";
  return corruptBlock(
    code,
    where,
    what.replace(/\bslice\b/g, "block").replace(/its header/g, "the block header"),
  );
}

/**
 * Reads stored block bytes and checks everything: the SHA-256 against `expectedHash`, magic,
 * version, codec, that the body decompresses to exactly the declared length, that the entries
 * chain exactly to its end with whole BSON documents, in strictly increasing key order, and that
 * there are as many as the header says. Throws BlockError on the first failure.
 */
export function decodeBlock(stored: Uint8Array, options: DecodeBlockOptions = {}): DecodedBlock {
  const bytes = Buffer.from(stored.buffer, stored.byteOffset, stored.byteLength);
  const expected = options.expectedHash === undefined ? undefined : hexOf(options.expectedHash);
  const actualHash = expected === undefined ? undefined : blockHash(bytes);
  // Only an error message needs the name: a block read without its address is not hashed to name it
  // unless it turns out to be damaged.
  const where = () => options.label ?? `block ${(expected ?? blockHash(bytes)).slice(0, 16)}`;
  if (expected !== undefined && actualHash !== expected) {
    throw corruptBlock(
      "HASH_MISMATCH",
      where(),
      `its ${bytes.length} bytes hash to ${actualHash}, not to the address ${expected} it was stored under`,
    );
  }
  const magicSeen = bytes.subarray(0, BLOCK_MAGIC.length);
  if (!magicSeen.equals(BLOCK_MAGIC.subarray(0, magicSeen.length))) {
    throw corruptBlock(
      "BAD_MAGIC",
      where(),
      `not a Tidemark run block: it starts with ${JSON.stringify(magicSeen.toString("latin1"))} ` +
        `instead of "TDMKBLK"`,
    );
  }
  if (bytes.length < BLOCK_HEADER_SIZE) {
    throw corruptBlock(
      "TRUNCATED",
      where(),
      `the block is ${bytes.length} bytes, shorter than its ${BLOCK_HEADER_SIZE}-byte header`,
    );
  }
  const version = bytes[BLOCK_MAGIC.length];
  if (version !== BLOCK_FORMAT_VERSION) {
    throw new BlockError(
      "UNSUPPORTED_VERSION",
      `${where()}: the block has format version ${version}, but this version of Tidemark reads only ` +
        `version ${BLOCK_FORMAT_VERSION}; ` +
        (version > BLOCK_FORMAT_VERSION ? "upgrade Tidemark to read it" : "the block is corrupt"),
    );
  }
  const codec = CODEC_BY_ID[bytes[8]];
  if (codec === undefined || bytes[9] !== 0) {
    throw corruptBlock(
      "UNKNOWN_CODEC",
      where(),
      `the header names codec id ${bytes[8]} (reserved byte ${bytes[9]}), which is not a known codec`,
    );
  }
  const count = bytes.readUInt32LE(10);
  const length = bytes.readUInt32LE(14);
  const limit = options.maxUncompressedBytes ?? DEFAULT_MAX_BLOCK_BYTES;
  if (length > limit) {
    throw corruptBlock(
      "SIZE_MISMATCH",
      where(),
      `the header declares ${length} uncompressed bytes, more than the limit of ${limit}`,
    );
  }
  let body: Buffer;
  try {
    body = decompress(codec, bytes.subarray(BLOCK_HEADER_SIZE), length);
  } catch (error) {
    if (error instanceof SliceError) throw fromSliceError(error, where());
    throw error;
  }
  const decoded = parseBody(body, where, options.checkIdKeys ?? false);
  if (decoded.entries.length !== count) {
    throw corruptBlock(
      "COUNT_MISMATCH",
      where(),
      `the body holds ${decoded.entries.length} entries but the header declares ${count}`,
    );
  }
  return { codec, body, count, ...decoded };
}

function parseBody(
  body: Buffer,
  where: () => string,
  checkIdKeys: boolean,
): Pick<DecodedBlock, "entries" | "deletions" | "logicalBytes"> {
  const entries: RunEntry[] = [];
  let deletions = 0;
  let logicalBytes = 0;
  let pos = 0;
  let previous: Buffer | undefined;
  const malformed = (what: string) =>
    corruptBlock("MALFORMED_ENTRY", where(), `entry ${entries.length} at body offset ${pos}: ${what}`);
  while (pos < body.length) {
    const kind = body[pos++];
    if (kind !== KIND_DOCUMENT && kind !== KIND_DELETED) throw malformed(`unknown entry kind ${kind}`);
    let keyLength = 0;
    for (let shift = 0; ; shift++) {
      if (shift === 5) throw malformed("the key length is not a valid varint");
      if (pos >= body.length) throw malformed("the body ends inside the key length");
      const b = body[pos++];
      keyLength += (b & 0x7f) * 2 ** (7 * shift);
      if ((b & 0x80) === 0) {
        // The writer encodes lengths minimally, so a block's entries have exactly one encoding.
        if (b === 0 && shift > 0) throw malformed("the key length is not minimally encoded");
        break;
      }
    }
    if (keyLength === 0 || keyLength > body.length - pos) {
      throw malformed(`key length ${keyLength}, but ${body.length - pos} bytes remain`);
    }
    const key = body.subarray(pos, pos + keyLength);
    pos += keyLength;
    if (previous !== undefined && Buffer.compare(previous, key) >= 0) {
      throw corruptBlock(
        "KEY_ORDER",
        where(),
        `entry ${entries.length}'s key is not greater than the one before it (keys must strictly increase)`,
      );
    }
    previous = key;
    if (kind === KIND_DELETED) {
      entries.push({ key, deleted: true });
      deletions++;
      continue;
    }
    const left = body.length - pos;
    const size = left >= 4 ? body.readInt32LE(pos) : -1;
    if (size < MIN_BSON_SIZE || size > left || body[pos + size - 1] !== 0) {
      throw corruptBlock(
        "MALFORMED_BSON",
        where(),
        `entry ${entries.length}'s document at body offset ${pos} has BSON length ${size}, but ` +
          `${left} bytes remain` +
          (size >= MIN_BSON_SIZE && size <= left ? " and it does not end with the terminator byte" : ""),
      );
    }
    const doc = body.subarray(pos, pos + size);
    pos += size;
    if (checkIdKeys) checkIdKey(key, doc, entries.length, where);
    entries.push({ key, doc });
    logicalBytes += size;
  }
  return { entries, deletions, logicalBytes };
}

function checkIdKey(key: Buffer, doc: Buffer, index: number, where: () => string): void {
  let idKey: Buffer;
  try {
    idKey = encodeIdKeyFromDocument(doc);
  } catch (error) {
    throw corruptBlock(
      "MALFORMED_BSON",
      where(),
      `entry ${index}'s document cannot be read (${error instanceof Error ? error.message : String(error)})`,
    );
  }
  if (!idKey.equals(key)) {
    throw corruptBlock("KEY_MISMATCH", where(), `entry ${index}'s key is not the key of its document's _id`);
  }
}
