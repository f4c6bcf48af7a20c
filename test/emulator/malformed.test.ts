import net from "node:net";
import { deserialize, serialize, type Document } from "bson";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { crc32c } from "../../src/wire/crc32c.js";
import { withHeader } from "../../src/wire/header.js";
import { OpCode, OpMsgFlag } from "../../src/wire/opcodes.js";
import { withEmulator, type EmulatorFixture } from "../helpers/emulator.js";

/*
 * Raw sockets sending messages that break the wire protocol. mongod closes the connection of a
 * client whose framing it cannot follow (bad messageLength, unknown opcode, OP_MSG checksum
 * mismatch); the emulator does that for every malformed message, for that connection only.
 */

/** A raw client that collects replies and records when the server closes it. */
class RawClient {
  readonly socket: net.Socket;
  private received = Buffer.alloc(0);
  private waiters: (() => void)[] = [];
  readonly closed: Promise<void>;
  isClosed = false;

  private constructor(socket: net.Socket) {
    this.socket = socket;
    socket.on("data", (chunk) => {
      this.received = Buffer.concat([this.received, chunk]);
      for (const wake of this.waiters.splice(0)) wake();
    });
    socket.on("error", () => {});
    this.closed = new Promise((resolve) =>
      socket.on("close", () => {
        this.isClosed = true;
        for (const wake of this.waiters.splice(0)) wake();
        resolve();
      }),
    );
  }

  static connect(port: number): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const socket = net.connect(port, "127.0.0.1", () => resolve(new RawClient(socket)));
      socket.once("error", reject);
    });
  }

  /** Sends a command as OP_MSG and returns the reply body. */
  async command(body: Document, requestId = 1, checksum = false): Promise<Document> {
    this.socket.write(opMsg(body, { requestId, checksum }));
    return this.reply(requestId);
  }

  /** Waits for the next whole reply, checks it answers `requestId`, returns its body. */
  async reply(requestId: number): Promise<Document> {
    while (this.received.length < 4 || this.received.length < this.received.readInt32LE(0)) {
      if (this.isClosed) throw new Error("connection closed before the reply");
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
    const length = this.received.readInt32LE(0);
    const reply = this.received.subarray(0, length);
    this.received = this.received.subarray(length);
    expect(reply.readInt32LE(8)).toBe(requestId); // responseTo
    expect(reply.readInt32LE(12)).toBe(OpCode.OP_MSG);
    expect(reply.readUInt32LE(16)).toBe(0); // flagBits
    expect(reply[20]).toBe(0); // a kind-0 section
    return deserialize(reply.subarray(21));
  }

  destroy(): void {
    this.socket.destroy();
  }
}

function opMsg(body: Document | Buffer, options: { requestId?: number; checksum?: boolean } = {}): Buffer {
  const bson = Buffer.isBuffer(body) ? body : Buffer.from(serialize(body));
  const flags = Buffer.alloc(4);
  flags.writeUInt32LE(options.checksum ? OpMsgFlag.checksumPresent : 0, 0);
  const payload = Buffer.concat([flags, Buffer.from([0]), bson, Buffer.alloc(options.checksum ? 4 : 0)]);
  const message = withHeader(OpCode.OP_MSG, options.requestId ?? 1, 0, payload);
  if (options.checksum) {
    message.writeUInt32LE(crc32c(message.subarray(0, message.length - 4)), message.length - 4);
  }
  return message;
}

const ping = { ping: 1, $db: "admin" };

const malformed: [string, () => Buffer, RegExp][] = [
  [
    "a message length shorter than the header",
    () => {
      const m = opMsg(ping);
      m.writeInt32LE(3, 0);
      return m;
    },
    /message length 3 is outside/,
  ],
  [
    "a message length above maxMessageSizeBytes",
    () => {
      const m = opMsg(ping);
      m.writeInt32LE(48_000_001, 0);
      return m;
    },
    /message length 48000001 is outside/,
  ],
  [
    "truncated BSON in an OP_MSG body",
    () => {
      const bson = Buffer.from(serialize(ping));
      bson.writeInt32LE(bson.length + 50, 0); // claims more bytes than the message holds
      return opMsg(bson);
    },
    /OP_MSG body: BSON document length \d+ overruns the message/,
  ],
  [
    "invalid BSON inside a well-framed OP_MSG body",
    () => {
      const bson = Buffer.from(serialize(ping));
      bson[4] = 0x77; // not a BSON element type
      return opMsg(bson);
    },
    /invalid BSON in command/,
  ],
  [
    "an unknown opcode",
    () => {
      const m = opMsg(ping);
      m.writeInt32LE(2010, 12); // OP_COMMAND, removed in MongoDB 4.2
      return m;
    },
    /unsupported opcode 2010/,
  ],
  [
    "an OP_MSG checksum mismatch",
    () => {
      const m = opMsg(ping, { checksum: true });
      m[m.length - 2] ^= 0xff;
      return m;
    },
    /checksum mismatch/,
  ],
  [
    "garbage bytes (an HTTP request on the driver port)",
    () => Buffer.from("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
    /message length/,
  ],
  [
    "garbage bytes with a plausible length",
    () => {
      const m = Buffer.alloc(64, 0xa5);
      m.writeInt32LE(64, 0);
      return m;
    },
    /unsupported opcode/,
  ],
];

describe("emulator: malformed messages close that connection only", () => {
  let fx: EmulatorFixture;
  const logs: string[] = [];
  beforeAll(async () => {
    fx = await withEmulator({ log: (line) => logs.push(line) });
  });
  afterAll(async () => fx?.close());

  it("answers well-formed OP_MSGs on a raw socket, with and without a checksum", async () => {
    const raw = await RawClient.connect(fx.emulator.port);
    expect(await raw.command(ping, 1)).toMatchObject({ ok: 1 });
    expect(await raw.command({ hello: 1, $db: "admin" }, 2, true)).toMatchObject({ ok: 1, setName: "rs0" });
    expect(raw.isClosed).toBe(false);
    raw.destroy();
  });

  it.each(malformed)("%s", async (what, build, reason) => {
    const bystander = await RawClient.connect(fx.emulator.port);
    expect(await bystander.command(ping)).toMatchObject({ ok: 1 });
    const victim = await RawClient.connect(fx.emulator.port);
    expect(await victim.command(ping)).toMatchObject({ ok: 1 });
    const before = logs.length;

    victim.socket.write(build());
    await victim.closed;
    expect(victim.isClosed).toBe(true);

    // The reason is logged, naming the connection.
    const lines = logs.slice(before);
    expect(
      lines.some((line) => /^connection \d+ from 127\.0\.0\.1:\d+ closed: /.test(line) && reason.test(line)),
    ).toBe(true);
    // The other raw connection is untouched and still answered.
    expect(bystander.isClosed).toBe(false);
    expect(await bystander.command({ hello: 1, $db: "admin" }, 2)).toMatchObject({
      ok: 1,
      isWritablePrimary: true,
    });
    bystander.destroy();
    // And so is the driver.
    const coll = fx.client.db("malformed").collection("after");
    await coll.insertOne({ after: what });
    expect(await coll.countDocuments({ after: what })).toBe(1);
  });

  it("closes on a malformed message that follows a good one in the same packet", async () => {
    const raw = await RawClient.connect(fx.emulator.port);
    const bad = opMsg(ping);
    bad.writeInt32LE(2, 0);
    raw.socket.write(Buffer.concat([opMsg({ ping: 1, $db: "admin" }, { requestId: 9 }), bad]));
    await raw.closed;
    expect(raw.isClosed).toBe(true);
    expect(await fx.client.db("admin").command({ ping: 1 })).toMatchObject({ ok: 1 });
  });

  it("forgets a closed connection", async () => {
    const raw = await RawClient.connect(fx.emulator.port);
    await raw.command(ping);
    const count = fx.emulator.deployment.connectionCount;
    raw.socket.write(Buffer.from("garbage!"));
    await raw.closed;
    await vi.waitFor(() => expect(fx.emulator.deployment.connectionCount).toBe(count - 1), {
      timeout: 5000,
    });
  });
});
