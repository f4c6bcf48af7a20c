/**
 * Writes many small byte ranges (documents) to an HTTP response through a few fixed buffers,
 * reused once the socket has taken them, rather than a new buffer per write.
 *
 * Why: a new 256 KiB buffer per write is memory outside V8's heap that only a garbage collection
 * gives back. Once the server had sat idle for a minute (V8 then shrinks its heap), that was
 * enough to make it run a full collection every few hundred milliseconds while it streamed a
 * restore: twice the server's CPU per GiB, taken from the restore's own target on a shared
 * machine. The fixed buffers also bound the memory a stream holds to `buffers × bufferBytes`.
 */
import type { ServerResponse } from "node:http";

export interface PooledWriterOptions {
  /** Buffers written or being filled at once (default 4). */
  buffers?: number;
  /** Bytes per buffer (default 256 KiB); a range larger than this is written as it is. */
  bufferBytes?: number;
}

export class PooledWriter {
  private readonly free: Buffer[] = [];
  private readonly bufferBytes: number;
  private current: Buffer | undefined;
  private used = 0;
  /** Wakes a writer waiting for a buffer (one came back) or for the response to close. */
  private wake: (() => void) | undefined;

  constructor(
    private readonly response: ServerResponse,
    { buffers = 4, bufferBytes = 256 * 1024 }: PooledWriterOptions = {},
  ) {
    this.bufferBytes = bufferBytes;
    for (let i = 0; i < buffers; i++) this.free.push(Buffer.allocUnsafe(bufferBytes));
    response.once("close", () => this.wake?.());
  }

  /** True while the client is still there to read what is written. */
  get open(): boolean {
    return !this.response.destroyed;
  }

  /**
   * Copies `ranges` in order into the buffers, writing each buffer as it fills; false once the
   * client has gone (nothing more is worth reading).
   */
  async add(ranges: readonly Uint8Array[]): Promise<boolean> {
    for (const range of ranges) {
      if (range.byteLength > this.bufferBytes) {
        if (!(await this.flush()) || !(await this.writeWhole(range))) return false;
        continue;
      }
      if (this.current && this.used + range.byteLength > this.bufferBytes && !(await this.flush()))
        return false;
      if (!this.current) {
        this.current = await this.takeBuffer();
        if (!this.current) return false;
      }
      this.current.set(range, this.used);
      this.used += range.byteLength;
    }
    return this.open;
  }

  /** Writes what the current buffer holds; false once the client has gone. */
  async flush(): Promise<boolean> {
    const buffer = this.current;
    if (!buffer || this.used === 0) return this.open;
    const bytes = buffer.subarray(0, this.used);
    this.current = undefined;
    this.used = 0;
    // The callback comes once the socket has taken the bytes, or with an error if it is gone:
    // either way the buffer is free again.
    this.response.write(bytes, () => this.release(buffer));
    return this.open;
  }

  private release(buffer: Buffer): void {
    this.free.push(buffer);
    this.wake?.();
  }

  private async takeBuffer(): Promise<Buffer | undefined> {
    while (this.open && this.free.length === 0) await this.nextWake();
    return this.open ? this.free.pop() : undefined;
  }

  private nextWake(): Promise<void> {
    return new Promise((resolve) => {
      this.wake = () => {
        this.wake = undefined;
        resolve();
      };
    });
  }

  /** A range too large for a buffer, written from where it is (after what is queued before it). */
  private async writeWhole(range: Uint8Array): Promise<boolean> {
    let written = false;
    this.response.write(range, () => {
      written = true;
      this.wake?.();
    });
    while (!written && this.open) await this.nextWake();
    return this.open;
  }
}
