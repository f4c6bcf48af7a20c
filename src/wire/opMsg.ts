import { crc32c } from "./crc32c.js";
import { WireProtocolError } from "./errors.js";
import { HEADER_SIZE, OpCode, OpMsgFlag } from "./opcodes.js";
import { readCString, sliceDocument } from "./rawDocument.js";

export interface DocumentSequence {
  identifier: string;
  documents: Buffer[];
}

export interface OpMsgRequest {
  flags: number;
  /** The kind-0 section, still as BSON: handlers decide how much of it to deserialize. */
  body: Buffer;
  sequences: DocumentSequence[];
}

/** Parses a whole OP_MSG message (header included), verifying the checksum when present. */
export function parseOpMsg(message: Buffer): OpMsgRequest {
  if (message.length < HEADER_SIZE + 4) throw new WireProtocolError("OP_MSG: too short for its flag bits");
  const flags = message.readUInt32LE(HEADER_SIZE);
  const checksumPresent = (flags & OpMsgFlag.checksumPresent) !== 0;
  let end = message.length;
  if (checksumPresent) {
    end -= 4;
    if (end < HEADER_SIZE + 4) throw new WireProtocolError("OP_MSG: too short for its checksum");
    const expected = message.readUInt32LE(end);
    const actual = crc32c(message.subarray(0, end));
    if (expected !== actual) throw new WireProtocolError("OP_MSG: checksum mismatch");
  }
  // Bits 0-15 are required: a flag we do not know must fail the message (OP_MSG spec).
  const unknownRequired = flags & 0xffff & ~(OpMsgFlag.checksumPresent | OpMsgFlag.moreToCome);
  if (unknownRequired !== 0)
    throw new WireProtocolError(`OP_MSG: unknown required flag bits ${unknownRequired}`);

  let body: Buffer | undefined;
  const sequences: DocumentSequence[] = [];
  let offset = HEADER_SIZE + 4;
  while (offset < end) {
    const kind = message[offset++];
    if (kind === 0) {
      if (body) throw new WireProtocolError("OP_MSG: more than one body section");
      body = sliceDocument(message, offset, end, "OP_MSG body");
      offset += body.length;
    } else if (kind === 1) {
      if (offset + 4 > end) throw new WireProtocolError("OP_MSG: truncated document sequence");
      const size = message.readInt32LE(offset);
      const sectionEnd = offset + size;
      if (size < 5 || sectionEnd > end)
        throw new WireProtocolError("OP_MSG: document sequence overruns the message");
      const [identifier, afterName] = readCString(message, offset + 4, sectionEnd, "OP_MSG sequence");
      const documents: Buffer[] = [];
      let at = afterName;
      while (at < sectionEnd) {
        const doc = sliceDocument(message, at, sectionEnd, `OP_MSG sequence ${identifier}`);
        documents.push(doc);
        at += doc.length;
      }
      sequences.push({ identifier, documents });
      offset = sectionEnd;
    } else {
      throw new WireProtocolError(`OP_MSG: unknown section kind ${kind}`);
    }
  }
  if (!body) throw new WireProtocolError("OP_MSG: no body section");
  return { flags, body, sequences };
}

/**
 * What comes before the body of an OP_MSG reply with a single body section of `bodyLength` bytes:
 * the message header, the flags and the section kind. Written to a socket right before the body,
 * it spares copying a (16 MB) body into one buffer.
 */
export function opMsgPrefix(requestId: number, responseTo: number, bodyLength: number, flags = 0): Buffer {
  const prefix = Buffer.allocUnsafe(HEADER_SIZE + 5);
  prefix.writeInt32LE(HEADER_SIZE + 5 + bodyLength, 0);
  prefix.writeInt32LE(requestId, 4);
  prefix.writeInt32LE(responseTo, 8);
  prefix.writeInt32LE(OpCode.OP_MSG, 12);
  prefix.writeUInt32LE(flags, HEADER_SIZE);
  prefix[HEADER_SIZE + 4] = 0;
  return prefix;
}

/** Builds an OP_MSG reply with a single body section, copying the body once. */
export function serializeOpMsg(requestId: number, responseTo: number, body: Uint8Array, flags = 0): Buffer {
  return Buffer.concat([opMsgPrefix(requestId, responseTo, body.length, flags), body]);
}
