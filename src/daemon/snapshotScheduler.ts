/**
 * The snapshot lifecycle on a clock: scheduled snapshots (when a deployment's interval has passed),
 * groom (every `groomIntervalMs`), and the integrity job (each complete snapshot read back and
 * checked every `integrityIntervalMs`, one at a time). Errors are logged; the next tick tries again.
 */
import type { Catalog } from "../catalog/index.js";
import { scheduledSnapshotDue } from "../snapshot/policy.js";
import { groom, type GroomReport } from "./groom.js";
import type { SnapshotStores } from "./snapshotStores.js";
import type { SnapshotService } from "./snapshots.js";

const REFUSAL_PAUSE_MS = 10_000;

export interface SnapshotSchedulerOptions {
  catalog: Catalog;
  service: SnapshotService;
  stores: SnapshotStores;
  log: (line: string) => void;
  groomIntervalMs: number;
  integrityIntervalMs: number;
  tickMs?: number;
}

export class SnapshotScheduler {
  private timer?: NodeJS.Timeout;
  private running?: Promise<void>;
  private lastGroom = Date.now();
  private grooming?: Promise<GroomReport>;
  private checking?: Promise<unknown>;
  /** When a deployment's scheduled snapshot last could not start, so the log says it now and then, not every tick. */
  private readonly refusedAt = new Map<string, number>();

  constructor(private readonly options: SnapshotSchedulerOptions) {}

  start(): void {
    this.timer = setInterval(() => {
      if (!this.running) this.running = this.tick().finally(() => (this.running = undefined));
    }, this.options.tickMs ?? 1000);
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.running;
    await this.grooming;
  }

  /** Runs groom now (one at a time: a second call joins the one under way). */
  groom(): Promise<GroomReport> {
    this.grooming ??= groom({ ...this.options }).finally(() => {
      this.grooming = undefined;
      this.lastGroom = Date.now();
    });
    return this.grooming;
  }

  private async tick(): Promise<void> {
    const { catalog, service, log } = this.options;
    const now = Date.now();
    for (const deployment of catalog.deployments.list()) {
      if (deployment.state !== "active") continue;
      const snapshots = catalog.snapshots.forDeployment(deployment.id);
      if (!scheduledSnapshotDue(snapshots, service.scheduleOf(deployment), now)) continue;
      if (now - (this.refusedAt.get(deployment.id) ?? -Infinity) < REFUSAL_PAUSE_MS) continue;
      try {
        await service.take(deployment, "scheduled");
        this.refusedAt.delete(deployment.id);
      } catch (error) {
        // Not ready yet (the daemon has not opened the head database) or the store is down.
        this.refusedAt.set(deployment.id, now);
        log(`${deployment.name}: scheduled snapshot not started: ${(error as Error).message}`);
      }
    }
    if (now - this.lastGroom >= this.options.groomIntervalMs) await this.groom().catch(() => undefined);
    if (!this.checking) {
      const due = catalog.snapshots.dueForVerification(now - this.options.integrityIntervalMs)[0];
      if (due) {
        this.checking = service.verify(due).finally(() => (this.checking = undefined));
      }
    }
  }
}
