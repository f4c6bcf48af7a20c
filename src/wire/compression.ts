import { createRequire } from "node:module";
import { deflateSync, inflateSync } from "node:zlib";
import { WireProtocolError } from "./errors.js";
import { withHeader } from "./header.js";
import { HEADER_SIZE, MAX_MESSAGE_SIZE, OpCode } from "./opcodes.js";

export type CompressorName = "snappy" | "zlib";

/** compressorId values from the OP_COMPRESSED specification. */
export const CompressorId: Record<CompressorName | "noop", number> = { noop: 0, snappy: 1, zlib: 2 };

export const SUPPORTED_COMPRESSORS: CompressorName[] = ["snappy", "zlib"];

// snappy is a native addon; load it lazily so a broken build only affects snappy clients.
const require = createRequire(import.meta.url);
let snappy: { compressSync(b: Buffer): Buffer; uncompressSync(b: Buffer): Buffer | string } | undefined;
function loadSnappy() {
  snappy ??= require("snappy") as typeof snappy;
  return snappy!;
}

/** Unwraps an OP_COMPRESSED message into the original message, header included. */
export function decompressMessage(message: Buffer): Buffer {
  if (message.length < HEADER_SIZE + 9) throw new WireProtocolError("OP_COMPRESSED: truncated");
  const originalOpCode = message.readInt32LE(HEADER_SIZE);
  const uncompressedSize = message.readInt32LE(HEADER_SIZE + 4);
  const compressorId = message[HEADER_SIZE + 8];
  const compressed = message.subarray(HEADER_SIZE + 9);
  if (uncompressedSize < 0 || uncompressedSize > MAX_MESSAGE_SIZE) {
    throw new WireProtocolError(`OP_COMPRESSED: uncompressed size ${uncompressedSize} out of range`);
  }
  let body: Buffer;
  try {
    if (compressorId === CompressorId.noop) body = compressed;
    else if (compressorId === CompressorId.snappy)
      body = Buffer.from(loadSnappy().uncompressSync(compressed));
    else if (compressorId === CompressorId.zlib) body = inflateSync(compressed);
    else throw new WireProtocolError(`OP_COMPRESSED: unsupported compressor id ${compressorId}`);
  } catch (error) {
    if (error instanceof WireProtocolError) throw error;
    throw new WireProtocolError(`OP_COMPRESSED: cannot decompress: ${(error as Error).message}`);
  }
  if (body.length !== uncompressedSize) {
    throw new WireProtocolError(`OP_COMPRESSED: expected ${uncompressedSize} bytes, got ${body.length}`);
  }
  const header = message.subarray(0, HEADER_SIZE);
  return withHeader(originalOpCode, header.readInt32LE(4), header.readInt32LE(8), body);
}

/** Wraps a whole message (header included) into OP_COMPRESSED with the given compressor. */
export function compressMessage(message: Buffer, compressor: CompressorName): Buffer {
  const body = message.subarray(HEADER_SIZE);
  const compressed = compressor === "snappy" ? loadSnappy().compressSync(body) : deflateSync(body);
  const prefix = Buffer.allocUnsafe(9);
  prefix.writeInt32LE(message.readInt32LE(12), 0);
  prefix.writeInt32LE(body.length, 4);
  prefix[8] = CompressorId[compressor];
  return withHeader(
    OpCode.OP_COMPRESSED,
    message.readInt32LE(4),
    message.readInt32LE(8),
    Buffer.concat([prefix, compressed]),
  );
}
