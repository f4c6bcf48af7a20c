/**
 * The backup daemon: every `intervalMs`, for each deployment whose job is in initial_sync (once
 * T0 is known) or active, opens its head database (`<dataDir>/headdb/<id>/`) and advances it with
 * the slices the agent stored (see `deploymentWorker.ts`). An error stops that deployment's
 * daemon work; it is logged and shown by the API (`daemon.error`), never skipped.
 */
import { rmSync } from "node:fs";
import { join } from "node:path";
import type { Catalog } from "../catalog/index.js";
import type { HeadDatabase } from "../headdb/headDatabase.js";
import type { OplogStore } from "../oplogstore/oplogStore.js";
import { DeploymentWorker, type HeadStatus } from "./deploymentWorker.js";
import { pointInTimeBase, removeExpiredOplogSlices } from "./retention.js";

/** How long one pass works on one deployment before moving to the next. */
const STEP_BUDGET_MS = 1000;

export interface DaemonOptions {
  catalog: Catalog;
  store: OplogStore;
  dataDir: string;
  log: (line: string) => void;
  intervalMs?: number;
  /** How long applied oplog slices stay in the oplog store (the point-in-time window). */
  oplogRetentionMs: number;
  /** How often the retention window is enforced (default once a minute). */
  retentionCheckMs?: number;
  /** Test faults: pauses after head database transactions and phase changes (see DeploymentWorkerOptions). */
  delayMs?: number;
  phaseDelayMs?: number;
}

export class Daemon {
  private readonly workers = new Map<string, DeploymentWorker>();
  private timer?: NodeJS.Timeout;
  private running?: Promise<void>;
  private stopped = false;
  private lastRetentionCheck = 0;

  constructor(private readonly options: DaemonOptions) {}

  start(): void {
    this.timer = setInterval(() => {
      if (!this.running) this.running = this.tick().finally(() => (this.running = undefined));
    }, this.options.intervalMs ?? 200);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    await this.running;
    for (const worker of this.workers.values()) await worker.close();
    this.workers.clear();
  }

  /** The head database's status for the deployment view; undefined before the daemon opened it. */
  status(deploymentId: string): HeadStatus | undefined {
    const worker = this.workers.get(deploymentId);
    return worker?.available ? worker.status() : undefined;
  }

  /** A deployment's open head database (read only), if the daemon opened it. */
  headDatabase(deploymentId: string): HeadDatabase | undefined {
    const worker = this.workers.get(deploymentId);
    return worker?.available ? worker.headDatabase : undefined;
  }

  /** One pass over the deployments. */
  async tick(): Promise<void> {
    const { catalog, log } = this.options;
    for (const record of catalog.deployments.list()) {
      if (this.stopped) return;
      if (record.state !== "initial_sync" && record.state !== "active") continue;
      if (!record.t0) continue;
      const worker = this.workers.get(record.id) ?? this.openWorker(record.id);
      // An error stops a deployment's work for its generation; a resync starts it afresh.
      if (worker.failure?.generation === record.generation) continue;
      worker.failure = undefined;
      try {
        // A time budget per deployment and pass, so that one long initial sync does not hold
        // up the others (nor retention).
        await worker.step(record, Date.now() + STEP_BUDGET_MS);
      } catch (error) {
        const now = catalog.deployments.get(record.id);
        if (
          !now ||
          now.generation !== record.generation ||
          (now.state !== "initial_sync" && now.state !== "active")
        ) {
          // Resynced, stopped or terminated during the step (its slices may be gone): not an error.
          log(
            `${record.name}: backup daemon step interrupted (the job changed); it carries on with the new job`,
          );
          continue;
        }
        const message = error instanceof Error ? error.message : String(error);
        worker.failure = { generation: record.generation, message };
        log(
          `${record.name}: backup daemon stopped for this deployment: ${message}. ` +
            `Fix the cause and restart the server to retry, or start afresh with \`tidemark backup resync ${record.name}\`.`,
        );
      }
    }
    await this.closeTerminated();
    if (Date.now() - this.lastRetentionCheck >= (this.options.retentionCheckMs ?? 60_000)) {
      this.lastRetentionCheck = Date.now();
      await this.enforceRetention();
    }
  }

  private openWorker(deploymentId: string): DeploymentWorker {
    const { catalog, store, dataDir, log } = this.options;
    const worker = new DeploymentWorker({
      deploymentId,
      path: join(dataDir, "headdb", deploymentId),
      catalog,
      store,
      log,
      stopping: () => this.stopped,
      delayMs: this.options.delayMs,
      phaseDelayMs: this.options.phaseDelayMs,
    });
    this.workers.set(deploymentId, worker);
    return worker;
  }

  /** A terminated (or removed) deployment's head database is closed and deleted. */
  private async closeTerminated(): Promise<void> {
    for (const [deploymentId, worker] of this.workers) {
      const record = this.options.catalog.deployments.get(deploymentId);
      if (record && record.state !== "terminated") continue;
      this.workers.delete(deploymentId);
      await worker.close();
      rmSync(worker.path, { recursive: true, force: true });
      this.options.log(`${record?.name ?? deploymentId}: head database deleted (deployment terminated)`);
    }
  }

  /** Removes the applied oplog slices older than the window (see retention.ts). */
  private async enforceRetention(): Promise<void> {
    const { catalog, store, log } = this.options;
    for (const [deploymentId, worker] of this.workers) {
      if (this.stopped) return;
      const record = catalog.deployments.get(deploymentId);
      if (!worker.available) continue;
      const status = worker.status();
      // After a resync the head database may still hold the older generation's cursor.
      if (!record || worker.failure || worker.generation !== record.generation) continue;
      try {
        const nowMs = Date.now();
        const windowStart = Math.floor((nowMs - this.options.oplogRetentionMs) / 1000);
        const removed = await removeExpiredOplogSlices(catalog, store, {
          deploymentId,
          generation: record.generation,
          appliedSequence: status.oplogSlicesApplied - 1,
          windowMs: this.options.oplogRetentionMs,
          nowMs,
          keepAfterSeconds: pointInTimeBase(catalog, deploymentId, windowStart),
        });
        if (removed > 0)
          log(`${record.name}: removed ${removed} oplog slices older than the retention window`);
      } catch (error) {
        // The next pass tries again; nothing is lost by keeping a slice longer.
        log(`${record.name}: cannot enforce the oplog retention window: ${(error as Error).message}`);
      }
    }
  }
}
