/**
 * Restore jobs, run by the server in the background (HTTP `POST /api/v1/restores`): a snapshot, or
 * a deployment at a point in time, delivered
 *  - into a deployment (the server connects to the target; its URI is kept in memory only),
 *  - as a mongodump archive file to download behind an expiring link, or
 *  - as a materialised point in time held for a client to read collection by collection (what
 *    `tidemark restore --deployment … --at …` and `tidemark export --deployment …` do, so the
 *    target's credentials stay with the CLI).
 * Each job's files (the temporary head database, the archive) live in `<dataDir>/restores/<id>`
 * and go when it expires or is deleted. A restart fails the jobs that were running, saying so.
 */
import { mkdirSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { UUID } from "bson";
import type { Catalog } from "../../catalog/index.js";
import type { RestoreRecord } from "../../catalog/restores.js";
import type { SnapshotStores } from "../../daemon/snapshotStores.js";
import type { HeadDatabase } from "../../headdb/index.js";
import type { OplogStore } from "../../oplogstore/oplogStore.js";
import type { ManifestCollection } from "../../snapshot/manifest.js";
import { parseManifest } from "../../snapshot/manifest.js";
import { readCollection } from "../../snapshot/reader.js";
import { exportArchive } from "../export.js";
import {
  createNamespaceRenamer,
  loadCollections,
  loaderCollectionOf,
  redactUri,
  type LoadProgress,
} from "../loader/index.js";
import {
  describeImage,
  imageDocuments,
  materializePointInTime,
  planPointInTime,
} from "../pointInTime/index.js";
import { Semaphore } from "../semaphore.js";
import { RestoreJobError } from "./errors.js";
import type { DeliveryRequest, RestoreRequest, RestoreSourceRecord } from "./request.js";

export interface RestoreJobsOptions {
  catalog: Catalog;
  stores: SnapshotStores;
  oplog: OplogStore;
  dataDir: string;
  log: (line: string) => void;
  /** How long an archive stays downloadable after it is written. Default 24 hours. */
  archiveHours?: number;
  /** How long a point in time held for a client stays without being read. Default 6 hours. */
  imageHours?: number;
  /**
   * Jobs that work at once (each may build a head database, or load a deployment); the others
   * stay queued. Default 2. A point in time held for a client (ready) no longer counts.
   */
  concurrency?: number;
}

/** What a job reads documents from once its source is open. */
interface OpenSource {
  collections: ManifestCollection[];
  documents: (collection: ManifestCollection) => AsyncIterable<Buffer>;
  /** The applied ts of what is restored. */
  ts: { t: number; i: number };
}

interface Running {
  promise: Promise<void>;
  cancelled?: string;
  /** A point in time's head database, once opened. */
  head?: HeadDatabase;
  /** Present while a point in time is held for a client (status ready). */
  image?: OpenSource;
}

export class RestoreJobs {
  private readonly running = new Map<string, Running>();
  private sweeper?: NodeJS.Timeout;
  private stopping = false;
  private readonly slots: Semaphore;

  constructor(private readonly options: RestoreJobsOptions) {
    this.slots = new Semaphore(Math.max(1, options.concurrency ?? 2));
  }

  /** At start: jobs cut off by a stop are failed, and their files removed (a held point in time too). */
  start(): void {
    for (const job of this.options.catalog.restores.failInterrupted()) {
      this.options.log(`restore ${job.id} was cut off by a stop; its files are removed`);
      this.removeFiles(job.id);
    }
    for (const job of this.options.catalog.restores.list())
      if (job.status === "ready") this.expire(job.id, "the server restarted");
    this.sweeper = setInterval(() => {
      this.sweep().catch((error: unknown) =>
        this.options.log(
          `restores: the sweep failed: ${error instanceof Error ? error.message : String(error)}`,
        ),
      );
    }, 60_000);
    this.sweeper.unref();
  }

  /** Creates a job and starts it; refusals (unknown snapshot, a target out of range) throw RestoreJobError. */
  create(request: RestoreRequest): RestoreRecord {
    if (this.stopping) throw new RestoreJobError(503, "STOPPING", "the server is stopping");
    const source = this.resolveSource(request);
    const delivery = publicDelivery(request.delivery);
    const job = this.options.catalog.restores.create(source, delivery);
    const running: Running = { promise: Promise.resolve() };
    // run() records its own failures; this catches what its cleanup may throw, so it never
    // becomes an unhandled rejection that stops the server.
    running.promise = this.run(job.id, source, request.delivery, running).catch((error: unknown) =>
      this.options.log(`restore ${job.id}: ${error instanceof Error ? error.message : String(error)}`),
    );
    this.running.set(job.id, running);
    return this.options.catalog.restores.get(job.id)!;
  }

  get(id: string): RestoreRecord | undefined {
    return this.options.catalog.restores.get(id);
  }

  /** Resolves when the job's background work has ended (tests, stop). */
  async wait(id: string): Promise<void> {
    await this.running.get(id)?.promise;
  }

  /** The collections of a held point in time, for a client reading it. */
  image(id: string): OpenSource {
    const job = this.options.catalog.restores.get(id);
    if (!job) throw new RestoreJobError(404, "NOT_FOUND", `no restore ${id}`);
    const image = this.running.get(id)?.image;
    if (job.status !== "ready" || !image)
      throw new RestoreJobError(
        409,
        "NOT_READY",
        `restore ${id} is ${job.status}: only a ready point in time can be read`,
        job.status === "materializing" || job.status === "queued"
          ? "wait until its status is ready"
          : "create a new restore",
      );
    // Read now: it stays held for another while.
    this.options.catalog.restores.extend(id, Date.now() + this.imageMs());
    return image;
  }

  /** The archive file of a complete archive job. */
  archivePath(id: string): string {
    const job = this.options.catalog.restores.get(id);
    if (!job) throw new RestoreJobError(404, "NOT_FOUND", `no restore ${id}`);
    const delivery = job.delivery as { kind: string; gzip?: boolean };
    if (delivery.kind !== "archive")
      throw new RestoreJobError(
        409,
        "NOT_AN_ARCHIVE",
        `restore ${id} delivers to a ${delivery.kind}, not an archive`,
      );
    if (job.status === "expired")
      throw new RestoreJobError(
        410,
        "EXPIRED",
        `restore ${id}'s archive has expired and was removed`,
        "create a new restore",
      );
    if (job.status !== "complete")
      throw new RestoreJobError(
        409,
        "NOT_READY",
        `restore ${id} is ${job.status}`,
        "wait until its status is complete",
      );
    return this.archiveFile(id, delivery.gzip === true);
  }

  /** Stops a running job (if it can be) and removes its files; the record stays, expired. */
  async delete(id: string): Promise<void> {
    const running = this.running.get(id);
    if (running) {
      running.cancelled = "deleted while it ran";
      await running.promise;
    }
    await this.closeImage(id);
    this.expire(id, "deleted");
  }

  /** Removes the files of jobs whose time is up. */
  async sweep(now = Date.now()): Promise<number> {
    let swept = 0;
    for (const { id } of this.options.catalog.restores.due(now)) {
      const running = this.running.get(id);
      if (running && !running.image) continue; // still working: it expires when it ends
      // Read again: a client may have read it (and so kept it) while an earlier one was closed.
      const expiresAt = this.options.catalog.restores.get(id)?.expiresAt;
      if (expiresAt === null || expiresAt === undefined || expiresAt > now) continue;
      await this.closeImage(id);
      this.expire(id, "its time was up");
      swept++;
    }
    return swept;
  }

  async stop(): Promise<void> {
    this.stopping = true;
    if (this.sweeper) clearInterval(this.sweeper);
    for (const running of this.running.values()) running.cancelled = "the server is stopping";
    await Promise.all([...this.running.values()].map((r) => r.promise));
    for (const id of [...this.running.keys()]) await this.closeImage(id);
  }

  private imageMs(): number {
    return (this.options.imageHours ?? 6) * 3600_000;
  }

  private jobDir(id: string): string {
    return join(this.options.dataDir, "restores", id);
  }

  private archiveFile(id: string, gzip: boolean): string {
    return join(this.jobDir(id), gzip ? "restore.archive.gz" : "restore.archive");
  }

  private removeFiles(id: string): void {
    rmSync(this.jobDir(id), { recursive: true, force: true });
  }

  private expire(id: string, why: string): void {
    const job = this.options.catalog.restores.get(id);
    if (!job) return;
    this.removeFiles(id);
    if (job.status !== "failed") this.options.catalog.restores.expire(id);
    this.options.log(`restore ${id}: files removed (${why})`);
  }

  private async closeImage(id: string): Promise<void> {
    const running = this.running.get(id);
    if (!running) return;
    this.running.delete(id);
    await running.head?.close();
  }

  /** Checks the request against the catalog now, so a bad one is refused before any work. */
  private resolveSource(request: RestoreRequest): RestoreSourceRecord {
    const { catalog } = this.options;
    if ("snapshotId" in request.source) {
      const snapshot = catalog.snapshots.get(request.source.snapshotId);
      if (!snapshot) throw new RestoreJobError(404, "NOT_FOUND", `no snapshot ${request.source.snapshotId}`);
      if (snapshot.status !== "complete")
        throw new RestoreJobError(
          409,
          "NOT_COMPLETE",
          `snapshot ${snapshot.id} is ${snapshot.status}; only a complete snapshot can be restored`,
        );
      if (request.delivery.kind === "stream")
        throw new RestoreJobError(
          400,
          "INVALID_REQUEST",
          "a snapshot is read as it is: GET /api/v1/snapshots/ID/collections/NAMESPACE",
          "stream delivery is for a point in time (deployment and at)",
        );
      return { kind: "snapshot", snapshotId: snapshot.id, deploymentName: snapshot.deploymentName };
    }
    const wanted = request.source.deployment;
    const deployment = catalog.deployments.get(wanted) ?? catalog.deployments.findByName(wanted);
    if (!deployment) throw new RestoreJobError(404, "NOT_FOUND", `no deployment '${wanted}'`);
    const plan = planPointInTime(catalog, deployment, request.source.target);
    return {
      kind: "pointInTime",
      deploymentId: deployment.id,
      deploymentName: deployment.name,
      target: request.source.target,
      baseSnapshotId: plan.base.id,
      targetTs: plan.targetTs,
    };
  }

  private async run(
    id: string,
    source: RestoreSourceRecord,
    delivery: DeliveryRequest,
    running: Running,
  ): Promise<void> {
    const { catalog, log } = this.options;
    let keep = false;
    // Let create() return first: the job is visible as queued before any work, and stays queued
    // until a slot is free.
    await new Promise((resolve) => setImmediate(resolve));
    const release = await this.slots.acquire();
    try {
      if (running.cancelled) throw new Error(running.cancelled);
      mkdirSync(this.jobDir(id), { recursive: true });
      const opened = await this.openSource(id, source, running);
      if (running.cancelled) throw new Error(running.cancelled);
      if (delivery.kind === "stream") {
        running.image = opened;
        catalog.restores.finish(id, {
          status: "ready",
          result: { ts: opened.ts, collections: opened.collections },
          expiresAt: Date.now() + this.imageMs(),
        });
        keep = true;
        log(`restore ${id}: ${describeSource(source)} is ready to be read`);
        return;
      }
      // A DELETE or a server stop ends the job at its next document, not at its end.
      const documents = (collection: ManifestCollection) =>
        untilCancelled(opened.documents(collection), running);
      if (delivery.kind === "archive") {
        this.options.catalog.restores.setStatus(id, "writing");
        const file = this.archiveFile(id, delivery.gzip === true);
        const result = await exportArchive(file, { collections: opened.collections }, documents, {
          gzip: delivery.gzip,
          onProgress: (p) => catalog.restores.setProgress(id, { stage: "writing", ...p }),
        });
        const bytes = statSync(file).size;
        const expiresAt = Date.now() + (this.options.archiveHours ?? 24) * 3600_000;
        catalog.restores.finish(id, {
          status: "complete",
          result: { ts: opened.ts, bytes, gzip: result.gzip, collections: result.collections },
          expiresAt,
        });
        log(`restore ${id}: archive of ${describeSource(source)} written (${bytes} bytes)`);
        return;
      }
      this.options.catalog.restores.setStatus(id, "loading");
      const loaded = await loadCollections({
        uri: delivery.uri,
        collections: opened.collections.map((c) => loaderCollectionOf(c, () => documents(c))),
        drop: delivery.drop,
        include: delivery.nsInclude,
        exclude: delivery.nsExclude,
        rename: delivery.nsFrom?.length
          ? createNamespaceRenamer(delivery.nsFrom.map((from, k) => ({ from, to: delivery.nsTo![k] })))
          : undefined,
        parallel: delivery.parallel,
        verify: delivery.verify,
        onProgress: progressRecorder(catalog, id),
        log: (line) => log(`restore ${id}: ${line}`),
      });
      catalog.restores.finish(id, {
        status: loaded.verified ? "complete" : "failed",
        result: { ts: opened.ts, ...loaded },
        error: loaded.verified ? undefined : "some collections do not match after the restore",
        expiresAt: Date.now(),
      });
      log(
        `restore ${id}: ${describeSource(source)} → ${redactUri(delivery.uri)} ${loaded.verified ? "complete" : "MISMATCH"}`,
      );
    } catch (error) {
      const message = running.cancelled ?? (error instanceof Error ? error.message : String(error));
      const interrupted = error as { completed?: string[]; incomplete?: string[] };
      catalog.restores.finish(id, {
        status: "failed",
        error: message,
        result: interrupted.completed
          ? { completed: interrupted.completed, incomplete: interrupted.incomplete }
          : undefined,
        expiresAt: Date.now(),
      });
      log(`restore ${id} failed: ${message}`);
    } finally {
      release();
      // A held point in time stays open for its client; everything else is done with its head
      // database, and a job that did not complete with its files.
      if (!keep) {
        await running.head?.close();
        this.running.delete(id);
        const complete = catalog.restores.get(id)?.status === "complete";
        rmSync(complete ? join(this.jobDir(id), "head") : this.jobDir(id), { recursive: true, force: true });
      }
    }
  }

  private async openSource(id: string, source: RestoreSourceRecord, running: Running): Promise<OpenSource> {
    const { catalog, stores } = this.options;
    const checkCancelled = () => {
      if (running.cancelled) throw new Error(running.cancelled);
    };
    if (source.kind === "snapshot") {
      const snapshot = catalog.snapshots.get(source.snapshotId);
      if (!snapshot) throw new Error(`snapshot ${source.snapshotId} was deleted`);
      const manifest = parseManifest(snapshot.manifest, snapshot.id);
      const store = await stores.byLocation(snapshot.store);
      return {
        collections: manifest.collections,
        documents: (c) => readCollection(manifest, c, store.source),
        ts: manifest.ts,
      };
    }
    this.options.catalog.restores.setStatus(id, "materializing");
    const deployment = catalog.deployments.get(source.deploymentId);
    if (!deployment) throw new Error(`deployment '${source.deploymentName}' was removed`);
    // Planned again: a snapshot or slice may have gone since the job was accepted.
    const plan = planPointInTime(catalog, deployment, source.target);
    const store = await stores.byLocation(plan.base.store);
    const point = await materializePointInTime({
      path: join(this.jobDir(id), "head"),
      manifest: plan.manifest,
      source: store.source,
      oplog: this.options.oplog,
      slices: plan.slices,
      targetTs: plan.targetTs,
      checkCancelled,
      onProgress: (p) => catalog.restores.setProgress(id, p),
    });
    running.head = point.head;
    const described = await describeImage(point.head);
    const uuids = new Map(described.collections.map((c) => [c.namespace, c.uuid]));
    return {
      collections: described.collections,
      documents: (c) => imageDocuments(point.head, new UUID(uuids.get(c.namespace)!)),
      ts: point.ts,
    };
  }
}

/** Progress of a load, kept in the catalog at most once a second per job. */
function progressRecorder(catalog: Catalog, id: string): (p: LoadProgress) => void {
  const byNamespace = new Map<string, LoadProgress>();
  let last = 0;
  return (p) => {
    byNamespace.set(p.namespace, p);
    if (Date.now() - last < 1000) return;
    last = Date.now();
    catalog.restores.setProgress(id, { stage: "loading", collections: [...byNamespace.values()] });
  };
}

function describeSource(source: RestoreSourceRecord): string {
  return source.kind === "snapshot"
    ? `snapshot ${source.snapshotId}`
    : `${source.deploymentName} at ${source.targetTs.t}:${source.targetTs.i}`;
}

/** What the catalog and the API keep of a delivery: never the target's URI with its credentials. */
function publicDelivery(delivery: DeliveryRequest): unknown {
  if (delivery.kind !== "deployment") return delivery;
  const { uri, ...rest } = delivery;
  return { ...rest, to: redactUri(uri) };
}

/** The documents of `source` until the job is cancelled; then the job's reason, as an error. */
async function* untilCancelled(source: AsyncIterable<Buffer>, running: Running): AsyncGenerator<Buffer> {
  for await (const document of source) {
    if (running.cancelled) throw new Error(running.cancelled);
    yield document;
  }
}
