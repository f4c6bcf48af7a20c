import { deflateSync } from "node:zlib";
import { serialize } from "bson";
import { describe, expect, it } from "vitest";
import { CompressorId, compressMessage, decompressMessage } from "../../src/wire/compression.js";
import { WireProtocolError } from "../../src/wire/errors.js";
import { readHeader, withHeader } from "../../src/wire/header.js";
import { HEADER_SIZE, OpCode } from "../../src/wire/opcodes.js";
import { serializeOpMsg } from "../../src/wire/opMsg.js";

// OP_COMPRESSED (MongoDB manual / compression spec): header, int32 originalOpcode,
// int32 uncompressedSize, uint8 compressorId, compressed bytes of the original message
// without its header.

const original = serializeOpMsg(
  77,
  33,
  serialize({ insert: "c", documents: Array.from({ length: 50 }, (_, i) => ({ i, s: "abc".repeat(30) })) }),
);

function wrap(
  compressorId: number,
  compressed: Buffer,
  uncompressedSize: number,
  opCode: number = OpCode.OP_MSG,
) {
  const prefix = Buffer.alloc(9);
  prefix.writeInt32LE(opCode, 0);
  prefix.writeInt32LE(uncompressedSize, 4);
  prefix[8] = compressorId;
  return withHeader(OpCode.OP_COMPRESSED, 77, 33, Buffer.concat([prefix, compressed]));
}

describe("OP_COMPRESSED", () => {
  it.each(["snappy", "zlib"] as const)("round-trips a message through %s", (compressor) => {
    const compressed = compressMessage(original, compressor);
    const header = readHeader(compressed);
    expect(header.opCode).toBe(OpCode.OP_COMPRESSED);
    expect(header.messageLength).toBe(compressed.length);
    expect(header.requestId).toBe(77);
    expect(header.responseTo).toBe(33);
    expect(compressed.readInt32LE(HEADER_SIZE)).toBe(OpCode.OP_MSG);
    expect(compressed.readInt32LE(HEADER_SIZE + 4)).toBe(original.length - HEADER_SIZE);
    expect(compressed[HEADER_SIZE + 8]).toBe(CompressorId[compressor]);
    expect(compressed.length).toBeLessThan(original.length); // repetitive data does compress

    const back = decompressMessage(compressed);
    expect(back.equals(original)).toBe(true);
  });

  it("accepts the noop compressor (id 0)", () => {
    const body = original.subarray(HEADER_SIZE);
    expect(decompressMessage(wrap(0, Buffer.from(body), body.length)).equals(original)).toBe(true);
  });

  it("restores the original opcode, whatever it was", () => {
    const body = original.subarray(HEADER_SIZE);
    const back = decompressMessage(wrap(CompressorId.zlib, deflateSync(body), body.length, OpCode.OP_QUERY));
    expect(readHeader(back).opCode).toBe(OpCode.OP_QUERY);
  });

  it.each(["snappy", "zlib"] as const)("rejects a corrupted %s body", (compressor) => {
    const compressed = compressMessage(original, compressor);
    // Overwrite the compressed stream past its first bytes with garbage.
    const garbage = Buffer.from(compressed);
    for (let i = HEADER_SIZE + 9 + 2; i < garbage.length; i++) garbage[i] = (i * 131) & 0xff;
    expect(() => decompressMessage(garbage)).toThrow(WireProtocolError);
    // Cut the stream short (the header length follows, as a MessageStream would deliver it).
    const cut = withHeader(
      OpCode.OP_COMPRESSED,
      77,
      33,
      compressed.subarray(HEADER_SIZE, compressed.length - 20),
    );
    expect(() => decompressMessage(cut)).toThrow(WireProtocolError);
  });

  it("rejects a body that decompresses to a size other than uncompressedSize", () => {
    const compressed = compressMessage(original, "zlib");
    const lying = Buffer.from(compressed);
    lying.writeInt32LE(original.length - HEADER_SIZE + 1, HEADER_SIZE + 4);
    expect(() => decompressMessage(lying)).toThrow(/expected \d+ bytes/);
  });

  it("rejects an unknown compressor id, such as zstd (3) which the emulator does not offer", () => {
    const body = original.subarray(HEADER_SIZE);
    expect(() => decompressMessage(wrap(3, Buffer.from(body), body.length))).toThrow(
      /unsupported compressor id 3/,
    );
  });

  it("rejects an out-of-range uncompressedSize and a message too short for its prefix", () => {
    const body = original.subarray(HEADER_SIZE);
    expect(() => decompressMessage(wrap(0, Buffer.from(body), -1))).toThrow(/out of range/);
    expect(() => decompressMessage(wrap(0, Buffer.from(body), 48_000_001))).toThrow(/out of range/);
    expect(() => decompressMessage(withHeader(OpCode.OP_COMPRESSED, 1, 0, Buffer.alloc(8)))).toThrow(
      /truncated/,
    );
  });
});
