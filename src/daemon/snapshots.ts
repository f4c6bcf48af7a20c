/**
 * Snapshots of the deployments' head databases: taken on demand or by the schedule, one at a
 * time per deployment, in the background; deleted; verified (DESIGN.md "Snapshots"). The
 * catalog is the record: a snapshot is `writing` until its manifest is stored with `complete`,
 * so one cut off by a crash is never listed as complete (`failInterrupted` at start).
 */
import type { Catalog } from "../catalog/index.js";
import type { DeploymentRecord } from "../catalog/deployments.js";
import {
  INTERRUPTED,
  type CompletedSnapshot,
  type SnapshotRecord,
  type SnapshotTrigger,
} from "../catalog/snapshots.js";
import { manifestBlocks, parseManifest } from "../snapshot/manifest.js";
import { resolveSchedule, snapshotClasses, type SnapshotScheduleInput } from "../snapshot/policy.js";
import { verifySnapshot, type SnapshotVerification } from "../snapshot/verify.js";
import { writeSnapshot, type SnapshotProgress, type WrittenSnapshot } from "../snapshot/writer.js";
import type { Daemon } from "./daemon.js";
import { rememberStore } from "./groom.js";
import type { SnapshotStores } from "./snapshotStores.js";

export interface SnapshotServiceOptions {
  catalog: Catalog;
  stores: SnapshotStores;
  daemon?: Daemon;
  log: (line: string) => void;
  /** The server's store spec, for deployments without their own. */
  defaultStore: string;
  /** The server's schedule (a deployment's own settings go over it). */
  schedule?: SnapshotScheduleInput;
  blockBytes?: number;
  /** Test fault: slows snapshots down (see WriteSnapshotOptions.delayMs). */
  delayMs?: number;
}

/** A refusal the API turns into a 4xx: `code` for programs, `hint` for people. */
export class SnapshotRequestError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly hint?: string,
  ) {
    super(message);
  }
}

interface Running {
  promise: Promise<void>;
  progress?: SnapshotProgress;
  cancelled?: string;
}

export class SnapshotService {
  private readonly running = new Map<string, Running>();
  private readonly verifying = new Map<string, Promise<SnapshotVerification | undefined>>();
  private stopping = false;

  constructor(private readonly options: SnapshotServiceOptions) {}

  /** At start: snapshots left `writing` by a crash are failed, so they are never taken for complete. */
  recoverInterrupted(): void {
    for (const snapshot of this.options.catalog.snapshots.failInterrupted())
      this.options.log(
        `${snapshot.deploymentName}: snapshot ${snapshot.id} was cut off by a stop: ${INTERRUPTED}`,
      );
  }

  /** The store spec a deployment's snapshots go to. */
  storeSpec(deployment: DeploymentRecord): string {
    return deployment.snapshotStore ?? this.options.defaultStore;
  }

  /** A deployment's schedule (the server's when the deployment is gone from the catalog). */
  scheduleOf(deployment: Pick<DeploymentRecord, "snapshotSchedule"> | undefined) {
    return resolveSchedule(this.options.schedule, deployment?.snapshotSchedule ?? null);
  }

  /** Progress of a snapshot being written here, if it is. */
  progress(snapshotId: string): SnapshotProgress | undefined {
    return this.running.get(snapshotId)?.progress;
  }

  /** Starts a snapshot; it is written in the background (`wait` resolves when it ends). */
  async take(
    deployment: DeploymentRecord,
    trigger: SnapshotTrigger,
    options: { expiresAt?: number | null } = {},
  ): Promise<SnapshotRecord> {
    const { catalog } = this.options;
    if (this.stopping) throw new SnapshotRequestError(503, "STOPPING", "the server is stopping");
    if (deployment.state !== "active") {
      throw new SnapshotRequestError(
        409,
        "NOT_READY",
        `deployment '${deployment.name}' is ${deployment.state}${deployment.phase ? ` (${deployment.phase})` : ""}: ` +
          "a snapshot needs a complete head database",
        deployment.state === "initial_sync"
          ? "wait for the initial sync to complete (tidemark deployments show NAME)"
          : `start the backup first: tidemark backup start ${deployment.name}`,
      );
    }
    const head = this.options.daemon?.headDatabase(deployment.id);
    if (!head) {
      throw new SnapshotRequestError(
        409,
        "NOT_READY",
        `deployment '${deployment.name}': the backup daemon has not opened its head database yet`,
        "try again in a few seconds",
      );
    }
    const busy = catalog.snapshots.forDeployment(deployment.id).find((s) => s.status === "writing");
    if (busy) {
      throw new SnapshotRequestError(
        409,
        "SNAPSHOT_IN_PROGRESS",
        `deployment '${deployment.name}': snapshot ${busy.id} is being written`,
        `wait for it: tidemark snapshots list ${deployment.name}`,
      );
    }
    const spec = this.storeSpec(deployment);
    let store;
    try {
      store = await this.options.stores.open(spec);
    } catch (error) {
      throw new SnapshotRequestError(
        503,
        "STORE_UNAVAILABLE",
        `deployment '${deployment.name}': cannot open snapshot store ${spec}: ${(error as Error).message}`,
        "check the store setting (--snapshot-store) and that the store is reachable",
      );
    }
    rememberStore(catalog, store.location);
    const schedule = this.scheduleOf(deployment);
    const expiresAt =
      options.expiresAt !== undefined
        ? options.expiresAt
        : trigger === "on_demand"
          ? Date.now() + schedule.onDemandKeepDays * 86_400_000
          : null;
    const record = catalog.snapshots.create({
      deploymentId: deployment.id,
      deploymentName: deployment.name,
      trigger,
      store: store.location,
      storeKind: store.kind,
      generation: deployment.generation,
      expiresAt,
    });
    const previousRecord =
      store.kind === "fs" ? undefined : catalog.snapshots.latestComplete(deployment.id, store.location);
    const running: Running = { promise: Promise.resolve() };
    const generation = deployment.generation;
    running.promise = (async () => {
      let storedBytes = 0;
      try {
        const written = await writeSnapshot({
          snapshotId: record.id,
          deploymentId: deployment.id,
          deploymentName: deployment.name,
          head,
          target: store.target,
          previous: this.buildsOn(previousRecord, deployment.name),
          previousStillComplete: () =>
            previousRecord !== undefined && catalog.snapshots.get(previousRecord.id)?.status === "complete",
          chain: schedule,
          referBlocks: (hashes) => catalog.snapshots.referBlocks(record.id, store.location, hashes),
          sealer: this.options.stores.sealer,
          targetBlockBytes: this.options.blockBytes,
          delayMs: this.options.delayMs,
          onProgress: (progress) => (running.progress = { ...progress }),
          checkCancelled: () => {
            if (running.cancelled) throw new Error(running.cancelled);
            const now = catalog.deployments.get(deployment.id);
            if (!now || now.generation !== generation || now.state !== "active")
              throw new Error(
                `the backup job changed during the snapshot (now ${now?.state ?? "removed"}); take a new one`,
              );
          },
        });
        storedBytes = written.storedBytes;
        catalog.snapshots.complete(
          record.id,
          completionOf(
            written,
            classesAtCompletion(catalog.snapshots.forDeployment(deployment.id), record.id),
          ),
        );
        // Later snapshots in this store build on this one: older change entries are not needed.
        await head
          .pruneChanges(written.manifest.changeNumber)
          .catch((error: unknown) =>
            this.options.log(`${deployment.name}: cannot prune change tracking: ${(error as Error).message}`),
          );
        this.options.log(
          `${deployment.name}: snapshot ${record.id} complete at ${written.manifest.ts.t}:${written.manifest.ts.i} ` +
            `(${written.logicalBytes} bytes of documents, ${written.storedBytes} bytes stored, ${manifestBlocks(written.manifest).size} blocks)`,
        );
      } catch (error) {
        const message = running.cancelled ?? (error instanceof Error ? error.message : String(error));
        catalog.snapshots.fail(record.id, message, storedBytes);
        this.options.log(`${deployment.name}: snapshot ${record.id} failed: ${message}`);
      } finally {
        this.running.delete(record.id);
      }
    })();
    this.running.set(record.id, running);
    return catalog.snapshots.get(record.id)!;
  }

  /**
   * The manifest a new snapshot's deltas build on. A damaged one is not built on (the new
   * snapshot writes full bases, so it does not depend on it) and says so in the log; verify names
   * the damage.
   */
  private buildsOn(previous: SnapshotRecord | undefined, deploymentName: string) {
    if (!previous) return undefined;
    try {
      return parseManifest(previous.manifest, previous.id);
    } catch (error) {
      this.options.log(`${deploymentName}: ${(error as Error).message}; the new snapshot writes full bases`);
      return undefined;
    }
  }

  /** The store a snapshot was written to (opened if need be). */
  storeOf(snapshot: SnapshotRecord) {
    return this.options.stores.byLocation(snapshot.store);
  }

  /** Resolves once snapshot `id` (if being written here) has ended. */
  async wait(id: string): Promise<void> {
    await this.running.get(id)?.promise;
  }

  /** Deletes a snapshot's record and (fs store) its files; its blocks go at the next groom. */
  async delete(snapshot: SnapshotRecord): Promise<void> {
    if (snapshot.status === "writing") {
      throw new SnapshotRequestError(
        409,
        "SNAPSHOT_IN_PROGRESS",
        `snapshot ${snapshot.id} is being written`,
        "wait for it to end, then delete it",
      );
    }
    if (snapshot.storeKind === "fs" && snapshot.status === "complete") {
      const store = await this.options.stores.byLocation(snapshot.store);
      await store.files!.delete(snapshot.id);
    }
    this.options.catalog.snapshots.delete(snapshot.id);
    this.options.log(`${snapshot.deploymentName}: snapshot ${snapshot.id} deleted`);
  }

  /**
   * Reads the snapshot back and checks every hash and MD5 (in the background); the outcome is kept
   * with the snapshot (`verifyState`, `verifyResult`).
   */
  verify(snapshot: SnapshotRecord): Promise<SnapshotVerification | undefined> {
    if (snapshot.status !== "complete") {
      throw new SnapshotRequestError(
        409,
        "NOT_COMPLETE",
        `snapshot ${snapshot.id} is ${snapshot.status}; only a complete snapshot can be verified`,
      );
    }
    const existing = this.verifying.get(snapshot.id);
    if (existing) return existing;
    const { catalog, log } = this.options;
    catalog.snapshots.setVerification(snapshot.id, "verifying");
    const promise = (async () => {
      try {
        const manifest = parseManifest(snapshot.manifest, snapshot.id);
        const store = await this.options.stores.byLocation(snapshot.store);
        const result = await verifySnapshot(manifest, store.source);
        if (catalog.snapshots.get(snapshot.id))
          catalog.snapshots.setVerification(snapshot.id, result.ok ? "passed" : "failed", result);
        log(
          `${snapshot.deploymentName}: snapshot ${snapshot.id} verify ${result.ok ? "passed" : `FAILED: ${result.firstProblem}`}`,
        );
        return result;
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error);
        if (catalog.snapshots.get(snapshot.id))
          catalog.snapshots.setVerification(snapshot.id, "failed", {
            snapshotId: snapshot.id,
            ok: false,
            collections: [],
            bytesRead: 0,
            firstProblem: message,
            durationMs: 0,
          });
        log(`${snapshot.deploymentName}: snapshot ${snapshot.id} verify FAILED: ${message}`);
        return undefined;
      } finally {
        this.verifying.delete(snapshot.id);
      }
    })();
    this.verifying.set(snapshot.id, promise);
    return promise;
  }

  /** Stops: snapshots being written end as failed (interrupted); verifications are awaited. */
  async stop(): Promise<void> {
    this.stopping = true;
    for (const running of this.running.values()) running.cancelled = INTERRUPTED;
    await Promise.all([...this.running.values()].map((r) => r.promise));
    await Promise.all(this.verifying.values());
  }
}

/** What the catalog records of a written snapshot, with the retention classes it holds. */
export function completionOf(
  written: WrittenSnapshot,
  classes: SnapshotRecord["classes"],
): CompletedSnapshot {
  return {
    classes,
    ts: written.manifest.ts,
    wallTime: Date.parse(written.manifest.wallTime),
    changeNumber: written.manifest.changeNumber,
    logicalBytes: written.logicalBytes,
    storedBytes: written.storedBytes,
    manifest: written.manifest,
  };
}

/** The retention classes snapshot `id` gets as it completes, among the deployment's snapshots now. */
function classesAtCompletion(snapshots: SnapshotRecord[], id: string): SnapshotRecord["classes"] {
  const completing = snapshots.map((s) => (s.id === id ? { ...s, status: "complete" as const } : s));
  return snapshotClasses(completing).get(id) ?? null;
}
