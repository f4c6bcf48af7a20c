import { randomBytes } from "node:crypto";
import { Binary, deserialize, Long, serialize, Timestamp, type Document } from "bson";
import { describe, expect, it } from "vitest";
import { CODECS, type Codec } from "../../src/slice/codecs.js";
import { decodeSlice, readSliceHeader } from "../../src/slice/format.js";
import { SliceBuilder, type SliceBuilderOptions } from "../../src/slice/sliceBuilder.js";
import { fixtureDocuments, OPLOG_50 } from "./fixtures.js";

const TARGET = 16 * 1024;

/** bson's serialize returns a Uint8Array; the tests compare with Buffer.equals. */
function bson(doc: Document): Buffer {
  return Buffer.from(serialize(doc));
}

function compressible(i: number): Buffer {
  return bson({
    _id: i,
    customer: `customer-${i % 50}`,
    status: i % 3 === 0 ? "shipped" : "pending",
    notes: "lorem ipsum dolor sit amet, ".repeat(10 + (i % 7)),
    items: [{ sku: `sku-${i % 13}`, qty: i % 5 }],
  });
}

function incompressible(i: number, size = 600): Buffer {
  return bson({ _id: i, payload: new Binary(randomBytes(size)) });
}

interface Run {
  slices: Buffer[];
  maxBuffered: number;
  builder: SliceBuilder;
}

/** Feeds every document, checking the buffer cap after each call, then flushes. */
function run(documents: Buffer[], options: Partial<SliceBuilderOptions> = {}): Run {
  const builder = new SliceBuilder({
    kind: "documents",
    deployment: "dep-1",
    stream: "documents/shop.orders",
    namespace: "shop.orders",
    targetBytes: TARGET,
    ...options,
  });
  const slices: Buffer[] = [];
  let maxBuffered = 0;
  for (const doc of documents) {
    slices.push(...builder.add(doc));
    maxBuffered = Math.max(maxBuffered, builder.bufferedBytes);
    expect(builder.bufferedBytes).toBeLessThanOrEqual(builder.maxBufferedBytes);
    expect(builder.retainedBytes).toBeLessThanOrEqual(builder.maxBufferedBytes);
  }
  slices.push(...builder.flush());
  expect(builder.bufferedBytes).toBe(0);
  expect(builder.retainedBytes).toBe(0);
  expect(builder.flush()).toEqual([]);
  return { slices, maxBuffered, builder };
}

/** Every document back, in order, exactly once; sequences contiguous from `first`. */
function expectComplete(slices: Buffer[], documents: Buffer[], first = 0): void {
  const back: Buffer[] = [];
  slices.forEach((slice, i) => {
    const decoded = decodeSlice(slice);
    expect(decoded.header.sequence).toBe(first + i);
    back.push(...decoded.documents());
  });
  expect(back.length).toBe(documents.length);
  expect(Buffer.concat(back).equals(Buffer.concat(documents))).toBe(true);
}

function expectAllWithinTarget(slices: Buffer[], target = TARGET): void {
  for (const slice of slices) expect(slice.length).toBeLessThanOrEqual(target);
}

describe("SliceBuilder", () => {
  for (const codec of CODECS) {
    it(`${codec}: compressible documents fill slices up to the target`, () => {
      const documents = Array.from({ length: 3000 }, (_, i) => compressible(i));
      const { slices, builder } = run(documents, { codec });
      expectAllWithinTarget(slices);
      expectComplete(slices, documents);
      if (codec !== "none") {
        expect(builder.estimatedRatio).toBeLessThan(0.5);
        // Learning the ratio packs slices well beyond the uncompressed target.
        const full = slices.slice(0, -1).map((s) => readSliceHeader(s).uncompressedSize);
        expect(Math.max(...full)).toBeGreaterThan(TARGET * 1.5);
      }
    });

    it(`${codec}: incompressible documents stay within the target`, () => {
      const documents = Array.from({ length: 400 }, (_, i) => incompressible(i));
      const { slices } = run(documents, { codec });
      expectAllWithinTarget(slices);
      expectComplete(slices, documents);
      // Not absurdly small either: most slices are at least half full.
      const half = slices.slice(0, -1).filter((s) => s.length >= TARGET / 2).length;
      expect(half).toBeGreaterThanOrEqual((slices.length - 1) * 0.8);
    });
  }

  it("splits a slice that comes out too large when data stops compressing", () => {
    const documents = [
      ...Array.from({ length: 1500 }, (_, i) => compressible(i)),
      ...Array.from({ length: 300 }, (_, i) => incompressible(1500 + i)),
      ...Array.from({ length: 1500 }, (_, i) => compressible(1800 + i)),
    ];
    const { slices, builder } = run(documents, { codec: "zstd" });
    expect(builder.splitCount).toBeGreaterThan(0);
    expectAllWithinTarget(slices);
    expectComplete(slices, documents);
  });

  it("never buffers more than the cap, however well data compresses", () => {
    const zeros = Array.from({ length: 2000 }, (_, i) => bson({ _id: i, z: new Binary(Buffer.alloc(500)) }));
    const { slices, maxBuffered, builder } = run(zeros, { codec: "zstd", maxBufferedBytes: 3 * TARGET });
    expect(builder.maxBufferedBytes).toBe(3 * TARGET);
    expect(maxBuffered).toBeLessThanOrEqual(3 * TARGET);
    expect(maxBuffered).toBeGreaterThan(2 * TARGET); // the cap, not the estimate, was the limit
    expectAllWithinTarget(slices);
    expectComplete(slices, zeros);
  });

  it("defaults the cap to 8 × the target", () => {
    expect(
      new SliceBuilder({ kind: "oplog", deployment: "d", stream: "oplog", targetBytes: 1000 })
        .maxBufferedBytes,
    ).toBe(8000);
  });

  it("gives a document larger than the target a slice of its own", () => {
    const big = incompressible(1000, TARGET * 2);
    const documents = [
      ...Array.from({ length: 50 }, (_, i) => incompressible(i)),
      big,
      ...Array.from({ length: 50 }, (_, i) => incompressible(2000 + i)),
    ];
    const { slices } = run(documents, { codec: "zstd" });
    const oversized = slices.filter((s) => s.length > TARGET);
    expect(oversized.length).toBe(1);
    expect(readSliceHeader(oversized[0]).count).toBe(1);
    expectComplete(slices, documents);
  });

  it("does not hold a document larger than the cap", () => {
    const builder = new SliceBuilder({
      kind: "documents",
      deployment: "d",
      stream: "documents/a.b",
      targetBytes: 4096,
      maxBufferedBytes: 8192,
    });
    expect(builder.add(incompressible(1, 100))).toEqual([]);
    const out = builder.add(incompressible(2, 20_000));
    expect(builder.bufferedBytes).toBe(0);
    expect(out.map((s) => readSliceHeader(s).count)).toEqual([1, 1]);
  });

  it("numbers slices from firstSequence and carries the stream's header fields", () => {
    const documents = Array.from({ length: 500 }, (_, i) => incompressible(i));
    const createdAt = new Date("2024-01-02T03:04:05Z");
    const { slices, builder } = run(documents, {
      codec: "snappy",
      firstSequence: 41,
      extra: { collectionUuid: "u-1" },
      now: () => createdAt,
    });
    expectComplete(slices, documents, 41);
    expect(builder.nextSequence).toBe(41 + slices.length);
    for (const slice of slices) {
      const header = readSliceHeader(slice);
      expect(header).toMatchObject({
        kind: "documents",
        deployment: "dep-1",
        stream: "documents/shop.orders",
        namespace: "shop.orders",
        codec: "snappy",
        extra: { collectionUuid: "u-1" },
        createdAt,
      });
    }
  });

  it("records each documents slice's last _id, so a clone can resume after it", () => {
    const documents = Array.from({ length: 500 }, (_, i) => incompressible(i));
    const { slices } = run(documents);
    for (const slice of slices) {
      const decoded = decodeSlice(slice);
      const docs = [...decoded.documents()];
      expect(decoded.header.lastId?.valueOf()).toBe(deserialize(docs[docs.length - 1])._id);
    }
  });

  it("records each oplog slice's first and last ts", () => {
    const entries = fixtureDocuments(OPLOG_50);
    const { slices } = run(entries, {
      kind: "oplog",
      stream: "oplog",
      namespace: undefined,
      targetBytes: 4096,
    });
    expect(slices.length).toBeGreaterThan(1);
    expectAllWithinTarget(slices, 4096);
    expectComplete(slices, entries);
    for (const slice of slices) {
      const decoded = decodeSlice(slice);
      const docs = [...decoded.documents()];
      const ts = (doc: Buffer) => deserialize(doc).ts as Timestamp;
      expect(decoded.header.firstTs?.equals(ts(docs[0]))).toBe(true);
      expect(decoded.header.lastTs?.equals(ts(docs[docs.length - 1]))).toBe(true);
    }
  });

  it("keeps a mixed stream of sizes and codecs within the target", () => {
    let seed = 7;
    const next = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31);
    const documents = Array.from({ length: 1500 }, (_, i) =>
      next() % 4 === 0
        ? incompressible(i, 50 + (next() % 5000))
        : bson({ _id: Long.fromNumber(i), text: "abc ".repeat(next() % 800) }),
    );
    for (const codec of ["zstd", "gzip"] as Codec[]) {
      const { slices } = run(documents, { codec });
      expectAllWithinTarget(slices);
      expectComplete(slices, documents);
    }
  });

  it("copies documents: views into a reused buffer come out intact, and the buffer is not kept", () => {
    const documents = Array.from({ length: 400 }, (_, i) => compressible(i));
    const builder = new SliceBuilder({
      kind: "documents",
      deployment: "dep-1",
      stream: "documents/shop.orders",
      targetBytes: TARGET,
    });
    const slices: Buffer[] = [];
    const reply = Buffer.alloc(64 * 1024); // like a driver reply: documents are views into it
    for (const doc of documents) {
      doc.copy(reply, 100);
      slices.push(...builder.add(reply.subarray(100, 100 + doc.length)));
      reply.fill(0xee);
    }
    slices.push(...builder.flush());
    expectComplete(slices, documents);
  });

  it("refuses bytes that are not one BSON document", () => {
    const builder = new SliceBuilder({ kind: "documents", deployment: "d", stream: "documents/a.b" });
    expect(() => builder.add(Buffer.from([1, 2, 3]))).toThrow(/not one whole BSON document/);
  });
});
