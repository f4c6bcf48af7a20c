import { WireProtocolError } from "./errors.js";

/** Returns the BSON document that starts at `offset`, after checking its length fits. */
export function sliceDocument(bytes: Buffer, offset: number, end: number, what: string): Buffer {
  if (offset + 5 > end) throw new WireProtocolError(`${what}: truncated BSON document`);
  const length = bytes.readInt32LE(offset);
  if (length < 5 || offset + length > end) {
    throw new WireProtocolError(`${what}: BSON document length ${length} overruns the message`);
  }
  if (bytes[offset + length - 1] !== 0) {
    throw new WireProtocolError(`${what}: BSON document does not end with a null byte`);
  }
  return bytes.subarray(offset, offset + length);
}

/** Reads a C string at `offset`; returns it and the offset after its terminator. */
export function readCString(bytes: Buffer, offset: number, end: number, what: string): [string, number] {
  const zero = bytes.indexOf(0, offset);
  if (zero < 0 || zero >= end) throw new WireProtocolError(`${what}: unterminated string`);
  return [bytes.toString("utf8", offset, zero), zero + 1];
}
