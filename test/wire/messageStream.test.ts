import { describe, expect, it } from "vitest";
import { WireProtocolError } from "../../src/wire/errors.js";
import { withHeader } from "../../src/wire/header.js";
import { MessageStream } from "../../src/wire/messageStream.js";
import { HEADER_SIZE, MAX_MESSAGE_SIZE, OpCode } from "../../src/wire/opcodes.js";

/** A message whose body is `size` bytes counting up from `seed`, so messages differ. */
function message(requestId: number, size: number, seed = requestId): Buffer {
  const body = Buffer.alloc(size);
  for (let i = 0; i < size; i++) body[i] = (seed + i) & 0xff;
  return withHeader(OpCode.OP_MSG, requestId, 0, body);
}

function lengthOnly(length: number): Buffer {
  const bytes = Buffer.alloc(HEADER_SIZE);
  bytes.writeInt32LE(length, 0);
  return bytes;
}

describe("MessageStream (standard message header: messageLength is the first int32)", () => {
  it("returns a message that arrives in one chunk, header included", () => {
    const stream = new MessageStream();
    const m = message(1, 10);
    const out = stream.push(m);
    expect(out).toHaveLength(1);
    expect(out[0].equals(m)).toBe(true);
    expect(out[0].readInt32LE(0)).toBe(HEADER_SIZE + 10);
  });

  it("joins a message split across chunks at every possible byte, even inside the length field", () => {
    const m = message(7, 40);
    for (let cut = 1; cut < m.length; cut++) {
      const stream = new MessageStream();
      expect(stream.push(m.subarray(0, cut))).toEqual([]);
      const out = stream.push(m.subarray(cut));
      expect(out).toHaveLength(1);
      expect(out[0].equals(m)).toBe(true);
    }
  });

  it("joins a message delivered one byte at a time", () => {
    const stream = new MessageStream();
    const m = message(3, 100);
    const out: Buffer[] = [];
    for (let i = 0; i < m.length; i++) out.push(...stream.push(m.subarray(i, i + 1)));
    expect(out).toHaveLength(1);
    expect(out[0].equals(m)).toBe(true);
  });

  it("returns several messages that arrive in one chunk, in order", () => {
    const stream = new MessageStream();
    const messages = [message(1, 0), message(2, 5), message(3, 300)];
    const out = stream.push(Buffer.concat(messages));
    expect(out.map((m) => m.readInt32LE(4))).toEqual([1, 2, 3]);
    out.forEach((m, i) => expect(m.equals(messages[i])).toBe(true));
  });

  it("keeps the tail of a chunk for the next message", () => {
    const stream = new MessageStream();
    const a = message(1, 20);
    const b = message(2, 30);
    const c = message(3, 1);
    const all = Buffer.concat([a, b, c]);
    const first = stream.push(all.subarray(0, a.length + 10));
    expect(first).toHaveLength(1);
    expect(first[0].equals(a)).toBe(true);
    const rest = stream.push(all.subarray(a.length + 10));
    expect(rest).toHaveLength(2);
    expect(rest[0].equals(b)).toBe(true);
    expect(rest[1].equals(c)).toBe(true);
  });

  it("accepts a header-only message (length 16)", () => {
    const stream = new MessageStream();
    const out = stream.push(message(9, 0));
    expect(out).toHaveLength(1);
    expect(out[0].length).toBe(HEADER_SIZE);
  });

  it.each([
    ["zero", 0],
    ["negative", -1],
    ["shorter than the header", HEADER_SIZE - 1],
    ["larger than maxMessageSizeBytes", MAX_MESSAGE_SIZE + 1],
  ])("rejects a %s message length", (_what, length) => {
    const stream = new MessageStream();
    expect(() => stream.push(lengthOnly(length))).toThrow(WireProtocolError);
  });

  it("rejects a bad length as soon as its four bytes are in, without waiting for a body", () => {
    const stream = new MessageStream();
    expect(stream.push(Buffer.from([0xff, 0xff]))).toEqual([]);
    expect(() => stream.push(Buffer.from([0xff, 0x7f]))).toThrow(/message length/);
  });

  it("rejects a bad length that follows a good message in the same chunk", () => {
    const stream = new MessageStream();
    expect(() => stream.push(Buffer.concat([message(1, 4), lengthOnly(3)]))).toThrow(WireProtocolError);
  });

  it("honours a smaller configured maximum", () => {
    const stream = new MessageStream(64);
    expect(stream.push(message(1, 64 - HEADER_SIZE))).toHaveLength(1);
    expect(() => stream.push(message(2, 64 - HEADER_SIZE + 1))).toThrow(/outside the allowed range/);
  });
});
