/**
 * splitDocuments (src/snapshot/fsStore/streams.ts) cuts a byte stream into BSON documents however
 * the stream's chunks fall: documents whole in a chunk, cut across two or many, lengths cut in
 * half; and it refuses what is not a sequence of documents, naming the byte.
 */
import { serialize } from "bson";
import { describe, expect, it } from "vitest";
import { FramingError, splitDocuments } from "../../src/snapshot/fsStore/streams.js";
import { Random } from "../oplog/differential/random.js";

async function* chunked(bytes: Buffer, sizes: () => number): AsyncGenerator<Buffer> {
  for (let at = 0; at < bytes.length;) {
    const size = Math.min(bytes.length - at, sizes());
    yield bytes.subarray(at, at + size);
    at += size;
  }
}

async function split(bytes: Buffer, sizes: () => number): Promise<Buffer[]> {
  const out: Buffer[] = [];
  for await (const doc of splitDocuments(chunked(bytes, sizes))) out.push(Buffer.from(doc));
  return out;
}

const rng = new Random(7);
const documents = Array.from({ length: 200 }, (_, i) =>
  Buffer.from(serialize({ _id: i, text: "x".repeat(rng.int(300)), n: i * 1.5 })),
);
const stream = Buffer.concat(documents);

describe("splitDocuments", () => {
  it("gives back every document, whatever the chunk sizes", async () => {
    for (const sizes of [
      () => 1,
      () => 3,
      () => 4,
      () => 5,
      () => 1 + rng.int(40),
      () => 1 + rng.int(1000),
      () => 65_536,
      () => stream.length,
    ]) {
      const out = await split(stream, sizes);
      expect(out.length).toBe(documents.length);
      out.forEach((doc, i) => expect(doc.equals(documents[i]), `document ${i}`).toBe(true));
    }
  });

  it("names the byte of a bad length, a missing NUL, or a cut-off end, at any chunk size", async () => {
    const badLength = Buffer.from(stream);
    const third = documents[0].length + documents[1].length;
    badLength.writeInt32LE(3, third);
    const noNul = Buffer.from(stream);
    noNul[third + documents[2].length - 1] = 1;
    const cut = stream.subarray(0, stream.length - 10);
    for (const sizes of [() => 1, () => 7, () => 1 + rng.int(500), () => stream.length]) {
      await expect(split(badLength, sizes)).rejects.toThrow(
        new FramingError(`bad document length 3 at byte ${third} of the BSON stream`),
      );
      await expect(split(noNul, sizes)).rejects.toThrow(
        `the document at byte ${third} of the BSON stream does not end with NUL`,
      );
      await expect(split(cut, sizes)).rejects.toThrow(/the BSON stream ends inside a document/);
    }
  });
});
