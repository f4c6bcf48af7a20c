import { MongoCursorExhaustedError, type FindCursor, type MongoClient } from "mongodb";
import { OPLOG_STREAM, type OpTimeJson } from "../protocol/agentProtocol.js";
import type { Codec } from "../slice/codecs.js";
import { Backoff, sleep, throwIfStopped, type BackoffOptions } from "./backoff.js";
import { OplogGapError, StoppedError } from "./errors.js";
import { describeError, silentLogger, type Logger } from "./logger.js";
import { oldestOplogOpTime } from "./oplogQueries.js";
import { compareOpTimes, formatOpTime, toTimestamp } from "../protocol/optime.js";
import { readOpTime } from "./rawBson.js";
import type { SliceSink } from "./sliceSink.js";
import { SliceStream } from "./sliceStream.js";
import { isTransientSourceError, serverErrorCode } from "./sourceClient.js";

const CAPPED_POSITION_LOST = 136;

/** Where the tail starts. */
export interface TailStart {
  /** The entry the tail starts at: T0 for a new initial sync, else the last acknowledged ts. */
  ts: OpTimeJson;
  /**
   * The entry at `ts` is already in an acknowledged slice: it must still be in the oplog (else
   * there is a gap) and is skipped. False at T0, whose entry is sent.
   */
  alreadySent: boolean;
}

export interface OplogTailerOptions {
  client: MongoClient;
  sink: SliceSink;
  deployment: string;
  codec: Codec;
  /** Largest slice, compressed. */
  targetBytes: number;
  /** A slice is cut at most this long after its first entry, so the backup stays seconds behind. */
  flushSeconds: number;
  /** The sequence number of the next oplog slice. */
  firstSequence: number;
  start: TailStart;
  signal?: AbortSignal;
  log?: Logger;
  backoff?: BackoffOptions;
  /** Longest wait of one getMore for new entries. Default min(1 s, flushSeconds). */
  awaitTimeMs?: number;
}

/**
 * Tails local.oplog.rs into oplog slices: a tailable awaitData cursor on `{ts: {$gte: position}}`
 * (raw BSON, majority read concern). The first entry of every cursor must be the one at `position` exactly; if it is
 * missing or newer, the oplog rolled over the resume point: an oplog GAP (OplogGapError), never
 * skipped silently. So is CappedPositionLost on the cursor. A connection cut re-opens the cursor
 * at the last entry put into the slice builder. Slices close at the target size or `flushSeconds`
 * after their first entry, whichever comes first.
 */
export class OplogTailer {
  private readonly log: Logger;
  private readonly stream: SliceStream;
  private position: OpTimeJson;
  private positionSent: boolean;
  private entries = 0;
  private bufferedSince: number | undefined;

  constructor(private readonly options: OplogTailerOptions) {
    this.log = options.log ?? silentLogger;
    this.position = options.start.ts;
    this.positionSent = options.start.alreadySent;
    this.stream = new SliceStream({
      sink: options.sink,
      kind: "oplog",
      deployment: options.deployment,
      stream: OPLOG_STREAM,
      codec: options.codec,
      targetBytes: options.targetBytes,
      firstSequence: options.firstSequence,
    });
  }

  /** The ts of the last entry put into a slice (or the start). */
  get lastOpTime(): OpTimeJson {
    return this.position;
  }

  /** Entries read since the start. */
  get entriesRead(): number {
    return this.entries;
  }

  /** Tails until stopped (StoppedError) or a gap (OplogGapError). */
  async run(): Promise<never> {
    const { signal } = this.options;
    const backoff = new Backoff(this.options.backoff);
    const flushMs = this.options.flushSeconds * 1000;
    const awaitMs = this.options.awaitTimeMs ?? Math.max(50, Math.min(1000, flushMs));
    this.log.info("oplog tail started", {
      from: formatOpTime(this.position),
      skipFirst: this.positionSent,
      sequence: this.stream.nextSequence,
    });
    while (true) {
      throwIfStopped(signal);
      const cursor = this.options.client
        .db("local")
        .collection("oplog.rs")
        .find(
          { ts: { $gte: toTimestamp(this.position) } },
          {
            tailable: true,
            awaitData: true,
            maxAwaitTimeMS: awaitMs,
            raw: true,
            // Only entries a majority has: an entry a failover rolls back never reaches the backup.
            readConcern: { level: "majority" },
          },
        ) as unknown as FindCursor<Uint8Array>;
      const closeOnAbort = () => void cursor.close().catch(() => {});
      signal?.addEventListener("abort", closeOnAbort, { once: true });
      let first = true;
      try {
        while (true) {
          const raw = await cursor.tryNext();
          throwIfStopped(signal);
          backoff.reset(); // the cursor answered: the connection is back
          if (raw === null) {
            if (first && (await this.positionMissing())) throw await this.gap("it is no longer in the oplog");
            if (cursor.closed) break; // a dead cursor: open another one
            await this.flushIfDue(flushMs);
            continue;
          }
          const entry = raw; // a view into the driver's reply: the slice builder copies what it keeps
          const ts = readOpTime(entry);
          if (!ts) throw new Error("an oplog entry has no ts");
          if (first) {
            first = false;
            if (compareOpTimes(ts, this.position) !== 0) {
              throw await this.gap(`the oldest entry at or after it is ${formatOpTime(ts)}`);
            }
            if (this.positionSent) continue;
          }
          await this.stream.add(entry);
          this.entries++;
          this.position = ts;
          this.positionSent = true;
          const buffered = this.stream.bufferedDocuments;
          if (buffered === 0) this.bufferedSince = undefined;
          else if (buffered === 1) this.bufferedSince = Date.now();
          await this.flushIfDue(flushMs);
        }
      } catch (error) {
        if (signal?.aborted) throw new StoppedError();
        if (error instanceof OplogGapError) throw error;
        if (serverErrorCode(error) === CAPPED_POSITION_LOST) {
          throw await this.gap(
            `the tailing cursor lost its position (CappedPositionLost: ${describeError(error)})`,
          );
        }
        if (!isTransientSourceError(error) && !(error instanceof MongoCursorExhaustedError)) throw error;
        const delay = backoff.nextDelayMs();
        this.log.warn("oplog cursor lost, re-opening at the last entry read", {
          at: formatOpTime(this.position),
          reason: describeError(error),
          retryInMs: delay,
        });
        await sleep(delay, signal);
      } finally {
        signal?.removeEventListener("abort", closeOnAbort);
        await cursor.close().catch(() => {});
      }
    }
  }

  private async flushIfDue(flushMs: number): Promise<void> {
    if (this.bufferedSince === undefined || Date.now() - this.bufferedSince < flushMs) return;
    this.bufferedSince = undefined;
    await this.stream.flush();
  }

  /** An empty first batch: the entry at the position may be gone (checked with a plain find). */
  private async positionMissing(): Promise<boolean> {
    const found = await this.options.client
      .db("local")
      .collection("oplog.rs")
      .findOne({ ts: toTimestamp(this.position) }, { projection: { ts: 1 } });
    return found === null;
  }

  private async gap(detail: string): Promise<OplogGapError> {
    let oldest: OpTimeJson | undefined;
    try {
      oldest = await oldestOplogOpTime(this.options.client);
    } catch (error) {
      this.log.warn("cannot read the oldest oplog entry for the gap report", {
        reason: describeError(error),
      });
    }
    const message =
      `oplog gap: the tail must resume at ${formatOpTime(this.position)} but ${detail}; ` +
      `the oldest entry still in the oplog is ${formatOpTime(oldest)}. Entries in between were ` +
      `overwritten before they were backed up, so a new initial sync is required ` +
      `(a larger oplog gives the agent more time to catch up after an outage)`;
    return new OplogGapError(this.position, oldest, message);
  }
}
