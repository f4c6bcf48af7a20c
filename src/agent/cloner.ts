import type { MongoClient } from "mongodb";
import type { Codec } from "../slice/codecs.js";
import { streamForCollection } from "../protocol/agentProtocol.js";
import { Backoff, sleep, throwIfStopped, type BackoffOptions } from "./backoff.js";
import { StoppedError, isStopped } from "./errors.js";
import { describeError, silentLogger, type Logger } from "./logger.js";
import { parseExtendedJson, readIdDocument } from "./rawBson.js";
import { RawFindCursor } from "./rawFind.js";
import { filtersAfter } from "./resumeFilter.js";
import type { SliceSink } from "./sliceSink.js";
import { SliceStream } from "./sliceStream.js";
import { isTransientSourceError } from "./sourceClient.js";

/** One collection to clone, and where its stream stands on the server. */
export interface CloneTask {
  db: string;
  collection: string;
  /** The sequence number of the stream's next slice. */
  nextSequence: number;
  /** Canonical Extended JSON `{_id}` of the last acknowledged document; absent: from the start. */
  lastId?: string;
}

export interface ClonerOptions {
  client: MongoClient;
  sink: SliceSink;
  deployment: string;
  codec: Codec;
  /** Largest slice, compressed. */
  targetBytes: number;
  /** Collections cloned at once. */
  parallelism: number;
  signal?: AbortSignal;
  log?: Logger;
  /** Pause between attempts after a lost connection or killed cursor. */
  backoff?: BackoffOptions;
  /** Documents per cursor batch (default: the server's). */
  batchSize?: number;
  /**
   * Called once all of a collection's slices are acknowledged (the agent then POSTs
   * collection-done). `documents` counts what this clone sent, not what an earlier run did.
   */
  onCollectionDone?: (task: CloneTask, documents: number) => Promise<void>;
}

export interface CloneProgress {
  collectionsTotal: number;
  collectionsDone: number;
  documents: number;
  inProgress: string[];
}

/** Some collections could not be cloned; the others were. */
export class CloneIncompleteError extends Error {
  override readonly name = "CloneIncompleteError";

  constructor(readonly failures: Array<{ namespace: string; error: Error }>) {
    super(
      `${failures.length} collection(s) could not be cloned: ` +
        failures.map((f) => `${f.namespace} (${describeError(f.error)})`).join("; "),
    );
  }
}

/**
 * Clones collections into document slices: `parallelism` collections at once, each read in `_id`
 * order (`sort {_id: 1}`, `hint {_id: 1}`, raw BSON batches from the primary, see RawFindCursor)
 * into its own stream `documents/<db>.<coll>`. A collection resumes after its last acknowledged
 * `_id`; a cursor lost mid-way (connection cut, cursor killed) is re-opened after the last document
 * put into the slice builder, so nothing is read twice or skipped.
 */
export class Cloner {
  private readonly log: Logger;
  private readonly active = new Set<string>();
  private total = 0;
  private done = 0;
  private documentsSent = 0;

  constructor(private readonly options: ClonerOptions) {
    this.log = options.log ?? silentLogger;
  }

  progress(): CloneProgress {
    return {
      collectionsTotal: this.total,
      collectionsDone: this.done,
      documents: this.documentsSent,
      inProgress: [...this.active],
    };
  }

  /** Clones every task; throws CloneIncompleteError if some failed (after finishing the rest). */
  async cloneAll(tasks: CloneTask[]): Promise<void> {
    this.total += tasks.length;
    const queue = [...tasks];
    const failures: Array<{ namespace: string; error: Error }> = [];
    const worker = async () => {
      while (queue.length > 0) {
        throwIfStopped(this.options.signal);
        const task = queue.shift()!;
        const namespace = `${task.db}.${task.collection}`;
        try {
          await this.cloneCollection(task);
        } catch (error) {
          if (isStopped(error) || this.options.signal?.aborted) throw new StoppedError();
          const failure = error instanceof Error ? error : new Error(String(error));
          this.log.error("collection clone failed", { ns: namespace, reason: describeError(failure) });
          failures.push({ namespace, error: failure });
        }
      }
    };
    const workers = Array.from(
      { length: Math.max(1, Math.min(this.options.parallelism, tasks.length)) },
      worker,
    );
    const results = await Promise.allSettled(workers);
    const rejected = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
    if (rejected) throw rejected.reason;
    if (failures.length > 0) throw new CloneIncompleteError(failures);
  }

  /** Clones one collection to its end, then waits for its slices to be acknowledged. */
  async cloneCollection(task: CloneTask): Promise<number> {
    const { client, signal } = this.options;
    const namespace = `${task.db}.${task.collection}`;
    const stream = new SliceStream({
      sink: this.options.sink,
      kind: "documents",
      deployment: this.options.deployment,
      stream: streamForCollection(namespace),
      namespace,
      codec: this.options.codec,
      targetBytes: this.options.targetBytes,
      firstSequence: task.nextSequence,
    });
    let lastId: unknown = task.lastId === undefined ? undefined : parseExtendedJson(task.lastId)._id;
    this.active.add(namespace);
    this.log.info(task.lastId ? "collection clone resumed" : "collection clone started", {
      ns: namespace,
      sequence: task.nextSequence,
      after: task.lastId,
    });
    const backoff = new Backoff(this.options.backoff);
    try {
      // The ranges still to read, in _id order; recomputed from the last document read after a
      // lost cursor, so the clone continues right after it.
      let ranges = filtersAfter(lastId);
      while (ranges.length > 0) {
        throwIfStopped(signal);
        const cursor = new RawFindCursor(client, task.db, task.collection, {
          filter: ranges[0],
          sort: { _id: 1 },
          hint: { _id: 1 },
          batchSize: this.options.batchSize,
          signal,
        });
        const closeOnAbort = () => void cursor.close().catch(() => {});
        signal?.addEventListener("abort", closeOnAbort, { once: true });
        try {
          let batch: Buffer[] | undefined;
          while ((batch = await cursor.nextBatch())) {
            if (batch.length === 0) continue;
            await stream.addAll(batch);
            lastId = readIdDocument(batch[batch.length - 1])._id;
            this.documentsSent += batch.length;
            backoff.reset();
          }
          ranges = ranges.slice(1);
        } catch (error) {
          if (signal?.aborted) throw new StoppedError();
          if (!isTransientSourceError(error)) throw error;
          const delay = backoff.nextDelayMs();
          this.log.warn("clone cursor lost, re-opening after the last document read", {
            ns: namespace,
            reason: describeError(error),
            retryInMs: delay,
          });
          await sleep(delay, signal);
          ranges = filtersAfter(lastId);
        } finally {
          signal?.removeEventListener("abort", closeOnAbort);
          await cursor.close().catch(() => {});
        }
      }
      throwIfStopped(signal); // an aborted cursor may just end
      await stream.flush();
      await stream.drain();
    } finally {
      this.active.delete(namespace);
    }
    this.done++;
    this.log.info("collection cloned", { ns: namespace, documents: stream.documents, slices: stream.slices });
    await this.options.onCollectionDone?.(task, stream.documents);
    return stream.documents;
  }
}
