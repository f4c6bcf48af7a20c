import { WireProtocolError } from "./errors.js";
import { withHeader } from "./header.js";
import { HEADER_SIZE, OpCode } from "./opcodes.js";
import { readCString, sliceDocument } from "./rawDocument.js";

export interface OpQueryRequest {
  flags: number;
  fullCollectionName: string;
  numberToSkip: number;
  numberToReturn: number;
  query: Buffer;
}

/** Parses OP_QUERY, which drivers still use for the first hello of a connection. */
export function parseOpQuery(message: Buffer): OpQueryRequest {
  const end = message.length;
  if (end < HEADER_SIZE + 4) throw new WireProtocolError("OP_QUERY: truncated");
  const flags = message.readInt32LE(HEADER_SIZE);
  const [fullCollectionName, afterName] = readCString(message, HEADER_SIZE + 4, end, "OP_QUERY");
  if (afterName + 8 > end) throw new WireProtocolError("OP_QUERY: truncated");
  const numberToSkip = message.readInt32LE(afterName);
  const numberToReturn = message.readInt32LE(afterName + 4);
  const query = sliceDocument(message, afterName + 8, end, "OP_QUERY query");
  return { flags, fullCollectionName, numberToSkip, numberToReturn, query };
}

/** Builds the OP_REPLY that answers an OP_QUERY command. */
export function serializeOpReply(requestId: number, responseTo: number, documents: Uint8Array[]): Buffer {
  const prefix = Buffer.alloc(20);
  prefix.writeInt32LE(0, 0); // responseFlags
  prefix.writeBigInt64LE(0n, 4); // cursorID
  prefix.writeInt32LE(0, 12); // startingFrom
  prefix.writeInt32LE(documents.length, 16);
  return withHeader(OpCode.OP_REPLY, requestId, responseTo, Buffer.concat([prefix, ...documents]));
}
