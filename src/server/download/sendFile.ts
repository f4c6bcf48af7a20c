import { open, type FileHandle } from "node:fs/promises";
import { Readable } from "node:stream";
import type { FastifyReply, FastifyRequest } from "fastify";
import { HttpError } from "../errors.js";
import { attachmentDisposition } from "./contentDisposition.js";
import { parseRange, satisfiedContentRange, unsatisfiedContentRange, type RangeDecision } from "./range.js";
import { fileEtag, ifRangeMatches, strongEtag } from "./validators.js";

/*
 * Streams a file from disk as a download, for fastify handlers: `return sendFile(request, reply,
 * {...})`. The file is read as a stream between the chosen offsets, never whole into memory, and
 * the stream is closed when the client goes away (fastify destroys it).
 *
 * Answers: 200 with the whole file; 206 with one byte range (see range.ts for which Range headers
 * get one); 416 with `Content-Range: bytes * /size` and a JSON `{error, code, hint}` body. Only
 * GET honours Range (RFC 9110 §14.2); HEAD gets the headers of the 200 and no body. If-Range is
 * honoured (validators.ts); other conditional headers (If-None-Match, If-Modified-Since...) are
 * not, so every GET without Range is a 200.
 *
 * The size, ETag and Last-Modified come from the open file descriptor, so they describe the bytes
 * streamed even if the path is renamed over meanwhile.
 */

export interface SendFileOptions {
  /** The file on disk. */
  path: string;
  /** The name the browser saves it under (Content-Disposition: attachment). */
  filename: string;
  /** Default application/octet-stream. */
  contentType?: string;
  /**
   * A strong validator's opaque value without quotes (e.g. the file's SHA-256 in hex), for files
   * that may be rewritten in place; default `"<size>-<mtime ns>"` in hex.
   */
  etag?: string;
  /**
   * Default "private, no-store": archives hold a database's data, reached through a link that
   * expires, so no shared cache may keep them. Resuming does not need a cache (If-Range).
   */
  cacheControl?: string;
}

/** Sends the file (or one range of it) as the reply; see the module comment for the answers. */
export async function sendFile(
  request: FastifyRequest,
  reply: FastifyReply,
  options: SendFileOptions,
): Promise<FastifyReply> {
  const handle = await openForDownload(options);
  let streaming = false;
  try {
    const stat = await handle.stat({ bigint: true });
    if (!stat.isFile()) throw new Error(`cannot send ${options.path} as a download: not a regular file`);
    const size = Number(stat.size);
    const etag = options.etag === undefined ? fileEtag(stat.size, stat.mtimeNs) : strongEtag(options.etag);
    const lastModified = new Date(Number(stat.mtimeMs));
    const decision = chooseRange(request, size, etag, lastModified);

    reply
      .header("accept-ranges", "bytes")
      .header("etag", etag)
      .header("last-modified", lastModified.toUTCString())
      .header("cache-control", options.cacheControl ?? "private, no-store");
    if (decision.status === 416) {
      const error = new HttpError(
        416,
        "RANGE_NOT_SATISFIABLE",
        `the requested range starts at or past the end of ${options.filename} (${size} bytes)`,
        "ask for a range within the file, or download it whole without a Range header",
      );
      return reply.code(416).header("content-range", unsatisfiedContentRange(size)).send(error.toBody());
    }

    const [start, end] = decision.status === 206 ? [decision.start, decision.end] : [0, size - 1];
    const length = end - start + 1;
    reply
      .code(decision.status)
      .header("content-type", options.contentType ?? "application/octet-stream")
      .header("content-disposition", attachmentDisposition(options.filename))
      .header("x-content-type-options", "nosniff")
      .header("content-length", String(length));
    if (decision.status === 206) reply.header("content-range", satisfiedContentRange(start, end, size));
    // An empty stream, not an empty body: fastify's HEAD route would set Content-Length to 0 for
    // an empty body, and to the file's bytes it would read and discard for the file stream.
    if (request.method === "HEAD" || length === 0) return reply.send(Readable.from([]));
    const stream = handle.createReadStream({ start, end, highWaterMark: 256 * 1024 });
    streaming = true; // the stream closes the handle when it ends or is destroyed
    return reply.send(stream);
  } finally {
    if (!streaming) await handle.close();
  }
}

/** The Range decision for this request: Range only on GET, and only if If-Range (if any) matches. */
function chooseRange(
  request: FastifyRequest,
  size: number,
  etag: string,
  lastModified: Date,
): RangeDecision | { status: 200 } {
  const range = request.headers.range;
  if (request.method !== "GET" || range === undefined) return { status: 200 };
  const ifRange = request.headers["if-range"];
  if (typeof ifRange === "string" && !ifRangeMatches(ifRange, etag, lastModified, new Date())) {
    return { status: 200 };
  }
  return parseRange(range, size);
}

async function openForDownload(options: SendFileOptions): Promise<FileHandle> {
  try {
    return await open(options.path, "r");
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ENOENT") {
      throw new HttpError(
        404,
        "NOT_FOUND",
        `${options.filename} is no longer on the server`,
        "it may have been removed since the link was made; ask for it again",
      );
    }
    throw new Error(`cannot open ${options.path} for a download (${code ?? String(error)})`, {
      cause: error,
    });
  }
}
