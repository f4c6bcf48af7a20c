import type { SliceAck } from "../protocol/agentProtocol.js";
import type { BackoffOptions } from "./backoff.js";
import { ConfigurationError, JobConflictError, StoppedError, isStopped } from "./errors.js";
import { describeError, silentLogger, type Logger } from "./logger.js";
import { withRetries } from "./serverClient.js";
import type { OutgoingSlice, SliceSink } from "./sliceSink.js";

/** Sends one slice once; the uploader retries. ServerClient is one. */
export interface SliceTransport {
  putSlice(
    slice: { stream: string; sequence: number; bytes: Buffer },
    generation: number,
    signal?: AbortSignal,
  ): Promise<SliceAck>;
}

export interface UploaderOptions {
  transport: SliceTransport;
  /** The job generation every slice is sent for (header X-Tidemark-Generation). */
  generation: number;
  /**
   * The most slice bytes held at once, queued or in flight, over every stream. A slice bigger
   * than the bound still goes, alone.
   */
  maxBytesInFlight: number;
  backoff?: BackoffOptions;
  log?: Logger;
  /** Aborting it stops every upload (pending puts and drains reject with StoppedError). */
  signal?: AbortSignal;
  /** Called once when the whole uploader fails: 409 (the job moved on) or 401/403 (the key). */
  onFatal?: (error: Error) => void;
  /** Called for each acknowledged slice, in order per stream. */
  onAcknowledged?: (slice: OutgoingSlice, ack: SliceAck) => void;
}

interface StreamState {
  name: string;
  queue: OutgoingSlice[];
  busy: boolean;
  /** The sequence the next put must carry. */
  expectedSequence?: number;
  error?: Error;
  drainWaiters: Array<{ resolve: () => void; reject: (error: Error) => void }>;
}

/**
 * Sends slices to the server with bounded memory and in order:
 *  - at most `maxBytesInFlight` bytes of slices are held (put waits for room), so memory does not
 *    grow with the data;
 *  - one slice in flight per stream, the next only after the previous is acknowledged, so what
 *    the server acknowledged of a stream is always a prefix of it;
 *  - network errors, 5xx, 429 and 507 are retried with exponential backoff and jitter, forever,
 *    without losing the slice;
 *  - a 400 is a bug in the slice: logged loudly with the server's message, and that stream stops
 *    with the error; a 409 or 401/403 stops everything (onFatal).
 */
export class Uploader implements SliceSink {
  private readonly streams = new Map<string, StreamState>();
  private readonly roomWaiters = new Set<() => void>();
  private held = 0;
  private peak = 0;
  private acknowledgedCount = 0;
  private fatal: Error | undefined;
  private readonly log: Logger;

  constructor(private readonly options: UploaderOptions) {
    this.log = options.log ?? silentLogger;
    options.signal?.addEventListener("abort", () => this.failAll(new StoppedError("uploads stopped")), {
      once: true,
    });
  }

  /** Bytes of slices queued or in flight right now. */
  get bytesHeld(): number {
    return this.held;
  }

  /** The most bytes ever held at once. */
  get peakBytesHeld(): number {
    return this.peak;
  }

  get slicesAcknowledged(): number {
    return this.acknowledgedCount;
  }

  /** The error that stopped every stream, if one did. */
  get failure(): Error | undefined {
    return this.fatal;
  }

  async put(slice: OutgoingSlice): Promise<void> {
    const state = this.stream(slice.stream);
    this.assertUsable(state);
    if (state.expectedSequence !== undefined && slice.sequence !== state.expectedSequence) {
      throw new Error(
        `slices of ${slice.stream} out of order: got #${slice.sequence}, expected #${state.expectedSequence}`,
      );
    }
    state.expectedSequence = slice.sequence + 1;
    const size = slice.bytes.length;
    while (this.held > 0 && this.held + size > this.options.maxBytesInFlight) {
      await new Promise<void>((resolve) => this.roomWaiters.add(resolve));
      this.assertUsable(state);
    }
    this.held += size;
    this.peak = Math.max(this.peak, this.held);
    state.queue.push(slice);
    void this.pump(state);
  }

  drain(stream: string): Promise<void> {
    const state = this.streams.get(stream);
    if (!state) return this.fatal ? Promise.reject(this.fatal) : Promise.resolve();
    const error = state.error ?? this.fatal;
    if (error) return Promise.reject(error);
    if (state.queue.length === 0 && !state.busy) return Promise.resolve();
    return new Promise((resolve, reject) => state.drainWaiters.push({ resolve, reject }));
  }

  private stream(name: string): StreamState {
    let state = this.streams.get(name);
    if (!state) {
      state = { name, queue: [], busy: false, drainWaiters: [] };
      this.streams.set(name, state);
    }
    return state;
  }

  private assertUsable(state: StreamState): void {
    if (this.fatal) throw this.fatal;
    if (state.error) throw state.error;
  }

  private async pump(state: StreamState): Promise<void> {
    if (state.busy) return;
    state.busy = true;
    try {
      while (state.queue.length > 0 && !state.error && !this.fatal) {
        const slice = state.queue[0];
        let ack: SliceAck;
        try {
          ack = await withRetries(
            `upload of ${slice.stream}#${slice.sequence}`,
            () => this.options.transport.putSlice(slice, this.options.generation, this.options.signal),
            { signal: this.options.signal, backoff: this.options.backoff, log: this.log },
          );
        } catch (error) {
          this.fail(state, error instanceof Error ? error : new Error(String(error)));
          return;
        }
        // Stopped while the request was out: the queue was already emptied and its bytes released.
        if (state.queue[0] !== slice) return;
        state.queue.shift();
        this.release(slice.bytes.length);
        this.acknowledgedCount++;
        this.log.debug("slice acknowledged", {
          stream: slice.stream,
          sequence: slice.sequence,
          bytes: slice.bytes.length,
          duplicate: ack.duplicate,
        });
        this.options.onAcknowledged?.(slice, ack);
      }
    } finally {
      state.busy = false;
      if (state.queue.length === 0 && !state.error && !this.fatal) {
        for (const waiter of state.drainWaiters.splice(0)) waiter.resolve();
      }
    }
  }

  private fail(state: StreamState, error: Error): void {
    if (isStopped(error)) {
      this.failAll(error);
      return;
    }
    if (error instanceof JobConflictError || error instanceof ConfigurationError) {
      this.log.warn("uploads stopped", { stream: state.name, reason: error.message });
      this.failAll(error);
      this.options.onFatal?.(error);
      return;
    }
    const hint = (error as { hint?: string }).hint;
    this.log.error("SLICE REFUSED: this is a bug; the stream stops here", {
      stream: state.name,
      sequence: state.queue[0]?.sequence,
      server: describeError(error),
      hint,
    });
    this.failStream(state, error);
  }

  private failStream(state: StreamState, error: Error): void {
    state.error ??= error;
    const dropped = state.queue.splice(0);
    this.release(dropped.reduce((sum, slice) => sum + slice.bytes.length, 0));
    for (const waiter of state.drainWaiters.splice(0)) waiter.reject(state.error);
  }

  private failAll(error: Error): void {
    this.fatal ??= error;
    for (const state of this.streams.values()) this.failStream(state, this.fatal);
    this.wakeRoomWaiters();
  }

  private release(bytes: number): void {
    this.held -= bytes;
    this.wakeRoomWaiters();
  }

  private wakeRoomWaiters(): void {
    const waiters = [...this.roomWaiters];
    this.roomWaiters.clear();
    for (const wake of waiters) wake();
  }
}
