import type { Socket } from "node:net";
import { deserialize, type Document } from "bson";
import { serializeWithRaw } from "../bson/rawDocument.js";
import { compressMessage, decompressMessage, type CompressorName } from "../wire/compression.js";
import { WireProtocolError } from "../wire/errors.js";
import { readHeader } from "../wire/header.js";
import { MessageStream } from "../wire/messageStream.js";
import { OpCode, OpMsgFlag } from "../wire/opcodes.js";
import { opMsgPrefix, parseOpMsg } from "../wire/opMsg.js";
import { parseOpQuery, serializeOpReply } from "../wire/opQuery.js";
import type { ScramConversation } from "./auth/scram.js";
import { dispatchCommand } from "./commands/dispatch.js";
import type { Deployment } from "./deployment.js";

let nextConnectionId = 1;
let nextResponseId = 1;

/**
 * One client connection. Messages are handled one at a time, in order, as a mongod handles
 * them per connection; a message that breaks the protocol closes this connection only.
 */
export class ClientConnection {
  readonly id = nextConnectionId++;
  /** `user@db` once authenticated. */
  user?: string;
  compressor?: CompressorName;
  readonly saslConversations = new Map<number, { conversation: ScramConversation; db: string }>();
  readonly clientMetadata: Document = {};
  private readonly stream = new MessageStream();
  private chain: Promise<void> = Promise.resolve();
  private closed = false;
  private afterReplyActions: (() => void)[] = [];

  constructor(
    private readonly socket: Socket,
    private readonly deployment: Deployment,
  ) {
    socket.setNoDelay(true);
    socket.on("data", (chunk) => this.onData(chunk));
    socket.on("error", () => this.close());
    socket.on("close", () => (this.closed = true));
  }

  get remoteAddress(): string {
    return `${this.socket.remoteAddress}:${this.socket.remotePort}`;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  close(): void {
    this.closed = true;
    this.socket.destroy();
  }

  /**
   * Runs `action` once the reply to the command being handled has been handed to the socket
   * (at once if there is no reply), so a command that cuts connections still answers first.
   */
  afterReply(action: () => void): void {
    this.afterReplyActions.push(action);
  }

  private runAfterReply(): void {
    for (const action of this.afterReplyActions.splice(0)) action();
  }

  private onData(chunk: Buffer): void {
    let messages: Buffer[];
    try {
      messages = this.stream.push(chunk);
    } catch (error) {
      this.protocolError(error);
      return;
    }
    for (const message of messages) {
      this.chain = this.chain.then(() => this.handle(message)).catch((error) => this.protocolError(error));
    }
  }

  private protocolError(error: unknown): void {
    if (this.closed) return;
    const reason = error instanceof Error ? error.message : String(error);
    this.deployment.options.log(`connection ${this.id} from ${this.remoteAddress} closed: ${reason}`);
    this.close();
  }

  private async handle(message: Buffer): Promise<void> {
    if (this.closed) return;
    let compressed = false;
    let header = readHeader(message);
    if (header.opCode === OpCode.OP_COMPRESSED) {
      message = decompressMessage(message);
      header = readHeader(message);
      compressed = true;
    }
    // The reply's buffers, written back to back: an OP_MSG body is not copied behind its prefix.
    let reply: Buffer[];
    if (header.opCode === OpCode.OP_MSG) {
      const request = parseOpMsg(message);
      const body = deserializeBody(request.body);
      const db = typeof body.$db === "string" ? body.$db : "admin";
      const sequences = new Map(request.sequences.map((s) => [s.identifier, s.documents]));
      const response = await dispatchCommand(this.deployment, this, db, body, request.body, sequences);
      if (this.deployment.faults.takeDroppedReply(Object.keys(body)[0] ?? "")) {
        this.close();
        return;
      }
      if ((request.flags & OpMsgFlag.moreToCome) !== 0) {
        this.runAfterReply(); // unacknowledged write: no reply
        return;
      }
      const replyBody = serializeWithRaw(response);
      reply = [opMsgPrefix(nextResponseId++, header.requestId, replyBody.length), replyBody];
    } else if (header.opCode === OpCode.OP_QUERY) {
      const request = parseOpQuery(message);
      if (!request.fullCollectionName.endsWith(".$cmd")) {
        throw new WireProtocolError(
          `OP_QUERY is only supported for commands, not ${request.fullCollectionName}`,
        );
      }
      let body = deserializeBody(request.query);
      if (body.$query && typeof body.$query === "object") body = body.$query as Document;
      const db = request.fullCollectionName.slice(0, -".$cmd".length);
      const response = await dispatchCommand(this.deployment, this, db, body, request.query, new Map());
      reply = [serializeOpReply(nextResponseId++, header.requestId, [serializeWithRaw(response)])];
    } else {
      throw new WireProtocolError(`unsupported opcode ${header.opCode}`);
    }
    if (this.closed) {
      this.runAfterReply();
      return;
    }
    if (compressed && this.compressor) reply = [compressMessage(Buffer.concat(reply), this.compressor)];
    this.socket.cork();
    for (let i = 0; i < reply.length - 1; i++) this.socket.write(reply[i]);
    this.socket.write(reply[reply.length - 1], () => this.runAfterReply());
    this.socket.uncork();
  }
}

function deserializeBody(body: Buffer): Document {
  try {
    return deserialize(body);
  } catch (error) {
    throw new WireProtocolError(`invalid BSON in command: ${(error as Error).message}`);
  }
}
