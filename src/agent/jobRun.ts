import type { MongoClient } from "mongodb";
import {
  streamForCatalog,
  type AgentJob,
  type MissingRequest,
  type VerificationRequest,
} from "../protocol/agentProtocol.js";
import type { Codec } from "../slice/codecs.js";
import { encodeSlice } from "../slice/format.js";
import type { BackoffOptions } from "./backoff.js";
import {
  catalogDocuments,
  estimateClone,
  listDatabases,
  listNamespaces,
  type NamespaceInfo,
} from "./catalogReader.js";
import { Cloner, type CloneTask } from "./cloner.js";
import { ConfigurationError, JobConflictError, OplogGapError, StoppedError, isStopped } from "./errors.js";
import type { Logger } from "./logger.js";
import { MissingFetcher } from "./missingFetcher.js";
import { newestOplogOpTime } from "./oplogQueries.js";
import { OplogTailer, type TailStart } from "./oplogTailer.js";
import { formatOpTime } from "../protocol/optime.js";
import { withRetries, type ServerClient } from "./serverClient.js";
import { Uploader } from "./uploader.js";
import { Verifier } from "./verifier.js";

/** How a run slices and uploads, resolved from the agent's options and the job's settings. */
export interface RunSettings {
  codec: Codec;
  /** Largest slice, compressed, in bytes. */
  sliceBytes: number;
  cloneParallelism: number;
  oplogFlushSeconds: number;
  /** Bound on slice bytes queued or in flight. */
  maxBytesInFlight: number;
  backoff?: BackoffOptions;
  /** Documents per clone cursor batch (tests). */
  cloneBatchSize?: number;
  /** Longest getMore wait on the oplog (tests). */
  oplogAwaitMs?: number;
}

export interface RunDependencies {
  client: MongoClient;
  server: ServerClient;
  settings: RunSettings;
  log: Logger;
}

/** Why a run ended. */
export type RunOutcome =
  | { kind: "stopped" }
  | { kind: "gap"; error: OplogGapError }
  | { kind: "conflict"; error: JobConflictError }
  | { kind: "fatal"; error: ConfigurationError }
  | { kind: "failed"; error: Error };

/**
 * The default bound on slice bytes in flight: two slices per stream that can run at once. The
 * agent's memory as a whole is bounded by its settings, never by the data: this, plus per stream
 * a SliceBuilder buffer of at most 3 × the slice size (SliceStream), plus per clone cursor two raw
 * replies of about 8 MiB (RawFindCursor), plus one body being compressed at a time.
 */
export function defaultMaxBytesInFlight(sliceBytes: number, cloneParallelism: number): number {
  return 2 * sliceBytes * (cloneParallelism + 1);
}

/**
 * The work for one generation of a job in `initial_sync` or `active`: the oplog tail, the clone
 * while the initial sync needs one, and the missing-document requests. It records T0 if the job
 * has none, resumes every stream where the server's acknowledged slices end, and ends when
 * stopped, on an oplog gap (reported to the server), on a 409 from the server (the job moved on:
 * fetch it again), or on an error (the agent starts a new run later).
 */
export class JobRun {
  readonly generation: number;
  readonly done: Promise<RunOutcome>;
  private readonly stopController = new AbortController();
  private readonly workController = new AbortController();
  private readonly uploader: Uploader;
  private readonly missing: MissingFetcher;
  private readonly verifier: Verifier;
  private readonly log: Logger;
  private tailer: OplogTailer | undefined;
  private cloner: Cloner | undefined;
  private phase = "starting";
  private firstError: Error | undefined;
  private outcome: RunOutcome | undefined;

  constructor(
    private job: AgentJob,
    private readonly deps: RunDependencies,
  ) {
    this.generation = job.generation;
    this.log = deps.log;
    this.stopController.signal.addEventListener("abort", () => this.workController.abort(), { once: true });
    this.uploader = new Uploader({
      transport: deps.server,
      generation: job.generation,
      maxBytesInFlight: deps.settings.maxBytesInFlight,
      backoff: deps.settings.backoff,
      log: deps.log.child("upload"),
      signal: this.workController.signal,
      onFatal: (error) => this.fail(error),
    });
    this.missing = new MissingFetcher({
      client: deps.client,
      sink: this.uploader,
      deployment: job.deploymentId,
      codec: deps.settings.codec,
      signal: this.workController.signal,
      log: deps.log.child("missing"),
      backoff: deps.settings.backoff,
    });
    this.verifier = new Verifier({
      client: deps.client,
      send: (id, answer, signal) => deps.server.answerVerification(id, answer, signal),
      signal: this.workController.signal,
      log: deps.log.child("verify"),
    });
    this.done = this.main().then((outcome) => {
      this.outcome = outcome;
      return outcome;
    });
  }

  /** Set once the run has ended. */
  get result(): RunOutcome | undefined {
    return this.outcome;
  }

  /** Stops the run (cursors closed, uploads abandoned: the server keeps what it acknowledged). */
  async stop(): Promise<RunOutcome> {
    this.stopController.abort();
    return this.done;
  }

  /** Answers the job's missing-document requests not seen before. */
  requestMissing(requests: MissingRequest[]): void {
    if (!this.workController.signal.aborted) this.missing.request(requests);
  }

  /** Answers the job's verification requests (dbHash of the deployment) not seen before. */
  requestVerifications(requests: VerificationRequest[]): void {
    if (!this.workController.signal.aborted) this.verifier.request(requests);
  }

  /** What the run is doing, for the heartbeat and the Backup page. */
  activity(): string {
    const parts = [this.phase];
    const clone = this.cloner?.progress();
    if (clone && this.phase === "cloning") {
      parts.push(
        `${clone.collectionsDone}/${clone.collectionsTotal} collections, ${clone.documents} documents`,
      );
    }
    if (this.tailer) parts.push(`oplog at ${formatOpTime(this.tailer.lastOpTime)}`);
    return parts.join("; ");
  }

  private fail(error: Error): void {
    if (!isStopped(error)) this.firstError ??= error;
    this.workController.abort();
  }

  private async main(): Promise<RunOutcome> {
    try {
      await this.work();
    } catch (error) {
      this.fail(error instanceof Error ? error : new Error(String(error)));
    }
    this.workController.abort();
    const uploadFailure = this.uploader.failure;
    const error =
      uploadFailure instanceof JobConflictError || uploadFailure instanceof ConfigurationError
        ? uploadFailure
        : this.firstError;
    if (!error) return { kind: "stopped" };
    if (error instanceof OplogGapError) return { kind: "gap", error };
    if (error instanceof JobConflictError) return { kind: "conflict", error };
    if (error instanceof ConfigurationError) return { kind: "fatal", error };
    return { kind: "failed", error };
  }

  private async work(): Promise<void> {
    const signal = this.workController.signal;
    const { server } = this.deps;
    if (this.job.state === "initial_sync" && !this.job.t0) await this.recordT0();
    const job = this.job;
    let start: TailStart;
    if (job.oplog.lastTs) start = { ts: job.oplog.lastTs, alreadySent: true };
    else if (job.t0) start = { ts: job.t0, alreadySent: false };
    else throw new Error(`the job is ${job.state} but has neither T0 nor an acknowledged oplog position`);

    this.tailer = new OplogTailer({
      client: this.deps.client,
      sink: this.uploader,
      deployment: job.deploymentId,
      codec: this.deps.settings.codec,
      targetBytes: this.deps.settings.sliceBytes,
      flushSeconds: this.deps.settings.oplogFlushSeconds,
      firstSequence: job.oplog.nextSequence,
      start,
      signal,
      log: this.log.child("oplog"),
      backoff: this.deps.settings.backoff,
      awaitTimeMs: this.deps.settings.oplogAwaitMs,
    });
    const tail = this.tailer.run().catch(async (error: unknown) => {
      if (error instanceof OplogGapError) {
        this.log.error("OPLOG GAP: tailing stops; the server will require a resync", {
          resumeAt: formatOpTime(error.resumeTs),
          oldest: formatOpTime(error.oldestTs),
        });
        this.phase = "oplog gap";
        await server.reportOplogGap(
          { resumeTs: error.resumeTs, oldestTs: error.oldestTs, message: error.message },
          this.stopController.signal,
        );
      }
      throw error;
    });
    const work: Array<Promise<unknown>> = [tail];
    if (job.state === "initial_sync" && !job.cloneCompleteAt) work.push(this.clone(job));
    else this.phase = "tailing the oplog";
    for (const task of work) {
      task.catch((error: unknown) => this.fail(error instanceof Error ? error : new Error(String(error))));
    }
    await Promise.allSettled(work);
    if (!signal.aborted) throw new Error("the oplog tail ended unexpectedly");
  }

  /** A new initial sync: T0 = the newest oplog entry, then the estimate, then POST start. */
  private async recordT0(): Promise<void> {
    const { client, server } = this.deps;
    const signal = this.workController.signal;
    this.phase = "recording T0";
    const t0 = await newestOplogOpTime(client);
    if (!t0) throw new Error("the oplog is empty: cannot record T0");
    const databases = await listDatabases(client);
    let collections = 0;
    for (const db of databases) {
      collections += (await listNamespaces(client, db)).filter((ns) => ns.type === "collection").length;
    }
    const estimate = await estimateClone(client, databases, collections, this.log);
    await server.startInitialSync({ t0, estimate }, signal);
    this.log.info("initial sync started", {
      t0: formatOpTime(t0),
      databases: databases.length,
      collections,
      estimatedBytes: estimate.bytes,
      estimatedDocuments: estimate.documents,
    });
    const job = await withRetries("GET job", () => server.getJob(signal), {
      signal,
      backoff: this.deps.settings.backoff,
      log: this.log,
    });
    if (job.generation !== this.generation) {
      throw new JobConflictError(409, "GENERATION_CHANGED", "the job changed generation during the start");
    }
    if (!job.t0) throw new Error("the server did not record T0");
    this.job = job;
  }

  /** Catalogs, then every collection not done, then clone-done with T1. */
  private async clone(job: AgentJob): Promise<void> {
    const { client, server, settings } = this.deps;
    const signal = this.workController.signal;
    this.phase = "cloning";
    const cloneLog = this.log.child("clone");
    const tasks: CloneTask[] = [];
    const listed = new Set<string>();
    const catalogStreams: string[] = [];
    for (const db of await listDatabases(client)) {
      const namespaces = await listNamespaces(client, db);
      if (!job.catalogs.includes(db)) {
        catalogStreams.push(await this.sendCatalog(job, db, namespaces));
      }
      for (const info of namespaces) {
        if (info.type !== "collection") continue;
        listed.add(info.namespace);
        const resume = job.collections.find((c) => c.namespace === info.namespace);
        if (resume?.done) continue;
        tasks.push({
          db,
          collection: info.name,
          nextSequence: resume?.nextSequence ?? 0,
          lastId: resume?.lastId,
        });
      }
    }
    // Streams the server has but the deployment no longer does: dropped since (the oplog says so).
    for (const resume of job.collections) {
      if (resume.done || listed.has(resume.namespace)) continue;
      cloneLog.info("collection dropped since its clone began; marking it done", { ns: resume.namespace });
      await server.collectionDone({ namespace: resume.namespace, documents: 0 }, signal);
    }
    this.cloner = new Cloner({
      client,
      sink: this.uploader,
      deployment: job.deploymentId,
      codec: settings.codec,
      targetBytes: settings.sliceBytes,
      parallelism: settings.cloneParallelism,
      signal,
      log: cloneLog,
      backoff: settings.backoff,
      batchSize: settings.cloneBatchSize,
      onCollectionDone: async (task, documents) => {
        await server.collectionDone({ namespace: `${task.db}.${task.collection}`, documents }, signal);
      },
    });
    cloneLog.info("clone started", {
      collections: tasks.length,
      alreadyDone: job.collections.filter((c) => c.done).length,
      parallelism: settings.cloneParallelism,
    });
    await this.cloner.cloneAll(tasks);
    for (const stream of catalogStreams) await this.uploader.drain(stream);
    if (signal.aborted) throw new StoppedError();
    const t1 = await newestOplogOpTime(client);
    if (!t1) throw new Error("the oplog is empty: cannot record T1");
    await server.cloneDone({ t1 }, signal);
    const progress = this.cloner.progress();
    cloneLog.info("clone complete", { t1: formatOpTime(t1), documents: progress.documents });
    this.phase = "clone complete, tailing the oplog";
  }

  /** One catalog slice for `db` (stream catalog/<db>, sequence 0): its collections and views. */
  private async sendCatalog(job: AgentJob, db: string, namespaces: NamespaceInfo[]): Promise<string> {
    const stream = streamForCatalog(db);
    const documents = await catalogDocuments(this.deps.client, namespaces);
    const bytes = encodeSlice(
      { kind: "catalog", deployment: job.deploymentId, stream, sequence: 0, namespace: db },
      documents,
      this.deps.settings.codec,
    );
    await this.uploader.put({ stream, sequence: 0, bytes, documents: documents.length });
    this.log.child("clone").info("catalog queued", { db, collections: documents.length });
    return stream;
  }
}
