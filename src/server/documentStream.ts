/**
 * Sends documents as concatenated raw BSON (a snapshot's collection; later a point-in-time image),
 * ending with the error trailer of src/snapshot/streamTrailer.ts when reading them fails part way:
 * the 200 and the first documents are gone by then, and the trailer is how the client learns
 * which block of which namespace could not be read.
 */
import type { FastifyReply } from "fastify";
import { encodeTrailer, type StreamFailure } from "../snapshot/streamTrailer.js";
import { PooledWriter } from "./pooledWriter.js";

export interface DocumentStreamContext {
  /** What is being sent, for the server's log: "snapshot 3f2a…: shop.orders". */
  label: string;
  log: (line: string) => void;
  /** The trailer's fields for an error the documents threw (see src/snapshot/readFailure.ts). */
  failureOf: (error: unknown) => StreamFailure;
}

/**
 * Answers 200 with the documents of `batches` (a step per batch, not per document), taking the
 * response over from Fastify (its stream handling would end a failed stream without a word). On a
 * read error: the documents batched so far, the trailer, then the connection is destroyed so that
 * the response never looks complete. A client that goes away stops the reading.
 */
export async function sendDocuments(
  reply: FastifyReply,
  batches: AsyncIterable<readonly Uint8Array[]>,
  context: DocumentStreamContext,
): Promise<void> {
  reply.hijack();
  const response = reply.raw;
  response.writeHead(200, { "content-type": "application/octet-stream" });
  // Documents are copied into a few 256 KiB buffers: fewer, larger HTTP chunks, and no new
  // memory per chunk (pooledWriter.ts says why that matters).
  const writer = new PooledWriter(response);
  try {
    for await (const documents of batches) if (!(await writer.add(documents))) return;
    if (await writer.flush()) response.end();
  } catch (error) {
    const failure = context.failureOf(error);
    context.log(
      `${context.label}: reading for a download failed (${failure.code}` +
        `${failure.block === null ? "" : `, block ${failure.block}`}): ${failure.message}`,
    );
    if (await writer.flush()) {
      // Destroyed once the trailer is handed to the socket, so a close cannot drop it.
      await new Promise<void>((resolve) => response.write(encodeTrailer(failure), () => resolve()));
    }
    response.destroy();
  }
}
