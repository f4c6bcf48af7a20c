import { deserialize, Double, serialize, type Document } from "bson";
import { describe, expect, it } from "vitest";
import { crc32c } from "../../src/wire/crc32c.js";
import { WireProtocolError } from "../../src/wire/errors.js";
import { readHeader, withHeader } from "../../src/wire/header.js";
import { HEADER_SIZE, OpCode, OpMsgFlag } from "../../src/wire/opcodes.js";
import { parseOpMsg, serializeOpMsg } from "../../src/wire/opMsg.js";

// OP_MSG layout (MongoDB manual, "OP_MSG"): header, uint32 flagBits, sections, optional
// uint32 CRC-32C checksum over every preceding byte of the message, header included.

type Section =
  { kind: 0; doc: Document | Buffer } | { kind: 1; identifier: string; docs: (Document | Buffer)[] };

function bsonOf(doc: Document | Buffer): Buffer {
  return Buffer.isBuffer(doc) ? doc : Buffer.from(serialize(doc));
}

function sectionBytes(section: Section): Buffer {
  if (section.kind === 0) return Buffer.concat([Buffer.from([0]), bsonOf(section.doc)]);
  const payload = Buffer.concat([
    Buffer.from(`${section.identifier}\0`, "utf8"),
    ...section.docs.map((d) => bsonOf(d)),
  ]);
  const size = Buffer.alloc(4);
  size.writeInt32LE(payload.length + 4, 0);
  return Buffer.concat([Buffer.from([1]), size, payload]);
}

function opMsg(sections: Section[], options: { flags?: number; checksum?: boolean } = {}): Buffer {
  let flags = options.flags ?? 0;
  if (options.checksum) flags |= OpMsgFlag.checksumPresent;
  const flagBytes = Buffer.alloc(4);
  flagBytes.writeUInt32LE(flags >>> 0, 0);
  const body = Buffer.concat([flagBytes, ...sections.map(sectionBytes)]);
  if (!options.checksum) return withHeader(OpCode.OP_MSG, 42, 0, body);
  const withoutSum = withHeader(OpCode.OP_MSG, 42, 0, Buffer.concat([body, Buffer.alloc(4)]));
  withoutSum.writeUInt32LE(crc32c(withoutSum.subarray(0, withoutSum.length - 4)), withoutSum.length - 4);
  return withoutSum;
}

describe("crc32c (CRC-32C / Castagnoli, as OP_MSG checksums use)", () => {
  it("matches the standard check value for '123456789'", () => {
    expect(crc32c(Buffer.from("123456789", "ascii"))).toBe(0xe3069283);
  });

  it("is 0 for no bytes and differs from the IEEE CRC-32", () => {
    expect(crc32c(Buffer.alloc(0))).toBe(0);
    // IEEE CRC-32 of "123456789" is 0xcbf43926: a table built from the wrong polynomial fails here.
    expect(crc32c(Buffer.from("123456789"))).not.toBe(0xcbf43926);
    // RFC 3720 (iSCSI) B.4 test vector: 32 bytes of zeros.
    expect(crc32c(Buffer.alloc(32))).toBe(0x8a9136aa);
  });
});

describe("parseOpMsg", () => {
  it("parses a body-only message", () => {
    const parsed = parseOpMsg(opMsg([{ kind: 0, doc: { ping: 1, $db: "admin" } }]));
    expect(parsed.flags).toBe(0);
    expect(deserialize(parsed.body)).toEqual({ ping: 1, $db: "admin" });
    expect(parsed.sequences).toEqual([]);
  });

  it("parses document sequences before and after the body", () => {
    const docs = [{ _id: 1 }, { _id: 2, s: "x".repeat(100) }, { _id: 3 }];
    const message = opMsg([
      { kind: 1, identifier: "documents", docs },
      { kind: 0, doc: { insert: "c", $db: "test" } },
      { kind: 1, identifier: "updates", docs: [{ q: {}, u: { $set: { a: 1 } } }] },
      { kind: 1, identifier: "empty", docs: [] },
    ]);
    const parsed = parseOpMsg(message);
    expect(deserialize(parsed.body)).toEqual({ insert: "c", $db: "test" });
    expect(parsed.sequences.map((s) => s.identifier)).toEqual(["documents", "updates", "empty"]);
    expect(parsed.sequences[0].documents.map((d) => deserialize(d))).toEqual(docs);
    expect(deserialize(parsed.sequences[1].documents[0])).toEqual({ q: {}, u: { $set: { a: 1 } } });
    expect(parsed.sequences[2].documents).toEqual([]);
  });

  it("keeps the body and sequence documents as the exact bytes sent", () => {
    const body = Buffer.from(serialize({ insert: "c", $db: "test" }));
    // A double 1.0 would come back as an int32 if the parser re-serialized the document.
    const doc = Buffer.from(serialize({ _id: 1, n: new Double(1) }));
    const parsed = parseOpMsg(
      opMsg([
        { kind: 0, doc: body },
        { kind: 1, identifier: "documents", docs: [doc] },
      ]),
    );
    expect(parsed.body.equals(body)).toBe(true);
    expect(parsed.sequences[0].documents[0].equals(doc)).toBe(true);
    expect(parsed.sequences[0].documents[0][4]).toBe(0x10); // _id: int32
    expect(parsed.sequences[0].documents[0][13]).toBe(0x01); // n: double
  });

  it("verifies a correct checksum and reports the flag", () => {
    const message = opMsg([{ kind: 0, doc: { hello: 1, $db: "admin" } }], { checksum: true });
    const parsed = parseOpMsg(message);
    expect(parsed.flags & OpMsgFlag.checksumPresent).toBe(OpMsgFlag.checksumPresent);
    expect(deserialize(parsed.body)).toEqual({ hello: 1, $db: "admin" });
    expect(parsed.sequences).toEqual([]);
  });

  it("does not take the checksum for a section", () => {
    const message = opMsg(
      [
        { kind: 0, doc: { insert: "c", $db: "t" } },
        { kind: 1, identifier: "documents", docs: [{ _id: 1 }] },
      ],
      { checksum: true },
    );
    const parsed = parseOpMsg(message);
    expect(parsed.sequences).toHaveLength(1);
    expect(parsed.sequences[0].documents).toHaveLength(1);
  });

  it("rejects a checksum that does not match, whichever byte changed", () => {
    const message = opMsg([{ kind: 0, doc: { hello: 1, $db: "admin" } }], { checksum: true });
    const flippedBody = Buffer.from(message);
    flippedBody[HEADER_SIZE + 10] ^= 0x01;
    expect(() => parseOpMsg(flippedBody)).toThrow(/checksum mismatch/);
    const flippedHeader = Buffer.from(message);
    flippedHeader[4] ^= 0x01; // requestID is covered by the checksum too
    expect(() => parseOpMsg(flippedHeader)).toThrow(/checksum mismatch/);
    const flippedSum = Buffer.from(message);
    flippedSum[flippedSum.length - 1] ^= 0x80;
    expect(() => parseOpMsg(flippedSum)).toThrow(WireProtocolError);
  });

  it("rejects a message whose checksum flag is set but has no room for one", () => {
    const bare = withHeader(OpCode.OP_MSG, 1, 0, Buffer.from([1, 0, 0, 0]));
    expect(() => parseOpMsg(bare)).toThrow(WireProtocolError);
  });

  it("accepts moreToCome and exhaustAllowed", () => {
    const flags = OpMsgFlag.moreToCome | OpMsgFlag.exhaustAllowed;
    const parsed = parseOpMsg(opMsg([{ kind: 0, doc: { ping: 1 } }], { flags }));
    expect(parsed.flags).toBe(flags);
  });

  it("rejects unknown required flag bits (0-15) but ignores unknown optional ones (16-31)", () => {
    for (const bit of [2, 3, 8, 15]) {
      expect(() => parseOpMsg(opMsg([{ kind: 0, doc: { ping: 1 } }], { flags: 1 << bit }))).toThrow(
        /unknown required flag bits/,
      );
    }
    for (const bit of [17, 20, 31]) {
      const parsed = parseOpMsg(opMsg([{ kind: 0, doc: { ping: 1 } }], { flags: (1 << bit) >>> 0 }));
      expect(parsed.flags >>> 0).toBe((1 << bit) >>> 0);
    }
  });

  it("rejects an unknown section kind", () => {
    const good = opMsg([{ kind: 0, doc: { ping: 1 } }]);
    for (const kind of [2, 0x7f, 0xff]) {
      const bad = Buffer.from(good);
      bad[HEADER_SIZE + 4] = kind;
      expect(() => parseOpMsg(bad)).toThrow(new RegExp(`unknown section kind ${kind}`));
    }
  });

  it("rejects a message with no body section or with two", () => {
    expect(() => parseOpMsg(opMsg([{ kind: 1, identifier: "documents", docs: [{ a: 1 }] }]))).toThrow(
      /no body section/,
    );
    expect(() => parseOpMsg(opMsg([]))).toThrow(/no body section/);
    expect(() =>
      parseOpMsg(
        opMsg([
          { kind: 0, doc: { a: 1 } },
          { kind: 0, doc: { b: 1 } },
        ]),
      ),
    ).toThrow(/more than one body section/);
  });

  it("rejects a message too short to hold its flag bits", () => {
    for (const size of [0, 1, 3]) {
      const message = withHeader(OpCode.OP_MSG, 1, 0, Buffer.alloc(size));
      expect(() => parseOpMsg(message)).toThrow(WireProtocolError);
    }
  });

  it("rejects a truncated body document", () => {
    const good = opMsg([{ kind: 0, doc: { insert: "c", documents: [{ _id: 1 }] } }]);
    // Cut the message short, keeping the header's length consistent with what is there.
    for (const cut of [1, 5, 10]) {
      const short = good.subarray(0, good.length - cut);
      const bad = withHeader(OpCode.OP_MSG, 1, 0, short.subarray(HEADER_SIZE));
      expect(() => parseOpMsg(bad)).toThrow(WireProtocolError);
    }
    // Only the kind byte and a few bytes of the length.
    const stub = withHeader(OpCode.OP_MSG, 1, 0, Buffer.from([0, 0, 0, 0, 0, 0x20, 0]));
    expect(() => parseOpMsg(stub)).toThrow(/truncated BSON document/);
  });

  it("rejects a body whose declared length overruns the message or is too small", () => {
    const good = opMsg([{ kind: 0, doc: { ping: 1 } }]);
    const overrun = Buffer.from(good);
    overrun.writeInt32LE(overrun.readInt32LE(HEADER_SIZE + 5) + 1, HEADER_SIZE + 5);
    expect(() => parseOpMsg(overrun)).toThrow(/overruns the message/);
    const tiny = Buffer.from(good);
    tiny.writeInt32LE(4, HEADER_SIZE + 5);
    expect(() => parseOpMsg(tiny)).toThrow(WireProtocolError);
  });

  it("rejects a body that does not end with a null byte", () => {
    const bad = opMsg([{ kind: 0, doc: { ping: 1 } }]);
    bad[bad.length - 1] = 1;
    expect(() => parseOpMsg(bad)).toThrow(/null byte/);
  });

  it("rejects a document sequence that overruns the message or holds a truncated document", () => {
    const good = opMsg([
      { kind: 0, doc: { insert: "c" } },
      { kind: 1, identifier: "documents", docs: [{ _id: 1 }, { _id: 2 }] },
    ]);
    const bodyLength = good.readInt32LE(HEADER_SIZE + 5);
    const seqSizeAt = HEADER_SIZE + 4 + 1 + bodyLength + 1;
    const overrun = Buffer.from(good);
    overrun.writeInt32LE(overrun.readInt32LE(seqSizeAt) + 10, seqSizeAt);
    expect(() => parseOpMsg(overrun)).toThrow(/document sequence overruns/);

    // Shrink the section by 3 bytes: its last document no longer fits inside it.
    const shrunk = Buffer.from(good.subarray(0, good.length - 3));
    shrunk.writeInt32LE(shrunk.length, 0);
    shrunk.writeInt32LE(shrunk.readInt32LE(seqSizeAt) - 3, seqSizeAt);
    expect(() => parseOpMsg(shrunk)).toThrow(/OP_MSG sequence documents/);

    // A sequence cut right after its kind byte.
    const cut = withHeader(
      OpCode.OP_MSG,
      1,
      0,
      Buffer.concat([good.subarray(HEADER_SIZE, seqSizeAt), Buffer.from([5, 0])]),
    );
    expect(() => parseOpMsg(cut)).toThrow(/truncated document sequence/);

    // An identifier without its terminator.
    const unterminated = Buffer.concat([
      good.subarray(HEADER_SIZE, seqSizeAt),
      Buffer.from([8, 0, 0, 0]),
      Buffer.from("abcd", "ascii"),
    ]);
    expect(() => parseOpMsg(withHeader(OpCode.OP_MSG, 1, 0, unterminated))).toThrow(/unterminated string/);
  });
});

describe("serializeOpMsg", () => {
  it("builds a reply that parseOpMsg reads back, with responseTo set", () => {
    const body = serialize({ ok: 1, n: 3 });
    const reply = serializeOpMsg(7, 42, body);
    const header = readHeader(reply);
    expect(header).toEqual({
      messageLength: reply.length,
      requestId: 7,
      responseTo: 42,
      opCode: OpCode.OP_MSG,
    });
    expect(deserialize(parseOpMsg(reply).body)).toEqual({ ok: 1, n: 3 });
  });

  it("writes the given flags (moreToCome for exhaust replies)", () => {
    const reply = serializeOpMsg(1, 2, serialize({ ok: 1 }), OpMsgFlag.moreToCome);
    expect(parseOpMsg(reply).flags).toBe(OpMsgFlag.moreToCome);
  });
});
