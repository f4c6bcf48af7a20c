/**
 * The error trailer of a document stream (src/snapshot/streamTrailer.ts): documents before it come
 * out whole wherever the chunks are cut (the marker split across chunks included), the trailer
 * becomes a StreamFailureError, the connection closing after it is expected, and everything else
 * (a stream cut without a trailer, bad framing, a damaged trailer) stays the error it was.
 */
import { serialize } from "bson";
import { describe, expect, it } from "vitest";
import { FramingError } from "../../src/snapshot/fsStore/streams.js";
import {
  decodeTrailer,
  documentsUntilTrailer,
  encodeTrailer,
  StreamFailureError,
  TRAILER_MARKER,
  type StreamFailure,
} from "../../src/snapshot/streamTrailer.js";

const docs = [
  Buffer.from(serialize({ _id: 1, name: "a" })),
  Buffer.from(serialize({ _id: 2, note: "x".repeat(300) })),
  Buffer.from(serialize({ _id: 3 })),
];
const failure: StreamFailure = {
  code: "CORRUPT_BLOCK",
  message: "block store sqlite:///x, block abc: the stored block is damaged",
  namespace: "shop.orders",
  block: "ab".repeat(32),
};

/** `bytes` in chunks cut at `cuts`; then `end` (an error: the connection closing). */
async function* chunked(bytes: Buffer, cuts: number[], end?: Error): AsyncGenerator<Buffer> {
  let from = 0;
  for (const cut of [...cuts, bytes.length]) {
    if (cut > from) yield Buffer.from(bytes.subarray(from, cut));
    from = Math.max(from, cut);
  }
  if (end) throw end;
}

async function read(source: AsyncIterable<Buffer>): Promise<{ got: Buffer[]; error: unknown }> {
  const got: Buffer[] = [];
  try {
    for await (const doc of documentsUntilTrailer(source)) got.push(Buffer.from(doc));
    return { got, error: undefined };
  } catch (error) {
    return { got, error };
  }
}

describe("stream trailer", () => {
  it("encodes four zero bytes then the failure as JSON, and decodes it back", () => {
    const bytes = encodeTrailer(failure);
    expect(bytes.subarray(0, 4)).toEqual(TRAILER_MARKER);
    expect(JSON.parse(bytes.subarray(4).toString("utf8"))).toEqual(failure);
    expect(decodeTrailer(bytes.subarray(4))).toEqual(failure);
    expect(decodeTrailer(encodeTrailer({ ...failure, block: null }).subarray(4)).block).toBeNull();
  });

  it("yields every document before the trailer, then throws its failure, at every chunk boundary", async () => {
    const stream = Buffer.concat([...docs, encodeTrailer(failure)]);
    const closed = new Error("terminated");
    for (let cut = 1; cut < stream.length; cut++) {
      for (const cuts of [[cut], [cut, cut + 1, cut + 2]]) {
        const { got, error } = await read(chunked(stream, cuts, closed));
        expect(got, `cut at ${cuts.join(",")}`).toEqual(docs);
        expect(error, `cut at ${cuts.join(",")}`).toBeInstanceOf(StreamFailureError);
        expect((error as StreamFailureError).failure).toEqual(failure);
      }
    }
    // One byte at a time.
    const { got, error } = await read(
      chunked(
        stream,
        Array.from({ length: stream.length }, (_, i) => i),
        closed,
      ),
    );
    expect(got).toEqual(docs);
    expect((error as StreamFailureError).failure).toEqual(failure);
  });

  it("takes a trailer as the first bytes (the first read failed) and one ended cleanly", async () => {
    const { got, error } = await read(chunked(encodeTrailer(failure), [2]));
    expect(got).toEqual([]);
    expect((error as StreamFailureError).message).toMatch(/^reading shop\.orders failed at block abab/);
  });

  it("leaves a stream without a trailer as it was: whole, cut, or badly framed", async () => {
    const whole = Buffer.concat(docs);
    expect(await read(chunked(whole, [7, 30]))).toEqual({ got: docs, error: undefined });

    // The connection drops (no trailer): the source's own error, after the whole documents.
    const dropped = new Error("other side closed");
    const cut = await read(chunked(whole.subarray(0, docs[0].length + 10), [5], dropped));
    expect(cut.got).toEqual([docs[0]]);
    expect(cut.error).toBe(dropped);

    // A stream that ends inside a document, even inside its length.
    for (const end of [docs[0].length + 2, docs[0].length + 10]) {
      const ended = await read(chunked(whole.subarray(0, end), [1]));
      expect(ended.got).toEqual([docs[0]]);
      expect(ended.error).toBeInstanceOf(FramingError);
      expect((ended.error as Error).message).toMatch(/ends inside a document/);
    }

    // A length no document has (other than 0) is splitDocuments' framing error, as before.
    const bad = Buffer.concat([docs[0], Buffer.from([3, 0, 0, 0]), docs[1]]);
    const badRead = await read(chunked(bad, [docs[0].length + 1]));
    expect(badRead.got).toEqual([docs[0]]);
    expect((badRead.error as Error).message).toMatch(/bad document length 3/);
  });

  it("a trailer cut short or of an unknown shape is a framing error saying so", async () => {
    const trailer = encodeTrailer(failure);
    const cut = await read(
      chunked(Buffer.concat([docs[0], trailer.subarray(0, 20)]), [], new Error("closed")),
    );
    expect(cut.got).toEqual([docs[0]]);
    expect(cut.error).toBeInstanceOf(FramingError);
    expect((cut.error as Error).message).toMatch(/error report that is cut off or not JSON/);

    const odd = Buffer.concat([TRAILER_MARKER, Buffer.from(JSON.stringify({ code: 1 }))]);
    const oddRead = await read(chunked(odd, []));
    expect((oddRead.error as Error).message).toMatch(/unknown shape/);
  });

  it("keeps at most 64 KiB of what follows the marker", async () => {
    const huge = Buffer.concat([TRAILER_MARKER, Buffer.alloc(1024 * 1024, 0x20)]);
    const { error } = await read(chunked(huge, [1000, 70_000]));
    expect((error as Error).message).toMatch(/\(65536 bytes after the marker\)/);
  });
});
