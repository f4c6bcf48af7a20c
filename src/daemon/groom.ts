/**
 * Groom (DESIGN.md "Snapshots"): removes the snapshots the schedule's retention lets go, then the
 * blocks no snapshot refers to any more, and leftovers of interrupted file system snapshots, and
 * says how many bytes that reclaimed. A block is removed only under the store lock after checking
 * that no snapshot (complete or being written) refers to it (see src/snapshot/storeLock.ts).
 */
import { getMeta, setMeta } from "../catalog/catalog.js";
import type { Catalog } from "../catalog/index.js";
import { expiredSnapshots } from "../snapshot/policy.js";
import { withStoreLock } from "../snapshot/storeLock.js";
import type { SnapshotStores } from "./snapshotStores.js";
import type { SnapshotService } from "./snapshots.js";

export interface GroomReport {
  /** Snapshots removed because their retention ran out. */
  expiredSnapshots: string[];
  blocksRemoved: number;
  /** Bytes of blocks and files removed. */
  bytesReclaimed: number;
  partialsRemoved: number;
  /** Stores that could not be groomed, with the reason (the next groom tries again). */
  errors: string[];
}

const STORES_KEY = "snapshot_stores";

/** Remembers a store snapshots were written to, so groom visits it even once its snapshots are gone. */
export function rememberStore(catalog: Catalog, location: string): void {
  const known = knownStores(catalog);
  if (!known.includes(location)) setMeta(catalog.db, STORES_KEY, JSON.stringify([...known, location]));
}

function knownStores(catalog: Catalog): string[] {
  const raw = getMeta(catalog.db, STORES_KEY);
  return raw ? (JSON.parse(raw) as string[]) : [];
}

export interface GroomOptions {
  catalog: Catalog;
  stores: SnapshotStores;
  service: SnapshotService;
  now?: number;
  log: (line: string) => void;
}

export async function groom(options: GroomOptions): Promise<GroomReport> {
  const { catalog, stores, service, log } = options;
  const now = options.now ?? Date.now();
  const report: GroomReport = {
    expiredSnapshots: [],
    blocksRemoved: 0,
    bytesReclaimed: 0,
    partialsRemoved: 0,
    errors: [],
  };
  const snapshots = catalog.snapshots.list();
  const byDeployment = new Map<string, typeof snapshots>();
  for (const snapshot of snapshots) {
    const list = byDeployment.get(snapshot.deploymentId) ?? [];
    list.push(snapshot);
    byDeployment.set(snapshot.deploymentId, list);
  }
  for (const [deploymentId, ofDeployment] of byDeployment) {
    const deployment = catalog.deployments.get(deploymentId);
    const schedule = service.scheduleOf(deployment);
    for (const expired of expiredSnapshots(ofDeployment, schedule, now)) {
      const snapshot = ofDeployment.find((s) => s.id === expired.id)!;
      try {
        await service.delete(snapshot);
        report.expiredSnapshots.push(snapshot.id);
      } catch (error) {
        report.errors.push(`snapshot ${snapshot.id}: ${(error as Error).message}`);
      }
    }
  }
  // Stores of the snapshots just expired count too: their blocks may now be unreferenced.
  const locations = new Set([...knownStores(catalog), ...snapshots.map((s) => s.store)]);
  for (const location of locations) {
    try {
      const store = await stores.byLocation(location);
      if (store.blocks) {
        const blocks = store.blocks;
        for await (const block of blocks.list()) {
          const removed = await withStoreLock(location, async () => {
            if (catalog.snapshots.isBlockReferenced(location, block.hash)) return false;
            await blocks.delete(block.hash);
            return true;
          });
          if (removed) {
            report.blocksRemoved++;
            report.bytesReclaimed += block.size;
          }
        }
      } else if (store.files) {
        const writing = new Set(
          catalog.snapshots
            .list()
            .filter((s) => s.status === "writing")
            .map((s) => s.id),
        );
        for (const id of await store.files.partials()) {
          if (writing.has(id)) continue;
          await store.files.removePartial(id);
          report.partialsRemoved++;
        }
      }
    } catch (error) {
      report.errors.push(`store ${location}: ${(error as Error).message}`);
    }
  }
  log(
    `groom: ${report.expiredSnapshots.length} expired snapshots removed, ${report.blocksRemoved} blocks ` +
      `(${report.bytesReclaimed} bytes) reclaimed, ${report.partialsRemoved} interrupted snapshot directories removed` +
      (report.errors.length ? `; errors: ${report.errors.join("; ")}` : ""),
  );
  return report;
}
