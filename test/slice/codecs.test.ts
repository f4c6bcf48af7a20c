import { randomBytes } from "node:crypto";
import { gzipSync } from "node:zlib";
import { describe, expect, it } from "vitest";
import { CODECS, compress, decompress, type Codec } from "../../src/slice/codecs.js";
import { SliceError } from "../../src/slice/errors.js";
import { ALL_TYPES, fixtureBytes, OPLOG_50 } from "./fixtures.js";

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (error) {
    if (error instanceof SliceError) return error.code;
    throw error;
  }
  return undefined;
}

/**
 * A zstd frame (RFC 8878) that expands to `blocks` × 128 KiB of zeros from 4 bytes per block:
 * no content size in the frame header (so a decoder cannot refuse it up front), a 128 KiB
 * window, and RLE blocks (block type 1: one byte repeated Block_Size times).
 */
function zstdBomb(blocks: number): Buffer {
  const blockSize = 128 * 1024;
  const parts = [Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0x00, 7 << 3])];
  for (let i = 0; i < blocks; i++) {
    const last = i === blocks - 1 ? 1 : 0;
    const header = last | (1 << 1) | (blockSize << 3);
    parts.push(Buffer.from([header & 0xff, (header >> 8) & 0xff, (header >> 16) & 0xff, 0x00]));
  }
  return Buffer.concat(parts);
}

describe("codecs", () => {
  const inputs = {
    oplog: fixtureBytes(OPLOG_50),
    allTypes: fixtureBytes(ALL_TYPES),
    random: randomBytes(100_000),
    empty: Buffer.alloc(0),
  };

  for (const codec of CODECS) {
    for (const [name, input] of Object.entries(inputs)) {
      it(`${codec} round-trips ${name}`, () => {
        const packed = compress(codec, input);
        expect(decompress(codec, packed, input.length).equals(input)).toBe(true);
      });
    }

    it(`${codec} reports a body shorter or longer than declared as SIZE_MISMATCH`, () => {
      const packed = compress(codec, inputs.oplog);
      expect(codeOf(() => decompress(codec, packed, inputs.oplog.length + 1))).toBe("SIZE_MISMATCH");
      expect(codeOf(() => decompress(codec, packed, inputs.oplog.length - 1))).toBe("SIZE_MISMATCH");
    });
  }

  it("compresses the real oplog with every real codec", () => {
    for (const codec of ["zstd", "snappy", "gzip"] as Codec[]) {
      expect(compress(codec, inputs.oplog).length).toBeLessThan(inputs.oplog.length / 2);
    }
  });

  it("reports undecodable input as DECOMPRESS", () => {
    const garbage = Buffer.from("this is not compressed data at all, in any format");
    expect(codeOf(() => decompress("zstd", garbage, 100))).toBe("DECOMPRESS");
    expect(codeOf(() => decompress("gzip", garbage, 100))).toBe("DECOMPRESS");
    const packed = compress("snappy", inputs.oplog);
    const broken = Buffer.from(packed);
    broken.fill(0xff, 3, 40); // keep the length preamble, break the tags after it
    expect(codeOf(() => decompress("snappy", broken, inputs.oplog.length))).toBe("DECOMPRESS");
  });

  describe("refuses decompression bombs without expanding them", () => {
    it("zstd: 1 GiB of RLE blocks with no declared size, expected 1 MiB", () => {
      const bomb = zstdBomb(8192);
      expect(bomb.length).toBeLessThan(40_000);
      expect(codeOf(() => decompress("zstd", bomb, 1024 * 1024))).toBe("SIZE_MISMATCH");
      // The same frame is fine when the declared size is right (the bomb is well formed).
      expect(decompress("zstd", zstdBomb(2), 256 * 1024).equals(Buffer.alloc(256 * 1024))).toBe(true);
    });

    it("gzip: 16 MiB of zeros, expected 1000 bytes", () => {
      const bomb = gzipSync(Buffer.alloc(16 * 1024 * 1024));
      expect(codeOf(() => decompress("gzip", bomb, 1000))).toBe("SIZE_MISMATCH");
    });

    it("snappy: a body whose length preamble claims 2 GiB", () => {
      const bomb = Buffer.from([0x80, 0x80, 0x80, 0x80, 0x08, 0x00]);
      expect(codeOf(() => decompress("snappy", bomb, 1000))).toBe("SIZE_MISMATCH");
    });

    it("none: more bytes than declared", () => {
      expect(codeOf(() => decompress("none", Buffer.alloc(2000), 1000))).toBe("SIZE_MISMATCH");
    });
  });
});
