import os from "node:os";
import type { MongoClient, MongoClientOptions } from "mongodb";
import type { AgentJob, JobState } from "../protocol/agentProtocol.js";
import type { Codec } from "../slice/codecs.js";
import { Backoff, sleep, type BackoffOptions } from "./backoff.js";
import { ConfigurationError, isStopped } from "./errors.js";
import { JobRun, defaultMaxBytesInFlight, type RunOutcome, type RunSettings } from "./jobRun.js";
import { createLogger, describeError, redactUri, type LogLevel, type Logger } from "./logger.js";
import { formatOpTime } from "../protocol/optime.js";
import { connectSource, type SourceInfo } from "./preflight.js";
import { ServerClient } from "./serverClient.js";
import type { SourceTlsOptions } from "./sourceClient.js";

export const AGENT_VERSION = "0.1.0";

export interface AgentOptions {
  /** Base URL of the Tidemark server. */
  serverUrl: string;
  /** The deployment's agent key (printed when the deployment was added). */
  agentKey: string;
  /** The deployment's id; looked up with the key when absent. */
  deploymentId?: string;
  /** Connection string of the replica set to back up (any the driver accepts). */
  sourceUri: string;
  tls?: SourceTlsOptions;
  /** Largest slice in MiB, compressed. Default: the server's setting (10). */
  sliceMb?: number;
  /** Default zstd. */
  codec?: Codec;
  /** Collections cloned at once. Default 4. */
  cloneParallelism?: number;
  /** Oplog slices close at most this long after their first entry. Default: the server's setting (5). */
  oplogFlushSeconds?: number;
  /** Bound on slice bytes queued or in flight. Default 2 × slice size × (parallelism + 1). */
  maxBytesInFlight?: number;
  /** GET job every… Default 1000 ms. */
  pollIntervalMs?: number;
  /** POST heartbeat every… Default 10 000 ms. */
  heartbeatIntervalMs?: number;
  /** How long to look for a member of the source before giving up. Default 10 s. */
  serverSelectionTimeoutMs?: number;
  /** Backoff of retried requests and re-opened cursors. */
  backoff?: BackoffOptions;
  /** Backoff between runs that failed. Default 1 s doubling to 5 min. */
  restartBackoff?: BackoffOptions;
  /** Where log lines go (one per event). Default: stderr. Pass () => {} to silence. */
  log?: (line: string) => void;
  /** Default info; debug adds a line per acknowledged slice. */
  logLevel?: LogLevel;
  /** Extra driver options (tests). */
  driverOptions?: MongoClientOptions;
  /** For tests: smaller clone batches, shorter oplog waits. */
  cloneBatchSize?: number;
  oplogAwaitMs?: number;
}

export interface AgentStatus {
  deploymentId?: string;
  state?: JobState;
  generation?: number;
  activity: string;
  source?: SourceInfo;
}

export interface RunningAgent {
  /** Stops cleanly (cursors closed, connections closed); resolves when done has settled. */
  stop(): Promise<void>;
  /**
   * Resolves when the agent stops: stop() was called or the job was terminated. Rejects with a
   * ConfigurationError (exit code 2) when the source or the key cannot work, or another error.
   */
  done: Promise<void>;
  status(): AgentStatus;
}

/**
 * Starts the backup agent: checks the source (preflight), then polls the job every second and
 * does what it says: an initial sync (T0, clone and tail), continuous tailing, missing documents;
 * it stops work on `stopped`/`inactive`/`resync_required` and exits on `terminated`. A heartbeat
 * goes to the server every 10 s.
 */
export function startAgent(options: AgentOptions): RunningAgent {
  return new Agent(options).start();
}

class Agent {
  private readonly log: Logger;
  private readonly stopController = new AbortController();
  private readonly server: ServerClient;
  private readonly restartBackoff: Backoff;
  private client: MongoClient | undefined;
  private source: SourceInfo | undefined;
  private run: JobRun | undefined;
  private restartAt = 0;
  private job: AgentJob | undefined;
  private activity = "starting";
  private pollFailures = 0;

  constructor(private readonly options: AgentOptions) {
    this.log = createLogger({ sink: options.log, level: options.logLevel });
    this.server = new ServerClient({
      serverUrl: options.serverUrl,
      agentKey: options.agentKey,
      deploymentId: options.deploymentId,
      backoff: options.backoff,
      log: this.log.child("server"),
    });
    this.restartBackoff = new Backoff(options.restartBackoff ?? { initialMs: 1000, maxMs: 300_000 });
  }

  start(): RunningAgent {
    const done = this.main();
    // The caller may only look at done later; never an unhandled rejection meanwhile.
    done.catch(() => {});
    return {
      stop: async () => {
        this.stopController.abort();
        await done.catch(() => {});
      },
      done,
      status: () => ({
        deploymentId: this.server.identified ? this.server.deploymentId : undefined,
        state: this.job?.state,
        generation: this.job?.generation,
        activity: this.currentActivity(),
        source: this.source,
      }),
    };
  }

  private currentActivity(): string {
    return this.run && !this.run.result ? this.run.activity() : this.activity;
  }

  private async main(): Promise<void> {
    const signal = this.stopController.signal;
    const heartbeatTimer = setInterval(
      () => void this.heartbeat(),
      this.options.heartbeatIntervalMs ?? 10_000,
    );
    heartbeatTimer.unref();
    try {
      this.log.info("agent starting", {
        version: AGENT_VERSION,
        server: this.options.serverUrl,
        source: redactUri(this.options.sourceUri),
      });
      const source = await connectSource({
        uri: this.options.sourceUri,
        tls: this.options.tls,
        serverSelectionTimeoutMs: this.options.serverSelectionTimeoutMs,
        driverOptions: this.options.driverOptions,
      });
      this.client = source.client;
      this.source = source.info;
      this.log.info("source checked", {
        replicaSet: this.source.setName,
        version: this.source.version,
        user: this.source.user,
        oplogFrom: formatOpTime(this.source.oldestOplog),
        oplogTo: formatOpTime(this.source.newestOplog),
      });
      const deploymentId = await this.server.identify(signal);
      this.log.info("serving deployment", { deployment: deploymentId });
      void this.heartbeat();
      while (!signal.aborted) {
        const job = await this.poll();
        if (job && (await this.reconcile(job))) break;
        await sleep(this.options.pollIntervalMs ?? 1000, signal).catch(() => {});
      }
    } catch (error) {
      if (!isStopped(error)) {
        if (error instanceof ConfigurationError) this.log.error(error.message, { hint: error.hint });
        else this.log.error("agent failed", { reason: describeError(error) });
        throw error;
      }
    } finally {
      clearInterval(heartbeatTimer);
      await this.stopRun("agent stopping");
      await this.client?.close().catch(() => {});
      this.log.info("agent stopped");
    }
  }

  /** GET job; undefined when the server cannot be reached this time. */
  private async poll(): Promise<AgentJob | undefined> {
    try {
      const job = await this.server.getJob(this.stopController.signal);
      if (this.pollFailures > 0) this.log.info("server reachable again", { failedPolls: this.pollFailures });
      this.pollFailures = 0;
      return job;
    } catch (error) {
      if (isStopped(error) || error instanceof ConfigurationError) throw error;
      this.pollFailures++;
      // The first failure, then one line a minute: the work goes on meanwhile.
      if (this.pollFailures === 1 || this.pollFailures % 60 === 0) {
        this.log.warn("cannot fetch the job", {
          reason: describeError(error),
          failedPolls: this.pollFailures,
        });
      }
      return undefined;
    }
  }

  /** Makes the agent's work match the job. True when the agent should exit (terminated). */
  private async reconcile(job: AgentJob): Promise<boolean> {
    const previous = this.job;
    this.job = job;
    if (!previous || previous.state !== job.state || previous.generation !== job.generation) {
      this.log.info("job", { state: job.state, generation: job.generation, name: job.name });
    }
    switch (job.state) {
      case "terminated":
        await this.stopRun("the backup was terminated");
        this.activity = "terminated";
        return true;
      case "inactive":
      case "stopped":
        await this.stopRun(`the backup is ${job.state}`);
        this.activity = `waiting: the backup is ${job.state}`;
        return false;
      case "resync_required":
        await this.stopRun("a resync is required");
        this.activity = "waiting: a resync is required";
        return false;
      case "initial_sync":
      case "active":
        break;
    }
    if (this.run && this.run.generation !== job.generation) {
      await this.stopRun(`generation ${job.generation} replaces ${this.run.generation}`);
      this.restartBackoff.reset();
      this.restartAt = 0;
    }
    if (this.run?.result) {
      const outcome = this.run.result;
      if (outcome.kind === "fatal") throw outcome.error;
      // After a gap the server moves the job to resync_required; never tail on across it.
      if (outcome.kind === "gap") return false;
      if (Date.now() < this.restartAt) return false;
      this.run = undefined;
    }
    if (!this.run) this.startRun(job);
    this.run!.requestMissing(job.missing);
    this.run!.requestVerifications(job.verifications);
    return false;
  }

  private startRun(job: AgentJob): void {
    const sliceMb = this.options.sliceMb ?? job.settings.sliceMb;
    const sliceBytes = Math.round(sliceMb * 1024 * 1024);
    const cloneParallelism = this.options.cloneParallelism ?? 4;
    const settings: RunSettings = {
      codec: this.options.codec ?? "zstd",
      sliceBytes,
      cloneParallelism,
      oplogFlushSeconds: this.options.oplogFlushSeconds ?? job.settings.oplogFlushSeconds,
      maxBytesInFlight:
        this.options.maxBytesInFlight ?? defaultMaxBytesInFlight(sliceBytes, cloneParallelism),
      backoff: this.options.backoff,
      cloneBatchSize: this.options.cloneBatchSize,
      oplogAwaitMs: this.options.oplogAwaitMs,
    };
    this.log.info("run starting", {
      state: job.state,
      generation: job.generation,
      t0: job.t0 ? formatOpTime(job.t0) : undefined,
      oplogFrom: job.oplog.lastTs ? formatOpTime(job.oplog.lastTs) : undefined,
      collectionsDone: job.collections.filter((c) => c.done).length,
    });
    const run = new JobRun(job, { client: this.client!, server: this.server, settings, log: this.log });
    this.run = run;
    void run.done.then((outcome) => this.onRunEnded(run, outcome));
  }

  private onRunEnded(run: JobRun, outcome: RunOutcome): void {
    switch (outcome.kind) {
      case "stopped":
        this.restartAt = 0;
        break;
      case "gap":
        this.activity = "oplog gap: waiting for a resync";
        break;
      case "conflict":
        this.log.warn("the server refused the run's work; fetching the job again", {
          reason: outcome.error.message,
        });
        this.restartAt = Date.now() + Math.min(5000, this.restartBackoff.nextDelayMs());
        break;
      case "fatal":
        this.activity = outcome.error.message;
        break;
      case "failed": {
        const delay = this.restartBackoff.nextDelayMs();
        this.restartAt = Date.now() + delay;
        this.activity = `run failed, restarting in ${Math.round(delay / 1000)} s: ${describeError(outcome.error)}`;
        this.log.error("run failed; it restarts from the acknowledged slices", {
          generation: run.generation,
          reason: describeError(outcome.error),
          restartInMs: delay,
        });
        break;
      }
    }
  }

  private async stopRun(reason: string): Promise<void> {
    const run = this.run;
    if (!run) return;
    this.run = undefined;
    if (!run.result) this.log.info("stopping work", { reason });
    await run.stop();
  }

  private async heartbeat(): Promise<void> {
    if (this.stopController.signal.aborted || !this.server.identified) return;
    try {
      await this.server.heartbeat(
        { agentVersion: AGENT_VERSION, hostname: os.hostname(), activity: this.currentActivity() },
        this.stopController.signal,
      );
    } catch (error) {
      if (!isStopped(error)) this.log.debug("heartbeat failed", { reason: describeError(error) });
    }
  }
}
