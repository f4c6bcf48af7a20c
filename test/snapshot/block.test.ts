import { Binary, Decimal128, deserialize, Long, ObjectId, serialize } from "bson";
import { describe, expect, it } from "vitest";
import { encodeIdKeyFromDocument } from "../../src/bson/keyEncoding.js";
import { CODECS, type Codec } from "../../src/slice/codecs.js";
import {
  BLOCK_FORMAT_VERSION,
  BLOCK_HEADER_SIZE,
  BLOCK_MAGIC,
  BlockBodyBuilder,
  decodeBlock,
  encodeBlock,
  encodedEntrySize,
  type DecodeBlockOptions,
  type RunEntry,
} from "../../src/snapshot/block.js";
import { BlockError, CORRUPT_BLOCK_ADVICE, type BlockErrorCode } from "../../src/snapshot/errors.js";
import { blockHash } from "../../src/snapshot/stores/blockStore.js";
import { bson, byKey, deletion, documentEntry, expectSameEntries } from "./entries.js";

/** An uncompressed body holding `entries` as given (the builder does not check order: the writer does). */
function bodyOf(entries: readonly RunEntry[]): Buffer {
  const builder = new BlockBodyBuilder(16);
  for (const entry of entries) builder.add(entry);
  return Buffer.from(builder.body());
}

function blockOf(entries: readonly RunEntry[], codec: Codec = "zstd"): Buffer {
  return encodeBlock(bodyOf(entries), entries.length, codec);
}

function errorCode(fn: () => unknown): BlockErrorCode | undefined {
  try {
    fn();
  } catch (error) {
    if (error instanceof BlockError) return error.code;
    throw error;
  }
  return undefined;
}

function flipped(bytes: Buffer, offset: number, mask: number): Buffer {
  const copy = Buffer.from(bytes);
  copy[offset] ^= mask;
  return copy;
}

/** A body assembled by hand, for entries the builder would never produce. */
function rawEntry(kind: number, key: Buffer, doc?: Buffer): Buffer {
  const parts: Buffer[] = [Buffer.from([kind])];
  let length = key.length;
  const varint: number[] = [];
  while (length >= 0x80) {
    varint.push((length & 0x7f) | 0x80);
    length = Math.floor(length / 128);
  }
  varint.push(length);
  parts.push(Buffer.from(varint), key);
  if (doc) parts.push(doc);
  return Buffer.concat(parts);
}

/** Documents with every common kind of `_id`, and keys from 3 bytes to well past 127. */
const MIXED: RunEntry[] = byKey([
  documentEntry({ _id: 1, name: "one" }),
  documentEntry({ _id: -42, nested: { a: [1, 2, 3], b: "x" } }),
  documentEntry({ _id: 3.5, f: 3.5 }),
  documentEntry({ _id: Long.fromString("9007199254740993"), big: true }),
  documentEntry({ _id: Decimal128.fromString("12.25"), d: 1 }),
  documentEntry({ _id: "short" }),
  documentEntry({ _id: "k".repeat(126), note: "key just under 128 bytes" }),
  documentEntry({ _id: "l".repeat(127), note: "key just over 128 bytes" }),
  documentEntry({ _id: "m".repeat(300), note: "two-byte varint" }),
  documentEntry({ _id: "n".repeat(20_000), note: "three-byte varint" }),
  documentEntry({ _id: new ObjectId("65f0a1b2c3d4e5f601234567"), tags: ["a", "b"] }),
  documentEntry({ _id: new ObjectId("65f0a1b2c3d4e5f601234568"), empty: {} }),
  documentEntry({ _id: { region: "eu", n: 7 }, v: 1 }),
  documentEntry({ _id: { region: "us", n: 1 }, v: 2 }),
  documentEntry({ _id: new Binary(Buffer.from("bin-id")), b: null }),
  documentEntry({ _id: new Date("2024-05-01T00:00:00Z"), when: new Date(0) }),
  documentEntry({ _id: true }),
  deletion(2),
  deletion("gone"),
  deletion("z".repeat(200)),
  deletion(new ObjectId("65f0a1b2c3d4e5f6012345ff")),
  deletion({ region: "eu", n: 8 }),
]);

/** A small block (a few hundred bytes per entry) for byte-by-byte corruption loops. */
const SMALL: RunEntry[] = byKey([
  documentEntry({ _id: 10, name: "alpha", n: 1 }),
  documentEntry({ _id: "beta", list: [1, 2, 3] }),
  documentEntry({ _id: "g".repeat(140), long: true }),
  documentEntry({ _id: new ObjectId("65f0a1b2c3d4e5f601234567"), x: "y".repeat(40) }),
  documentEntry({ _id: { a: 1, b: "two" }, v: 3 }),
  deletion(11),
  deletion("delta"),
]);

describe("block layout (format version 1)", () => {
  it("has the documented header", () => {
    const body = bodyOf(MIXED);
    const block = encodeBlock(body, MIXED.length, "snappy");
    expect(block.subarray(0, 7).toString("latin1")).toBe("TDMKBLK");
    expect(BLOCK_MAGIC.toString("latin1")).toBe("TDMKBLK");
    expect(block[7]).toBe(BLOCK_FORMAT_VERSION);
    expect(block[8]).toBe(2); // snappy
    expect(block[9]).toBe(0);
    expect(block.readUInt32LE(10)).toBe(MIXED.length);
    expect(block.readUInt32LE(14)).toBe(body.length);
    const codecIds = (["none", "zstd", "snappy", "gzip"] as const).map(
      (codec) => encodeBlock(body, 1, codec)[8],
    );
    expect(codecIds).toEqual([0, 1, 2, 3]);
  });

  it("lays entries out as kind, varint key length, key, BSON", () => {
    const doc = documentEntry({ _id: "m".repeat(300) });
    const body = bodyOf([doc, deletion(5)]);
    expect(body[0]).toBe(1);
    // 303-byte key (type byte, 300 bytes, two terminator bytes): LEB128 0xaf 0x02.
    expect(doc.key.length).toBe(303);
    expect([body[1], body[2]]).toEqual([0xaf, 0x02]);
    expect(body.subarray(3, 3 + 303).equals(doc.key)).toBe(true);
    expect(body.subarray(306, 306 + doc.doc.length).equals(doc.doc)).toBe(true);
    const rest = body.subarray(306 + doc.doc.length);
    expect(rest[0]).toBe(2);
    expect(rest[1]).toBe(rest.length - 2);
  });

  it("counts each entry's encoded size exactly, across varint length boundaries", () => {
    for (const keyLength of [1, 127, 128, 16_383, 16_384]) {
      const key = Buffer.alloc(keyLength, 7);
      const entries: RunEntry[] = [
        { key, deleted: true },
        { key, doc: bson({ _id: 1 }) },
      ];
      for (const entry of entries) expect(encodedEntrySize(entry)).toBe(bodyOf([entry]).length);
    }
    expect(encodedEntrySize({ key: Buffer.alloc(127), deleted: true })).toBe(1 + 1 + 127);
    expect(encodedEntrySize({ key: Buffer.alloc(128), deleted: true })).toBe(1 + 2 + 128);
    expect(encodedEntrySize({ key: Buffer.alloc(16_384), deleted: true })).toBe(1 + 3 + 16_384);
  });
});

describe("BlockBodyBuilder", () => {
  it("copies entries in, so callers may reuse their buffers", () => {
    const builder = new BlockBodyBuilder(8);
    const key = Buffer.from("a1", "latin1");
    const doc = Buffer.from(serialize({ _id: 1, v: "first" }));
    builder.add({ key, doc });
    const before = Buffer.from(builder.body());
    key.fill(0xff);
    doc.fill(0);
    expect(builder.body().equals(before)).toBe(true);
    expect(builder.firstKey?.toString("latin1")).toBe("a1");
  });

  it("grows past its initial capacity and keeps first/last keys and totals", () => {
    const builder = new BlockBodyBuilder(8);
    for (const entry of MIXED) builder.add(entry);
    expect(builder.count).toBe(MIXED.length);
    expect(builder.deletions).toBe(MIXED.filter((e) => e.deleted).length);
    expect(builder.logicalBytes).toBe(MIXED.reduce((n, e) => n + (e.deleted ? 0 : e.doc.length), 0));
    expect(builder.length).toBe(MIXED.reduce((n, e) => n + encodedEntrySize(e), 0));
    expect(builder.firstKey?.equals(MIXED[0].key)).toBe(true);
    expect(builder.lastKey?.equals(MIXED[MIXED.length - 1].key)).toBe(true);
  });

  it("starts afresh after reset", () => {
    const builder = new BlockBodyBuilder(64);
    for (const entry of MIXED) builder.add(entry);
    builder.reset();
    expect([builder.length, builder.count, builder.deletions, builder.logicalBytes]).toEqual([0, 0, 0, 0]);
    expect(builder.firstKey).toBeUndefined();
    expect(builder.lastKey).toBeUndefined();
    builder.add(SMALL[1]);
    expect(builder.body().equals(bodyOf([SMALL[1]]))).toBe(true);
    expect(builder.firstKey?.equals(SMALL[1].key)).toBe(true);
  });
});

describe("encodeBlock / decodeBlock round trip", () => {
  for (const codec of CODECS) {
    it(`round-trips documents and deletion markers with ${codec}`, () => {
      const block = blockOf(MIXED, codec);
      const decoded = decodeBlock(block, { expectedHash: blockHash(block), checkIdKeys: true });
      expect(decoded.codec).toBe(codec);
      expect(decoded.count).toBe(MIXED.length);
      expect(decoded.deletions).toBe(5);
      expect(decoded.logicalBytes).toBe(MIXED.reduce((n, e) => n + (e.deleted ? 0 : e.doc.length), 0));
      expectSameEntries(decoded.entries, MIXED);
      for (const [i, entry] of decoded.entries.entries()) {
        const want = MIXED[i];
        if (!entry.deleted && !want.deleted) expect(deserialize(entry.doc)).toEqual(deserialize(want.doc));
      }
    });

    it(`gives identical bytes for identical entries with ${codec}`, () => {
      const a = blockOf(MIXED, codec);
      const b = blockOf(
        MIXED.map((e) => ({ ...e, key: Buffer.from(e.key) })),
        codec,
      );
      expect(a.equals(b)).toBe(true);
    });
  }

  it("returns keys and documents as views into the decompressed body", () => {
    const decoded = decodeBlock(blockOf(MIXED, "zstd"));
    for (const entry of decoded.entries) {
      expect(entry.key.buffer).toBe(decoded.body.buffer);
      expect(entry.key.byteOffset).toBeGreaterThanOrEqual(decoded.body.byteOffset);
      if (!entry.deleted) {
        expect(entry.doc.buffer).toBe(decoded.body.buffer);
        expect(entry.doc.byteOffset + entry.doc.length).toBeLessThanOrEqual(
          decoded.body.byteOffset + decoded.body.length,
        );
      }
    }
    expect(decoded.body.equals(bodyOf(MIXED))).toBe(true);
  });

  it("decodes a block that is a view into a larger buffer (as a store may return)", () => {
    const block = blockOf(SMALL, "none");
    const padded = Buffer.concat([Buffer.from("prefix-bytes"), block, Buffer.from("suffix")]);
    const view = new Uint8Array(padded.buffer, padded.byteOffset + 12, block.length);
    const decoded = decodeBlock(view, { expectedHash: blockHash(block) });
    expectSameEntries(decoded.entries, SMALL);
  });

  it("accepts the expected hash as bytes or in upper case", () => {
    const block = blockOf(SMALL);
    const hash = blockHash(block);
    expect(decodeBlock(block, { expectedHash: Buffer.from(hash, "hex") }).count).toBe(SMALL.length);
    expect(decodeBlock(block, { expectedHash: hash.toUpperCase() }).count).toBe(SMALL.length);
  });

  it("round-trips an empty body", () => {
    for (const codec of CODECS) {
      const decoded = decodeBlock(encodeBlock(Buffer.alloc(0), 0, codec));
      expect(decoded.entries).toEqual([]);
    }
  });
});

describe("decodeBlock refuses damaged blocks", () => {
  const options = (block: Buffer): DecodeBlockOptions => ({ expectedHash: blockHash(block) });

  for (const codec of CODECS) {
    it(`catches every flipped byte with ${codec}: always by hash, the header always without`, () => {
      const block = blockOf(SMALL, codec);
      const hash = blockHash(block);
      let detectedWithoutHash = 0;
      for (let offset = 0; offset < block.length; offset++) {
        for (const mask of [0x01, 0x80, 0xff]) {
          const damaged = flipped(block, offset, mask);
          expect(
            errorCode(() => decodeBlock(damaged, { expectedHash: hash })),
            `offset ${offset}`,
          ).toBe("HASH_MISMATCH");
          const code = errorCode(() => decodeBlock(damaged));
          expect(code).not.toBe("HASH_MISMATCH");
          if (offset < BLOCK_HEADER_SIZE) expect(code, `header offset ${offset} mask ${mask}`).toBeDefined();
          if (code !== undefined) detectedWithoutHash++;
        }
      }
      // Framing and checks catch a good share even without the address (a flipped byte inside
      // a document's content, or in gzip's ignored header fields, is only caught by the hash).
      expect(detectedWithoutHash).toBeGreaterThan(BLOCK_HEADER_SIZE * 3);
    });
  }

  it("catches a flipped framing byte of an uncompressed body without the hash", () => {
    const block = blockOf(SMALL, "none");
    const framing: number[] = [];
    let pos = BLOCK_HEADER_SIZE;
    for (const entry of SMALL) {
      framing.push(pos); // kind
      const varintBytes = entry.key.length >= 128 ? 2 : 1;
      for (let i = 0; i < varintBytes; i++) framing.push(pos + 1 + i);
      pos += 1 + varintBytes + entry.key.length;
      if (!entry.deleted) {
        framing.push(pos, pos + 1, pos + 2, pos + 3, pos + entry.doc.length - 1);
        pos += entry.doc.length;
      }
    }
    expect(pos).toBe(block.length);
    for (const offset of framing) {
      for (const mask of [0x01, 0x02, 0x80, 0xff]) {
        expect(
          errorCode(() => decodeBlock(flipped(block, offset, mask))),
          `offset ${offset}`,
        ).toBeDefined();
      }
    }
  });

  for (const codec of CODECS) {
    it(`refuses every truncation and an extended block with ${codec}`, () => {
      const block = blockOf(SMALL, codec);
      for (let length = 0; length < block.length; length++) {
        const code = errorCode(() => decodeBlock(block.subarray(0, length)));
        expect(code, `length ${length}`).toBeDefined();
        if (length < BLOCK_HEADER_SIZE) expect(code).toBe("TRUNCATED");
        expect(errorCode(() => decodeBlock(block.subarray(0, length), options(block)))).toBe("HASH_MISMATCH");
      }
      const extended = Buffer.concat([block, Buffer.from([0])]);
      expect(errorCode(() => decodeBlock(extended, options(block)))).toBe("HASH_MISMATCH");
      // zlib skips zero padding after a gzip stream, and snappy may ignore trailing bytes: for
      // those the address is what catches an extended block.
      if (codec === "zstd" || codec === "none") expect(errorCode(() => decodeBlock(extended))).toBeDefined();
    });
  }

  it("refuses bad magic, naming what it found", () => {
    const block = blockOf(SMALL);
    const bad = Buffer.from(block);
    bad.write("SQLite", 0, "latin1");
    expect(() => decodeBlock(bad)).toThrow(/not a Tidemark run block: it starts with "SQLite/);
    expect(errorCode(() => decodeBlock(bad))).toBe("BAD_MAGIC");
    expect(errorCode(() => decodeBlock(Buffer.from("TDMKBLX")))).toBe("BAD_MAGIC");
    expect(errorCode(() => decodeBlock(Buffer.from("TDMK")))).toBe("TRUNCATED");
  });

  it("refuses a future version with advice to upgrade, and version 0 as corrupt", () => {
    const future = Buffer.from(blockOf(SMALL));
    future[7] = BLOCK_FORMAT_VERSION + 1;
    expect(errorCode(() => decodeBlock(future))).toBe("UNSUPPORTED_VERSION");
    expect(() => decodeBlock(future)).toThrow(/format version 2.*upgrade Tidemark/);
    const zero = Buffer.from(future);
    zero[7] = 0;
    expect(errorCode(() => decodeBlock(zero))).toBe("UNSUPPORTED_VERSION");
    expect(() => decodeBlock(zero)).toThrow(/the block is corrupt/);
  });

  it("refuses an unknown codec id and a non-zero reserved byte", () => {
    const block = blockOf(SMALL);
    for (const [offset, value] of [
      [8, 4],
      [8, 255],
      [9, 1],
    ]) {
      const bad = Buffer.from(block);
      bad[offset] = value;
      expect(errorCode(() => decodeBlock(bad))).toBe("UNKNOWN_CODEC");
    }
  });

  it("refuses a header count that is not the number of entries", () => {
    const body = bodyOf(SMALL);
    for (const codec of CODECS) {
      for (const count of [0, SMALL.length - 1, SMALL.length + 1, 0xffffffff]) {
        expect(errorCode(() => decodeBlock(encodeBlock(body, count, codec)))).toBe("COUNT_MISMATCH");
      }
    }
  });

  it("refuses a declared length that is not the body's, or over the limit", () => {
    const body = bodyOf(SMALL);
    for (const codec of CODECS) {
      for (const delta of [-1, 1]) {
        const bad = encodeBlock(body, SMALL.length, codec);
        bad.writeUInt32LE(body.length + delta, 14);
        expect(["SIZE_MISMATCH", "DECOMPRESS"]).toContain(errorCode(() => decodeBlock(bad)));
      }
      const block = encodeBlock(body, SMALL.length, codec);
      expect(errorCode(() => decodeBlock(block, { maxUncompressedBytes: body.length - 1 }))).toBe(
        "SIZE_MISMATCH",
      );
      expect(decodeBlock(block, { maxUncompressedBytes: body.length }).count).toBe(SMALL.length);
    }
    const huge = blockOf(SMALL, "zstd");
    huge.writeUInt32LE(0xffffffff, 14);
    expect(() => decodeBlock(huge)).toThrow(/more than the limit/);
  });

  it("refuses a body that does not decompress, in block terms", () => {
    const bad = Buffer.from(blockOf(SMALL, "zstd"));
    bad.fill(0x5a, BLOCK_HEADER_SIZE);
    const code = errorCode(() => decodeBlock(bad, { label: "test block" }));
    expect(code).toBe("DECOMPRESS");
    try {
      decodeBlock(bad, { label: "test block" });
    } catch (error) {
      const message = (error as Error).message;
      expect(message).toMatch(/^test block: the zstd body cannot be decompressed/);
      expect(message.endsWith(CORRUPT_BLOCK_ADVICE)).toBe(true);
      expect(message).not.toMatch(/slice/);
    }
  });

  it("refuses keys out of order or repeated", () => {
    const [a, b, c] = SMALL;
    for (const entries of [
      [b, a],
      [a, c, b],
      [a, a],
      [a, { key: a.key, deleted: true } as RunEntry],
    ]) {
      for (const codec of CODECS) {
        expect(errorCode(() => decodeBlock(blockOf(entries, codec)))).toBe("KEY_ORDER");
      }
    }
  });

  it("refuses malformed BSON framing", () => {
    const key = encodeIdKeyFromDocument(serialize({ _id: 1 }));
    const good = Buffer.from(serialize({ _id: 1, v: "x" }));
    const noTerminator = Buffer.from(good);
    noTerminator[noTerminator.length - 1] = 1;
    const tooLong = Buffer.from(good);
    tooLong.writeInt32LE(good.length + 1, 0);
    const tooShort = Buffer.from(good);
    tooShort.writeInt32LE(4, 0);
    const negative = Buffer.from(good);
    negative.writeInt32LE(-1, 0);
    for (const doc of [noTerminator, tooLong, tooShort, negative, good.subarray(0, 3)]) {
      const body = rawEntry(1, key, doc);
      expect(errorCode(() => decodeBlock(encodeBlock(body, 1, "none")))).toBe("MALFORMED_BSON");
    }
    // A document whose length runs into the next entry.
    const next = rawEntry(2, encodeIdKeyFromDocument(serialize({ _id: 2 })));
    const body = Buffer.concat([rawEntry(1, key, tooLong), next]);
    expect(errorCode(() => decodeBlock(encodeBlock(body, 2, "zstd")))).toBe("MALFORMED_BSON");
  });

  it("refuses malformed entry framing", () => {
    const key = encodeIdKeyFromDocument(serialize({ _id: 1 }));
    const cases: Buffer[] = [
      Buffer.from([3, 1, 0x20]), // unknown kind
      Buffer.from([0, 1, 0x20]), // kind 0
      Buffer.from([2, 0]), // empty key
      Buffer.from([2]), // ends before the key length
      Buffer.from([2, 0x85]), // ends inside the key length
      Buffer.from([2, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01]), // a varint longer than 5 bytes
      Buffer.from([2, 0x85, 0x00, 0x20, 0x20, 0x20, 0x20, 0x20]), // a length of 5 not minimally encoded
      Buffer.from([2, 5, 0x20, 0x20]), // key longer than the body
      Buffer.concat([rawEntry(2, key), Buffer.from([1])]), // a trailing partial entry
    ];
    for (const body of cases) {
      expect(
        errorCode(() => decodeBlock(encodeBlock(body, 1, "none"))),
        body.toString("hex"),
      ).toBe("MALFORMED_ENTRY");
    }
  });

  it("checks that keys are the keys of the documents' _id when asked", () => {
    const one = documentEntry({ _id: 1, v: "one" });
    const two = documentEntry({ _id: 2, v: "two" });
    const swapped = blockOf([{ key: one.key, doc: two.doc }], "zstd");
    expect(decodeBlock(swapped).count).toBe(1);
    expect(errorCode(() => decodeBlock(swapped, { checkIdKeys: true }))).toBe("KEY_MISMATCH");
    // An int and a double with equal value are the same _id: same key, no mismatch.
    const asDouble = blockOf([{ key: one.key, doc: bson({ _id: 1.0, v: "one" }) }]);
    expect(decodeBlock(asDouble, { checkIdKeys: true }).count).toBe(1);
    const noId = blockOf([{ key: one.key, doc: bson({ v: "no id" }) }]);
    expect(decodeBlock(noId).count).toBe(1);
    expect(errorCode(() => decodeBlock(noId, { checkIdKeys: true }))).toBe("MALFORMED_BSON");
    // Deletion markers have no document to check.
    expect(decodeBlock(blockOf([deletion(5)]), { checkIdKeys: true }).deletions).toBe(1);
  });

  it("names the block by its address, or by the label given", () => {
    const block = blockOf(SMALL);
    const hash = blockHash(block);
    const bad = flipped(block, 3, 1);
    expect(() => decodeBlock(bad, { expectedHash: hash })).toThrow(
      new RegExp(
        `^block ${hash.slice(0, 16)}: its ${block.length} bytes hash to ${blockHash(bad)}, not to the address ${hash}`,
      ),
    );
    expect(() => decodeBlock(bad)).toThrow(
      new RegExp(`^block ${blockHash(bad).slice(0, 16)}: not a Tidemark`),
    );
    expect(() => decodeBlock(bad, { label: "base run block 3 of 9" })).toThrow(/^base run block 3 of 9: /);
  });
});
