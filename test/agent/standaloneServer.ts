import net from "node:net";
import { deserialize, serialize, type Document } from "bson";
import { readHeader } from "../../src/wire/header.js";
import { MessageStream } from "../../src/wire/messageStream.js";
import { OpCode } from "../../src/wire/opcodes.js";
import { parseOpMsg, serializeOpMsg } from "../../src/wire/opMsg.js";
import { parseOpQuery, serializeOpReply } from "../../src/wire/opQuery.js";

/**
 * A minimal standalone mongod over the real wire protocol: its hello has no setName (MongoDB
 * manual, "hello": `setName` is only "present if this member is a replica set member"), and every
 * other command answers ok. Enough for the driver to connect with directConnection=true.
 */
export async function startStandalone(): Promise<{ uri: string; stop(): Promise<void> }> {
  let responseId = 1;
  const sockets = new Set<net.Socket>();
  const answer = (command: Document): Document => {
    const name = Object.keys(command)[0]?.toLowerCase();
    if (name === "hello" || name === "ismaster") {
      return {
        isWritablePrimary: true,
        ismaster: true,
        maxBsonObjectSize: 16 * 1024 * 1024,
        maxMessageSizeBytes: 48_000_000,
        maxWriteBatchSize: 100_000,
        localTime: new Date(),
        logicalSessionTimeoutMinutes: 30,
        connectionId: 1,
        minWireVersion: 0,
        maxWireVersion: 21,
        readOnly: false,
        ok: 1,
      };
    }
    return { ok: 1 };
  };
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => socket.destroy());
    const stream = new MessageStream();
    socket.on("data", (chunk) => {
      for (const message of stream.push(chunk)) {
        const header = readHeader(message);
        if (header.opCode === OpCode.OP_MSG) {
          const reply = answer(deserialize(parseOpMsg(message).body));
          socket.write(serializeOpMsg(responseId++, header.requestId, serialize(reply)));
        } else if (header.opCode === OpCode.OP_QUERY) {
          const reply = answer(deserialize(parseOpQuery(message).query));
          socket.write(serializeOpReply(responseId++, header.requestId, [serialize(reply)]));
        }
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    uri: `mongodb://127.0.0.1:${port}/?directConnection=true`,
    async stop() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
