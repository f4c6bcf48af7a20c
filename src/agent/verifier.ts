import type { MongoClient } from "mongodb";
import type {
  DatabaseHashes,
  OpTimeJson,
  VerificationAnswer,
  VerificationRequest,
} from "../protocol/agentProtocol.js";
import { isBackedUp } from "../protocol/namespaces.js";
import { sleep, throwIfStopped } from "./backoff.js";
import { listDatabases } from "./catalogReader.js";
import { StoppedError } from "./errors.js";
import { describeError, silentLogger, type Logger } from "./logger.js";
import { newestOplogOpTime } from "./oplogQueries.js";
import { compareOpTimes, formatOpTime, toTimestamp } from "../protocol/optime.js";
import { isTransientSourceError, serverErrorCode } from "./sourceClient.js";

export interface VerifierOptions {
  client: MongoClient;
  /** Delivers an answer to the server (retrying transient failures); resolves once it is stored. */
  send: (id: string, answer: VerificationAnswer, signal?: AbortSignal) => Promise<void>;
  signal?: AbortSignal;
  log?: Logger;
  /** Hashing rounds before giving up on writes that do not stop. Default 5. */
  attempts?: number;
  /** Pause between rounds. Default 1000 ms. */
  retryDelayMs?: number;
}

const UNAUTHORIZED = 13;

/**
 * Answers `tidemark headdb verify`: hashes every backed-up database of the deployment with the
 * `dbHash` command on the primary (the driver's default read preference) and reports it with the
 * newest oplog ts, `asOf`. The server compares once its head database has applied `asOf`, so the
 * hashes must describe the data at `asOf`: they are kept only when no write reached the oplog
 * while hashing (the periodic no-op entries change no data), else hashing starts again after a
 * pause, and after the last attempt the answer is an error saying writes did not stop.
 */
export class Verifier {
  private readonly log: Logger;
  /** Requests taken (answered or being answered), so one listed again is not hashed twice. */
  private readonly taken = new Set<string>();
  private queue: Promise<void> = Promise.resolve();

  constructor(private readonly options: VerifierOptions) {
    this.log = options.log ?? silentLogger;
  }

  /** Queues the requests not seen before; one at a time, since each reads every database. */
  request(requests: VerificationRequest[]): void {
    for (const request of requests) {
      if (this.taken.has(request.id)) continue;
      this.taken.add(request.id);
      this.queue = this.queue.then(async () => {
        try {
          const answer = await this.hashDeployment();
          await this.options.send(request.id, answer, this.options.signal);
          if ("error" in answer) {
            this.log.warn("verification answered with an error", {
              verification: request.id,
              reason: answer.error,
            });
          } else {
            this.log.info("verification answered", {
              verification: request.id,
              asOf: formatOpTime(answer.asOf),
              databases: Object.keys(answer.databases).length,
            });
          }
        } catch (error) {
          if (this.options.signal?.aborted) return;
          // Let a later job poll ask again (the server stops listing it once it is settled).
          this.taken.delete(request.id);
          this.log.error("verification failed", { verification: request.id, reason: describeError(error) });
        }
      });
    }
  }

  /** Resolves when every queued request is answered (or failed). */
  idle(): Promise<void> {
    return this.queue;
  }

  /** The deployment's dbHash at a quiet moment, or why there was none. */
  async hashDeployment(): Promise<VerificationAnswer> {
    const { signal } = this.options;
    const attempts = this.options.attempts ?? 5;
    let moved = "";
    for (let attempt = 1; attempt <= attempts; attempt++) {
      throwIfStopped(signal);
      try {
        const before = await newestOplogOpTime(this.options.client);
        if (!before) return { error: "the deployment's oplog is empty: there is no optime to verify at" };
        const databases = await this.hashDatabases();
        const after = (await newestOplogOpTime(this.options.client)) ?? before;
        const write = compareOpTimes(before, after) === 0 ? undefined : await this.firstWrite(before, after);
        if (!write) return { asOf: after, databases };
        moved = `newest oplog ts moved from ${formatOpTime(before)} to ${formatOpTime(after)} while hashing (${write})`;
        this.log.info("writes during the dbHash; hashing again", { attempt, moved });
      } catch (error) {
        if (signal?.aborted) throw new StoppedError();
        if (serverErrorCode(error) === UNAUTHORIZED) {
          return {
            error: `the agent's user may not run dbHash (${describeError(error)}); grant it the dbHash action, which the read and readAnyDatabase roles include`,
          };
        }
        if (!isTransientSourceError(error) || attempt === attempts) {
          return { error: `dbHash of the deployment failed: ${describeError(error)}` };
        }
        this.log.warn("dbHash failed, retrying", { attempt, reason: describeError(error) });
      }
      if (attempt < attempts) await sleep(this.options.retryDelayMs ?? 1000, signal);
    }
    return { error: `writes did not stop: ${moved}; ${attempts} attempts` };
  }

  /** dbHash of every database the agent backs up, keeping only the collections it backs up. */
  private async hashDatabases(): Promise<DatabaseHashes> {
    const databases: DatabaseHashes = {};
    for (const db of await listDatabases(this.options.client)) {
      const reply = await this.options.client.db(db).command({ dbHash: 1 });
      const hashes = (reply.collections ?? {}) as Record<string, string>;
      databases[db] = {
        collections: Object.fromEntries(
          Object.entries(hashes).filter(([collection]) => isBackedUp(db, collection)),
        ),
      };
    }
    return databases;
  }

  /**
   * The first entry in (from, to] that changes backed-up data, described; undefined if there is
   * none (no-ops, and writes the server makes to config.* or local.*, e.g. session refreshes).
   */
  private async firstWrite(from: OpTimeJson, to: OpTimeJson): Promise<string | undefined> {
    const entries = this.options.client
      .db("local")
      .collection("oplog.rs")
      .find(
        { ts: { $gt: toTimestamp(from), $lte: toTimestamp(to) }, op: { $ne: "n" } },
        { projection: { op: 1, ns: 1 } },
      );
    for await (const entry of entries) {
      const ns = String(entry.ns);
      const dot = ns.indexOf(".");
      const db = dot < 0 ? ns : ns.slice(0, dot);
      // Commands ("db.$cmd") may touch any collection of a backed-up database: they count.
      if (isBackedUp(db, dot < 0 || ns.endsWith(".$cmd") ? undefined : ns.slice(dot + 1)))
        return `op '${String(entry.op)}' on ${ns}`;
    }
    return undefined;
  }
}
