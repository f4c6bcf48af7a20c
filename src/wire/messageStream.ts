import { WireProtocolError } from "./errors.js";
import { HEADER_SIZE, MAX_MESSAGE_SIZE } from "./opcodes.js";

/**
 * Cuts a TCP byte stream into whole wire messages. Chunks are kept in a list and joined only
 * when a full message is present, so a 48 MB insert batch is not copied once per packet.
 */
export class MessageStream {
  private chunks: Buffer[] = [];
  private buffered = 0;

  constructor(private readonly maxMessageSize = MAX_MESSAGE_SIZE) {}

  /** Adds bytes and returns every message completed by them (header included). */
  push(chunk: Buffer): Buffer[] {
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    const messages: Buffer[] = [];
    while (this.buffered >= 4) {
      const length = this.peekLength();
      if (length < HEADER_SIZE || length > this.maxMessageSize) {
        throw new WireProtocolError(
          `message length ${length} is outside the allowed range ${HEADER_SIZE}..${this.maxMessageSize}`,
        );
      }
      if (this.buffered < length) break;
      messages.push(this.take(length));
    }
    return messages;
  }

  private peekLength(): number {
    const first = this.chunks[0];
    if (first.length >= 4) return first.readInt32LE(0);
    return Buffer.concat(this.chunks).readInt32LE(0);
  }

  private take(length: number): Buffer {
    const all = this.chunks.length === 1 ? this.chunks[0] : Buffer.concat(this.chunks);
    // A message gets a buffer of its own: stored documents are views into it, and must not
    // keep a whole socket read (or the start of the next message) alive.
    const message = all.length === length ? all : Buffer.from(all.subarray(0, length));
    const rest = all.subarray(length);
    this.chunks = rest.length > 0 ? [rest] : [];
    this.buffered = rest.length;
    return message;
  }
}
