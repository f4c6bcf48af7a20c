/**
 * The backup daemon: every `intervalMs`, for each deployment whose job is in initial_sync (once
 * T0 is known) or active, opens its head database (`<dataDir>/headdb/<id>/`) and advances it with
 * the slices the agent stored (see `deploymentWorker.ts`). An error stops that deployment's
 * daemon work; it is logged and shown by the API (`daemon.error`), never skipped.
 */
import { join } from "node:path";
import type { Catalog } from "../catalog/index.js";
import type { HeadDatabase } from "../headdb/headDatabase.js";
import type { OplogStore } from "../oplogstore/oplogStore.js";
import { DeploymentWorker, type HeadStatus } from "./deploymentWorker.js";
import { removeExpiredOplogSlices } from "./retention.js";

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
    return this.workers.get(deploymentId)?.status();
  }

  /** A deployment's open head database (read only), if the daemon opened it. */
  headDatabase(deploymentId: string): HeadDatabase | undefined {
    return this.workers.get(deploymentId)?.headDatabase;
  }

  /** One pass over the deployments. */
  async tick(): Promise<void> {
    const { catalog, store, dataDir, log } = this.options;
    for (const record of catalog.deployments.list()) {
      if (this.stopped) return;
      if (record.state !== "initial_sync" && record.state !== "active") continue;
      if (!record.t0) continue;
      let worker = this.workers.get(record.id);
      if (worker?.error) continue;
      try {
        if (!worker) {
          worker = new DeploymentWorker({
            deploymentId: record.id,
            path: join(dataDir, "headdb", record.id),
            catalog,
            store,
            log,
            stopping: () => this.stopped,
            delayMs: this.options.delayMs,
            phaseDelayMs: this.options.phaseDelayMs,
          });
          this.workers.set(record.id, worker);
        }
        await worker.step(record);
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error);
        log(`${record.name}: backup daemon stopped for this deployment: ${message}`);
        if (worker) worker.error = message;
      }
    }
    if (Date.now() - this.lastRetentionCheck >= (this.options.retentionCheckMs ?? 60_000)) {
      this.lastRetentionCheck = Date.now();
      await this.enforceRetention();
    }
  }

  /** Removes the applied oplog slices older than the window (see retention.ts). */
  private async enforceRetention(): Promise<void> {
    const { catalog, store, log } = this.options;
    for (const [deploymentId, worker] of this.workers) {
      if (this.stopped) return;
      const record = catalog.deployments.get(deploymentId);
      const status = worker.status();
      // After a resync the head database may still hold the older generation's cursor.
      if (!record || worker.error || worker.generation !== record.generation) continue;
      try {
        const removed = await removeExpiredOplogSlices(catalog, store, {
          deploymentId,
          generation: record.generation,
          appliedSequence: status.oplogSlicesApplied - 1,
          windowMs: this.options.oplogRetentionMs,
          nowMs: Date.now(),
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
