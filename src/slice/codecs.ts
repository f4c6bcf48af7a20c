import { createRequire } from "node:module";
import { gunzipSync, gzipSync } from "node:zlib";
import { corruptSlice, SliceError } from "./errors.js";

/** How a slice body is compressed. zstd is the default: the best ratio at agent-side speeds. */
export type Codec = "zstd" | "snappy" | "gzip" | "none";

export const CODECS: readonly Codec[] = ["zstd", "snappy", "gzip", "none"];

export function isCodec(value: unknown): value is Codec {
  return typeof value === "string" && (CODECS as readonly string[]).includes(value);
}

// Both compressors are native addons (CommonJS); load them lazily so a broken build only breaks
// the slices that use that codec, as src/wire/compression.ts does for snappy.
const require = createRequire(import.meta.url);

type ZstdApi = typeof import("zstd-napi");
type ZstdBinding = typeof import("zstd-napi/binding.js");
type SnappyApi = {
  compressSync(input: Uint8Array): Buffer;
  uncompressSync(input: Uint8Array, options: { asBuffer: true }): Buffer | string;
};

let zstd: ZstdApi | undefined;
let zstdDecoder: InstanceType<ZstdBinding["DCtx"]> | undefined;
let snappy: SnappyApi | undefined;

function loadZstd(): ZstdApi {
  zstd ??= require("zstd-napi") as ZstdApi;
  return zstd;
}

/** The low-level context, so decompression writes into a buffer we sized (see zstdDecompress). */
function loadZstdDecoder(): InstanceType<ZstdBinding["DCtx"]> {
  if (!zstdDecoder) {
    const binding = require("zstd-napi/binding") as ZstdBinding;
    zstdDecoder = new binding.DCtx();
  }
  return zstdDecoder;
}

function loadSnappy(): SnappyApi {
  snappy ??= require("snappy") as SnappyApi;
  return snappy;
}

export function compress(codec: Codec, body: Buffer): Buffer {
  switch (codec) {
    case "zstd":
      return loadZstd().compress(body);
    case "snappy":
      return loadSnappy().compressSync(body);
    case "gzip":
      return gzipSync(body);
    case "none":
      return body;
  }
}

function tooLarge(codec: Codec, expectedSize: number): SliceError {
  return corruptSlice(
    "SIZE_MISMATCH",
    `the ${codec} body decompresses to more than the ${expectedSize} bytes its header declares`,
  );
}

function wrongSize(codec: Codec, expectedSize: number, actual: number): SliceError {
  return corruptSlice(
    "SIZE_MISMATCH",
    `the ${codec} body decompresses to ${actual} bytes but its header declares ${expectedSize}`,
  );
}

function cannotDecompress(codec: Codec, error: unknown): SliceError {
  const reason = error instanceof Error ? error.message : String(error);
  return corruptSlice("DECOMPRESS", `the ${codec} body cannot be decompressed (${reason})`);
}

/**
 * zstd's one-shot API allocates whatever size the frame header claims, so a corrupt or hostile
 * frame could ask for gigabytes. Decompressing into a buffer of exactly `expectedSize` bytes
 * bounds memory: zstd refuses to write past its end.
 */
function zstdDecompress(compressed: Buffer, expectedSize: number): Buffer {
  const out = Buffer.allocUnsafe(expectedSize);
  let written: number;
  try {
    written = loadZstdDecoder().decompress(out, compressed);
  } catch (error) {
    if (error instanceof Error && /destination buffer is too small/i.test(error.message)) {
      throw tooLarge("zstd", expectedSize);
    }
    throw cannotDecompress("zstd", error);
  }
  if (written !== expectedSize) throw wrongSize("zstd", expectedSize, written);
  return out;
}

/** The uncompressed length that starts every raw snappy block (a little-endian base-128 varint). */
function snappyDeclaredLength(compressed: Buffer): number {
  let length = 0;
  for (let i = 0; i < 5 && i < compressed.length; i++) {
    length += (compressed[i] & 0x7f) * 2 ** (7 * i);
    if ((compressed[i] & 0x80) === 0) return length;
  }
  throw corruptSlice("DECOMPRESS", "the snappy body does not start with a valid length");
}

/** snappy allocates its declared length up front, so check that length before calling it. */
function snappyDecompress(compressed: Buffer, expectedSize: number): Buffer {
  const declared = snappyDeclaredLength(compressed);
  if (declared > expectedSize) throw tooLarge("snappy", expectedSize);
  if (declared !== expectedSize) throw wrongSize("snappy", expectedSize, declared);
  let out: Buffer | string;
  try {
    out = loadSnappy().uncompressSync(compressed, { asBuffer: true });
  } catch (error) {
    throw cannotDecompress("snappy", error);
  }
  const body = typeof out === "string" ? Buffer.from(out, "utf8") : out;
  if (body.length !== expectedSize) throw wrongSize("snappy", expectedSize, body.length);
  return body;
}

/** zlib stops with ERR_BUFFER_TOO_LARGE once the output passes maxOutputLength. */
function gzipDecompress(compressed: Buffer, expectedSize: number): Buffer {
  let body: Buffer;
  try {
    body = gunzipSync(compressed, { maxOutputLength: Math.max(1, expectedSize) });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ERR_BUFFER_TOO_LARGE")
      throw tooLarge("gzip", expectedSize);
    throw cannotDecompress("gzip", error);
  }
  if (body.length !== expectedSize) {
    throw body.length > expectedSize
      ? tooLarge("gzip", expectedSize)
      : wrongSize("gzip", expectedSize, body.length);
  }
  return body;
}

/**
 * Decompresses a slice body that the header says is `expectedSize` bytes. Never allocates more
 * than that (plus a codec's own small working memory), so a corrupt slice cannot exhaust memory.
 * Throws SliceError DECOMPRESS for an undecodable body and SIZE_MISMATCH for a wrong size.
 */
export function decompress(codec: Codec, compressed: Buffer, expectedSize: number): Buffer {
  switch (codec) {
    case "zstd":
      return zstdDecompress(compressed, expectedSize);
    case "snappy":
      return snappyDecompress(compressed, expectedSize);
    case "gzip":
      return gzipDecompress(compressed, expectedSize);
    case "none":
      if (compressed.length !== expectedSize) {
        throw compressed.length > expectedSize
          ? tooLarge("none", expectedSize)
          : wrongSize("none", expectedSize, compressed.length);
      }
      return compressed;
  }
}
