import { deserialize, serialize } from "bson";
import { describe, expect, it } from "vitest";
import { WireProtocolError } from "../../src/wire/errors.js";
import { readHeader, withHeader } from "../../src/wire/header.js";
import { HEADER_SIZE, OpCode } from "../../src/wire/opcodes.js";
import { parseOpQuery, serializeOpReply } from "../../src/wire/opQuery.js";

// OP_QUERY (MongoDB manual, "Legacy Opcodes"): header, int32 flags, cstring fullCollectionName,
// int32 numberToSkip, int32 numberToReturn, document query, [document returnFieldsSelector].

function opQueryBody(name: string, skip: number, limit: number, ...docs: Buffer[]): Buffer {
  const flags = Buffer.alloc(4);
  flags.writeInt32LE(4, 0); // SecondaryOk, as drivers set it for the handshake
  const numbers = Buffer.alloc(8);
  numbers.writeInt32LE(skip, 0);
  numbers.writeInt32LE(limit, 4);
  return Buffer.concat([flags, Buffer.from(`${name}\0`, "utf8"), numbers, ...docs]);
}

const hello = Buffer.from(serialize({ isMaster: 1, helloOk: true, client: { driver: { name: "x" } } }));

describe("parseOpQuery", () => {
  it("parses the fields of a legacy hello", () => {
    const message = withHeader(OpCode.OP_QUERY, 5, 0, opQueryBody("admin.$cmd", 0, -1, hello));
    const parsed = parseOpQuery(message);
    expect(parsed.flags).toBe(4);
    expect(parsed.fullCollectionName).toBe("admin.$cmd");
    expect(parsed.numberToSkip).toBe(0);
    expect(parsed.numberToReturn).toBe(-1);
    expect(parsed.query.equals(hello)).toBe(true);
    expect(deserialize(parsed.query).isMaster).toBe(1);
  });

  it("ignores a returnFieldsSelector after the query", () => {
    const selector = Buffer.from(serialize({ a: 1 }));
    const parsed = parseOpQuery(
      withHeader(OpCode.OP_QUERY, 1, 0, opQueryBody("db.$cmd", 3, 7, hello, selector)),
    );
    expect(parsed.numberToSkip).toBe(3);
    expect(parsed.numberToReturn).toBe(7);
    expect(parsed.query.equals(hello)).toBe(true);
  });

  it("reads a UTF-8 collection name", () => {
    const parsed = parseOpQuery(withHeader(OpCode.OP_QUERY, 1, 0, opQueryBody("dé.$cmd", 0, 1, hello)));
    expect(parsed.fullCollectionName).toBe("dé.$cmd");
  });

  it("rejects a message too short for its flags", () => {
    expect(() => parseOpQuery(withHeader(OpCode.OP_QUERY, 1, 0, Buffer.alloc(2)))).toThrow(WireProtocolError);
  });

  it("rejects an unterminated collection name", () => {
    const body = Buffer.concat([Buffer.alloc(4), Buffer.from("admin.$cmd", "ascii")]);
    expect(() => parseOpQuery(withHeader(OpCode.OP_QUERY, 1, 0, body))).toThrow(/unterminated string/);
  });

  it("rejects a message cut inside numberToSkip / numberToReturn", () => {
    const full = opQueryBody("admin.$cmd", 0, -1, hello);
    const nameEnd = 4 + "admin.$cmd".length + 1;
    const body = full.subarray(0, nameEnd + 6);
    expect(() => parseOpQuery(withHeader(OpCode.OP_QUERY, 1, 0, body))).toThrow(/OP_QUERY: truncated/);
  });

  it("rejects a missing or truncated query document", () => {
    const noQuery = opQueryBody("admin.$cmd", 0, -1);
    expect(() => parseOpQuery(withHeader(OpCode.OP_QUERY, 1, 0, noQuery))).toThrow(/truncated BSON document/);
    const cut = opQueryBody("admin.$cmd", 0, -1, hello.subarray(0, hello.length - 4));
    expect(() => parseOpQuery(withHeader(OpCode.OP_QUERY, 1, 0, cut))).toThrow(/overruns the message/);
  });
});

describe("serializeOpReply", () => {
  it("builds an OP_REPLY with one document per entry and responseTo set", () => {
    const docs = [serialize({ ok: 1, ismaster: true }), serialize({ second: 2 })];
    const reply = serializeOpReply(9, 5, docs);
    expect(readHeader(reply)).toEqual({
      messageLength: reply.length,
      requestId: 9,
      responseTo: 5,
      opCode: OpCode.OP_REPLY,
    });
    expect(reply.readInt32LE(HEADER_SIZE)).toBe(0); // responseFlags
    expect(reply.readBigInt64LE(HEADER_SIZE + 4)).toBe(0n); // cursorID
    expect(reply.readInt32LE(HEADER_SIZE + 12)).toBe(0); // startingFrom
    expect(reply.readInt32LE(HEADER_SIZE + 16)).toBe(2); // numberReturned
    const first = reply.subarray(HEADER_SIZE + 20);
    const firstLength = first.readInt32LE(0);
    expect(deserialize(first.subarray(0, firstLength))).toEqual({ ok: 1, ismaster: true });
    expect(deserialize(first.subarray(firstLength))).toEqual({ second: 2 });
  });
});
