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

export interface DaemonOptions {
  catalog: Catalog;
  store: OplogStore;
  dataDir: string;
  log: (line: string) => void;
  intervalMs?: number;
}

export class Daemon {
  private readonly workers = new Map<string, DeploymentWorker>();
  private timer?: NodeJS.Timeout;
  private running?: Promise<void>;
  private stopped = false;

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
          worker = new DeploymentWorker(record.id, join(dataDir, "headdb", record.id), catalog, store, log);
          this.workers.set(record.id, worker);
        }
        await worker.step(record);
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error);
        log(`${record.name}: backup daemon stopped for this deployment: ${message}`);
        if (worker) worker.error = message;
      }
    }
  }
}
