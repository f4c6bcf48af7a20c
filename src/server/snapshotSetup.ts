/**
 * The snapshot side of the server: stores (with encryption when a master key is given), the
 * service that takes and verifies snapshots, and the scheduler (schedule, groom, integrity job).
 */
import type { Catalog } from "../catalog/index.js";
import type { Daemon } from "../daemon/daemon.js";
import { SnapshotScheduler } from "../daemon/snapshotScheduler.js";
import { SnapshotService } from "../daemon/snapshots.js";
import { SnapshotStores } from "../daemon/snapshotStores.js";
import { resolveSchedule, type SnapshotScheduleInput } from "../snapshot/policy.js";
import { openSealer } from "./encryptionSetup.js";
import type { ServerConfig } from "./options.js";

export interface SnapshotSetupOptions {
  catalog: Catalog;
  daemon: Daemon;
  config: ServerConfig;
  dataDir: string;
  log: (line: string) => void;
  env?: Record<string, string | undefined>;
}

export async function startSnapshots(options: SnapshotSetupOptions) {
  const { catalog, daemon, config, dataDir, log } = options;
  try {
    resolveSchedule(config.snapshotSchedule as SnapshotScheduleInput | undefined, null);
  } catch (error) {
    throw new Error(`invalid snapshotSchedule in the server configuration: ${(error as Error).message}`);
  }
  const sealer = openSealer(catalog, config, options.env ?? process.env, log);
  const stores = new SnapshotStores({ dataDir, s3: config.s3, sealer });
  const service = new SnapshotService({
    catalog,
    stores,
    daemon,
    log,
    defaultStore: config.snapshotStore,
    schedule: config.snapshotSchedule as SnapshotScheduleInput | undefined,
    blockBytes: config.snapshotBlockBytes,
    delayMs: Number(process.env.TIDEMARK_FAULT_SNAPSHOT_DELAY_MS ?? 0) || undefined,
  });
  service.recoverInterrupted();
  const scheduler = new SnapshotScheduler({
    catalog,
    service,
    stores,
    log,
    groomIntervalMs: config.groomIntervalMinutes * 60_000,
    integrityIntervalMs: config.integrityCheckDays * 86_400_000,
  });
  return { service, stores, scheduler };
}
