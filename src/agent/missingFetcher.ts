import type { Document, FindCursor, MongoClient } from "mongodb";
import { streamForMissing, type MissingRequest, type OpTimeJson } from "../protocol/agentProtocol.js";
import type { Codec } from "../slice/codecs.js";
import { encodeSlice } from "../slice/format.js";
import { Backoff, sleep, throwIfStopped, type BackoffOptions } from "./backoff.js";
import { StoppedError } from "./errors.js";
import { describeError, silentLogger, type Logger } from "./logger.js";
import { newestOplogOpTime } from "./oplogQueries.js";
import { toTimestamp } from "../protocol/optime.js";
import { parseExtendedJson } from "./rawBson.js";
import type { SliceSink } from "./sliceSink.js";
import { isTransientSourceError } from "./sourceClient.js";

export interface MissingFetcherOptions {
  client: MongoClient;
  sink: SliceSink;
  deployment: string;
  codec: Codec;
  signal?: AbortSignal;
  log?: Logger;
  backoff?: BackoffOptions;
}

/** `db` and collection of a namespace (collection names may contain dots, database names not). */
export function splitNamespace(namespace: string): { db: string; collection: string } {
  const dot = namespace.indexOf(".");
  if (dot <= 0 || dot === namespace.length - 1) throw new Error(`not a namespace: '${namespace}'`);
  return { db: namespace.slice(0, dot), collection: namespace.slice(dot + 1) };
}

/**
 * Answers the daemon's requests for missing documents: reads the documents that still exist
 * (`{_id: {$in: ids}}`, raw BSON) and uploads them as one `missing` slice, stream
 * `missing/<requestId>`, sequence 0, whose `lastTs` is the newest oplog optime read after the
 * documents. Zero documents is a valid answer (they were deleted since).
 */
export class MissingFetcher {
  private readonly log: Logger;
  /** Requests taken (answered or being answered), so a request listed again is not fetched twice. */
  private readonly taken = new Set<string>();
  private queue: Promise<void> = Promise.resolve();

  constructor(private readonly options: MissingFetcherOptions) {
    this.log = options.log ?? silentLogger;
  }

  /** Queues the requests not seen before; they are answered one at a time, in order. */
  request(requests: MissingRequest[]): void {
    for (const request of requests) {
      if (this.taken.has(request.id)) continue;
      this.taken.add(request.id);
      this.queue = this.queue.then(async () => {
        try {
          await this.answer(request);
        } catch (error) {
          if (this.options.signal?.aborted) return;
          // Let a later job poll ask again.
          this.taken.delete(request.id);
          this.log.error("missing documents request failed", {
            request: request.id,
            reason: describeError(error),
          });
        }
      });
    }
  }

  /** Resolves when every queued request is answered (or failed). */
  idle(): Promise<void> {
    return this.queue;
  }

  /** Fetches and uploads the answer to one request; resolves once it is acknowledged. */
  async answer(request: MissingRequest): Promise<number> {
    const { signal } = this.options;
    const ids = parseExtendedJson(request.ids).ids as unknown[];
    if (!Array.isArray(ids)) throw new Error(`missing request ${request.id}: 'ids' is not an array`);
    const { db, collection } = splitNamespace(request.namespace);
    const backoff = new Backoff(this.options.backoff);
    let documents: Buffer[];
    let readAfter: OpTimeJson | undefined;
    while (true) {
      throwIfStopped(signal);
      try {
        const cursor = this.options.client
          .db(db)
          .collection(collection)
          .find({ _id: { $in: ids } } as Document, {
            raw: true,
            sort: { _id: 1 },
          }) as unknown as FindCursor<Uint8Array>;
        documents = (await cursor.toArray()).map((raw) => Buffer.from(raw));
        // The daemon must apply the oplog at least up to here before the head database is
        // consistent again: every change the documents show is at or before this optime.
        readAfter = await newestOplogOpTime(this.options.client);
        break;
      } catch (error) {
        if (signal?.aborted) throw new StoppedError();
        if (!isTransientSourceError(error)) throw error;
        const delay = backoff.nextDelayMs();
        this.log.warn("missing documents query failed, retrying", {
          request: request.id,
          reason: describeError(error),
          retryInMs: delay,
        });
        await sleep(delay, signal);
      }
    }
    const stream = streamForMissing(request.id);
    const bytes = encodeSlice(
      {
        kind: "missing",
        deployment: this.options.deployment,
        stream,
        sequence: 0,
        namespace: request.namespace,
        ...(readAfter ? { lastTs: toTimestamp(readAfter) } : {}),
      },
      documents,
      this.options.codec,
    );
    await this.options.sink.put({ stream, sequence: 0, bytes, documents: documents.length });
    await this.options.sink.drain(stream);
    this.log.info("missing documents sent", {
      request: request.id,
      ns: request.namespace,
      asked: ids.length,
      found: documents.length,
    });
    return documents.length;
  }
}
