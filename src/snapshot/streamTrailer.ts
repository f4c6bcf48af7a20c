/**
 * The error trailer of a document stream: how the server says, inside a response already under
 * way, that reading a collection's documents failed and why.
 *
 * A download of documents is concatenated raw BSON, each document starting with its int32 length.
 * No BSON document is 0 bytes long (the smallest is 5), so four zero bytes where the next length
 * would be cannot be a document: they mark the trailer. After them comes one UTF-8 JSON object,
 * `{"code", "message", "namespace", "block"}` (`block`: the damaged block's hash or file, null if
 * not known), then the connection is closed without ending the response, so a plain HTTP client
 * (curl) sees an incomplete transfer rather than a success. The status and headers went out with
 * the first bytes; this is the only way left to name the failure to the client.
 */
import { z } from "zod";
import { FramingError, splitDocumentBatches } from "./fsStore/streams.js";

/** The four bytes that stand where a document's length would be and start the trailer. */
export const TRAILER_MARKER = Buffer.alloc(4);

/**
 * A trailer is a short JSON object; more than this after the marker is not one, and is not kept
 * (memory stays bounded whatever the other end sends).
 */
const MAX_TRAILER_BYTES = 64 * 1024;

/** The code of a failure no reader's error code describes (an encrypted snapshot without its key, a bug). */
export const READ_FAILED = "READ_FAILED";

/** Why a document stream ended early, as the trailer carries it. */
export const StreamFailure = z.object({
  /** The reader's error code (a block, block store or file store code: HASH_MISMATCH, CORRUPT_BLOCK...). */
  code: z.string(),
  message: z.string(),
  /** The collection whose documents were being read. */
  namespace: z.string(),
  /** The damaged block's hash (block stores) or data file (file system store); null if unknown. */
  block: z.string().nullable(),
});
export type StreamFailure = z.infer<typeof StreamFailure>;

/** A document stream that ended with a trailer: the sender could not read on, for `failure`'s reason. */
export class StreamFailureError extends Error {
  override readonly name = "StreamFailureError";

  constructor(readonly failure: StreamFailure) {
    super(
      `reading ${failure.namespace} failed${failure.block === null ? "" : ` at block ${failure.block}`}: ` +
        `${failure.message} (${failure.code})`,
    );
  }
}

/** The bytes to send after the last whole document: the marker, then the failure as JSON. */
export function encodeTrailer(failure: StreamFailure): Buffer {
  return Buffer.concat([TRAILER_MARKER, Buffer.from(JSON.stringify(failure), "utf8")]);
}

/** The failure a trailer's JSON (the bytes after the marker) carries; FramingError if it is not one. */
export function decodeTrailer(json: Buffer): StreamFailure {
  let value: unknown;
  try {
    value = JSON.parse(json.toString("utf8"));
  } catch {
    throw new FramingError(
      `the stream ended with an error report that is cut off or not JSON (${json.length} bytes after the marker)`,
    );
  }
  const parsed = StreamFailure.safeParse(value);
  if (!parsed.success)
    throw new FramingError(
      `the stream ended with an error report of an unknown shape: ${json.toString("utf8")}`,
    );
  return parsed.data;
}

/**
 * The documents of a stream that may end with a trailer: throws StreamFailureError when it does
 * (after yielding every document before it). Any other problem is left as splitDocuments and the
 * source report it: a source error before the trailer (a dropped connection) is rethrown as is.
 */
export async function* documentsUntilTrailer(source: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
  for await (const documents of documentBatchesUntilTrailer(source))
    for (const document of documents) yield document;
}

/** The same, a chunk's worth of documents at a time (for bulk reads: a step per chunk, not per document). */
export async function* documentBatchesUntilTrailer(source: AsyncIterable<Buffer>): AsyncGenerator<Buffer[]> {
  const trailer: Trailer = { parts: undefined, bytes: 0 };
  yield* splitDocumentBatches(bytesBeforeTrailer(source, trailer));
  if (trailer.parts) throw new StreamFailureError(decodeTrailer(Buffer.concat(trailer.parts)));
}

interface Trailer {
  /** The bytes after the marker once it was seen (at most MAX_TRAILER_BYTES of them). */
  parts: Buffer[] | undefined;
  bytes: number;
}

/**
 * Passes on the stream's bytes up to the marker, following the documents' lengths to know where
 * each next length stands, and collects what follows the marker into `trailer`. The first bytes
 * of a length split across chunks are held back until it is known not to be the marker, so the
 * documents' reader never sees a byte of it.
 */
async function* bytesBeforeTrailer(source: AsyncIterable<Buffer>, trailer: Trailer): AsyncGenerator<Buffer> {
  let left = 0; // bytes of the current document not yet passed
  let held: Buffer | undefined; // the start of the next length (under 4 bytes)
  try {
    for await (const chunk of source) {
      if (trailer.parts) {
        keep(trailer, chunk);
        continue;
      }
      const data = held ? Buffer.concat([held, chunk]) : chunk;
      held = undefined;
      let pos = 0;
      let end = data.length; // where the bytes to pass on end
      while (pos < data.length) {
        if (left > 0) {
          const step = Math.min(left, data.length - pos);
          pos += step;
          left -= step;
          continue;
        }
        if (data.length - pos < 4) {
          held = Buffer.from(data.subarray(pos));
          end = pos;
          break;
        }
        const length = data.readInt32LE(pos);
        if (length === 0) {
          trailer.parts = [];
          keep(trailer, data.subarray(pos + 4));
          end = pos;
          break;
        }
        // A length no document can have: splitDocuments says so; nothing after it is read as lengths.
        left = length < 5 ? Infinity : length;
      }
      if (end > 0) yield data.subarray(0, end);
    }
  } catch (error) {
    // After its trailer the sender closes the connection without ending the response: expected.
    if (!trailer.parts) throw error;
  }
  // A length cut off by the end of the stream: splitDocuments reports the stream ends inside a document.
  if (held) yield held;
}

function keep(trailer: Trailer, bytes: Buffer): void {
  const room = MAX_TRAILER_BYTES - trailer.bytes;
  if (room <= 0 || bytes.length === 0) return;
  const part = Buffer.from(bytes.subarray(0, room));
  trailer.parts!.push(part);
  trailer.bytes += part.length;
}
