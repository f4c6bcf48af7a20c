import { pipeline, Readable } from "node:stream";
import { createGunzip, createGzip } from "node:zlib";

/**
 * Stream pieces of the file system snapshot store: BSON framing, gzip, and the framing of sealed
 * (encrypted) files. Every piece holds at most one document or one frame at a time, so memory is
 * bounded by the largest document, never by the collection.
 */

/** mongod's largest stored document (BSONObjMaxInternalSize: 16 MiB + 16 KiB). */
export const MAX_DOCUMENT_BYTES = 16 * 1024 * 1024 + 16 * 1024;

/** Documents are handed to gzip in batches of about this many bytes. */
const BATCH_BYTES = 256 * 1024;

/** Why a document's framing is wrong, or undefined if it is a well-framed BSON document. */
export function documentFramingProblem(doc: Uint8Array): string | undefined {
  if (doc.length < 5) return `it is ${doc.length} bytes long, shorter than the smallest BSON document (5)`;
  if (doc.length > MAX_DOCUMENT_BYTES)
    return `it is ${doc.length} bytes long, over MongoDB's limit of ${MAX_DOCUMENT_BYTES}`;
  const declared = doc[0] | (doc[1] << 8) | (doc[2] << 16) | (doc[3] << 24);
  if (declared !== doc.length) return `its length prefix says ${declared} bytes but it has ${doc.length}`;
  if (doc[doc.length - 1] !== 0) return "it does not end with a NUL byte";
  return undefined;
}

/** Concatenates small buffers into batches of about 256 KiB (large ones pass through). */
export async function* batched(source: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
  let parts: Buffer[] = [];
  let size = 0;
  for await (const part of source) {
    if (part.length >= BATCH_BYTES && size === 0) {
      yield part;
      continue;
    }
    parts.push(part);
    size += part.length;
    if (size >= BATCH_BYTES) {
      yield parts.length === 1 ? parts[0] : Buffer.concat(parts, size);
      parts = [];
      size = 0;
    }
  }
  if (size > 0) yield parts.length === 1 ? parts[0] : Buffer.concat(parts, size);
}

/** The gzip of everything `source` yields, as a stream; an error in `source` ends it with that error. */
export function gzipped(source: AsyncIterable<Buffer>): Readable {
  // Level 1: a full copy is written at every snapshot, so speed matters more than the last 10% of size.
  return pipeline(Readable.from(source), createGzip({ level: 1 }), () => {});
}

/** The gunzipped bytes of `source` (several gzip members are read one after another, as gzip does). */
export function gunzipped(source: AsyncIterable<Buffer>): Readable {
  return pipeline(Readable.from(source), createGunzip(), () => {});
}

/** Raised by `splitDocuments` for bytes that are not a sequence of BSON documents. */
export class FramingError extends Error {
  override readonly name = "FramingError";
}

function readLength(chunks: Buffer[]): number {
  const head = chunks[0].length >= 4 ? chunks[0] : Buffer.concat(chunks);
  return head.readInt32LE(0);
}

function checkLength(length: number, offset: number): void {
  if (length < 5 || length > MAX_DOCUMENT_BYTES) {
    throw new FramingError(`bad document length ${length} at byte ${offset} of the BSON stream`);
  }
}

/**
 * Cuts concatenated BSON documents into documents as their bytes arrive, chunk by chunk. Each
 * document is a view of a chunk (only one cut across chunks is copied, into a buffer of its own).
 * Throws FramingError for a bad length, a document not ending with NUL, or (at `end`) a cut-off
 * last document.
 */
export class DocumentSplitter {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  /** Length of the next document, 0 while unknown. */
  private need = 0;
  /** Offset of pending[0] in the stream. */
  private position = 0;

  /** The documents completed by `chunk`. */
  push(chunk: Buffer): Buffer[] {
    const out: Buffer[] = [];
    if (chunk.length === 0) return out;
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    if (this.need === 0) {
      if (this.pendingBytes < 4) return out;
      this.need = readLength(this.pending);
      checkLength(this.need, this.position);
    }
    if (this.pendingBytes < this.need) return out;
    let buf = this.pending[0];
    if (this.pending.length > 1) {
      // A document cut by chunk ends: copy just it (it ends in this chunk), then go on in this
      // chunk's rest, so no other byte is copied.
      const doc = Buffer.concat(this.pending, this.need);
      documentEnds(doc, this.position);
      out.push(doc);
      buf = chunk.subarray(chunk.length - (this.pendingBytes - this.need));
      this.position += this.need;
      this.need = 0;
      if (buf.length >= 4) {
        this.need = buf.readInt32LE(0);
        checkLength(this.need, this.position);
      }
      if (this.need === 0 || buf.length < this.need) {
        this.pending = buf.length > 0 ? [buf] : [];
        this.pendingBytes = buf.length;
        return out;
      }
    }
    // `buf` starts with a whole document of `need` bytes.
    let offset = 0;
    while (true) {
      const doc = buf.subarray(offset, offset + this.need);
      documentEnds(doc, this.position + offset);
      out.push(doc);
      offset += this.need;
      this.need = 0;
      if (buf.length - offset < 4) break;
      this.need = buf.readInt32LE(offset);
      checkLength(this.need, this.position + offset);
      if (buf.length - offset < this.need) break;
    }
    this.position += offset;
    this.pending = offset < buf.length ? [buf.subarray(offset)] : [];
    this.pendingBytes = buf.length - offset;
    return out;
  }

  /** At the end of the stream: a FramingError if it stopped inside a document. */
  end(): void {
    if (this.pendingBytes > 0) {
      throw new FramingError(
        `the BSON stream ends inside a document: ${this.pendingBytes} bytes left at byte ${this.position}` +
          (this.need > 0 ? ` of a ${this.need}-byte document` : ""),
      );
    }
  }
}

function documentEnds(doc: Buffer, at: number): void {
  if (doc[doc.length - 1] !== 0)
    throw new FramingError(`the document at byte ${at} of the BSON stream does not end with NUL`);
}

/** The documents of concatenated BSON (a `.bson` file's content), a chunk's worth at a time. */
export async function* splitDocumentBatches(source: AsyncIterable<Buffer>): AsyncGenerator<Buffer[]> {
  const splitter = new DocumentSplitter();
  for await (const chunk of source) {
    const documents = splitter.push(chunk);
    if (documents.length > 0) yield documents;
  }
  splitter.end();
}

/** The documents of concatenated BSON (a `.bson` file's content) one by one (see DocumentSplitter). */
export async function* splitDocuments(source: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
  for await (const documents of splitDocumentBatches(source))
    for (const document of documents) yield document;
}

/** First bytes of a sealed file: then frames of (u32 big-endian length, sealed bytes). */
export const SEALED_MAGIC = Buffer.from("TMSEAL01", "latin1");

/** Largest sealed frame a reader accepts (the seal transform may add some bytes to a chunk). */
const MAX_SEALED_FRAME = 256 * 1024 * 1024;

/**
 * Seals `source` in chunks of `frameBytes` plaintext bytes: `seal` is called once per chunk and
 * the file is `TMSEAL01` followed by each sealed chunk with its length. Chunks keep memory bounded
 * for any file size; the whole file's SHA-256 in the manifest keeps the frames in order.
 */
export async function* sealFrames(
  source: AsyncIterable<Buffer>,
  seal: (plain: Buffer) => Buffer,
  frameBytes: number,
): AsyncGenerator<Buffer> {
  yield SEALED_MAGIC;
  let parts: Buffer[] = [];
  let size = 0;
  const emit = (plain: Buffer): Buffer => {
    const sealed: unknown = seal(plain);
    if (!(sealed instanceof Uint8Array)) throw new TypeError("seal did not return bytes");
    if (sealed.length > MAX_SEALED_FRAME)
      throw new RangeError(`seal returned ${sealed.length} bytes for one frame`);
    const header = Buffer.allocUnsafe(4);
    header.writeUInt32BE(sealed.length, 0);
    return Buffer.concat([header, sealed]);
  };
  for await (const chunk of source) {
    let rest = chunk;
    while (rest.length > 0) {
      const take = Math.min(rest.length, frameBytes - size);
      parts.push(rest.subarray(0, take));
      size += take;
      rest = rest.subarray(take);
      if (size === frameBytes) {
        yield emit(Buffer.concat(parts, size));
        parts = [];
        size = 0;
      }
    }
  }
  if (size > 0) yield emit(Buffer.concat(parts, size));
}

/** Reads what `sealFrames` wrote, calling `open` once per frame. Throws FramingError on bad framing. */
export async function* openFrames(
  source: AsyncIterable<Buffer>,
  open: (sealed: Buffer) => Buffer,
): AsyncGenerator<Buffer> {
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  let magicSeen = false;
  let need = 0; // sealed length of the next frame, 0 while unknown
  const take = (n: number): Buffer => {
    const all = pending.length === 1 ? pending[0] : Buffer.concat(pending, pendingBytes);
    const out = all.subarray(0, n);
    pending = all.length > n ? [all.subarray(n)] : [];
    pendingBytes = all.length - n;
    return out;
  };
  for await (const chunk of source) {
    pending.push(chunk);
    pendingBytes += chunk.length;
    while (true) {
      if (!magicSeen) {
        if (pendingBytes < SEALED_MAGIC.length) break;
        if (!take(SEALED_MAGIC.length).equals(SEALED_MAGIC))
          throw new FramingError("the file does not start with TMSEAL01");
        magicSeen = true;
      }
      if (need === 0) {
        if (pendingBytes < 4) break;
        need = take(4).readUInt32BE(0);
        if (need === 0 || need > MAX_SEALED_FRAME) throw new FramingError(`bad sealed frame length ${need}`);
      }
      if (pendingBytes < need) break;
      const plain = open(Buffer.from(take(need)));
      need = 0;
      yield Buffer.isBuffer(plain) ? plain : Buffer.from(plain);
    }
  }
  if (!magicSeen || need > 0 || pendingBytes > 0) throw new FramingError("the sealed file is cut off");
}
