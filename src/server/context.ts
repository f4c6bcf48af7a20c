import type { Catalog } from "../catalog/index.js";
import type { Daemon } from "../daemon/daemon.js";
import type { SnapshotScheduler } from "../daemon/snapshotScheduler.js";
import type { SnapshotService } from "../daemon/snapshots.js";
import type { SnapshotStores } from "../daemon/snapshotStores.js";
import type { OplogStore } from "../oplogstore/oplogStore.js";
import type { RestoreJobs } from "../restore/jobs/index.js";
import type { ServerConfig } from "./options.js";

/** What every route handler works with. */
export interface ServerContext {
  catalog: Catalog;
  store: OplogStore;
  config: ServerConfig;
  log: (line: string) => void;
  /** The backup daemon, unless started with `daemon: false`. */
  daemon?: Daemon;
  /** Snapshots (with the daemon): taking, schedule, groom, integrity. */
  snapshots?: { service: SnapshotService; stores: SnapshotStores; scheduler: SnapshotScheduler };
  /** Restore jobs (with the daemon: they read its snapshot stores). */
  restores?: RestoreJobs;
}
