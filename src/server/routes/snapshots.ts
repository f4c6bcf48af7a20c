import type { FastifyInstance, FastifyRequest } from "fastify";
import { z } from "zod";
import type { SnapshotRecord } from "../../catalog/snapshots.js";
import { SnapshotRequestError, type SnapshotService } from "../../daemon/snapshots.js";
import { parseManifest } from "../../snapshot/manifest.js";
import { readFailure } from "../../snapshot/readFailure.js";
import { SnapshotSchedule } from "../../snapshot/policy.js";
import { readCollectionBatches } from "../../snapshot/reader.js";
import { requireAdmin, routeOf } from "../auth.js";
import type { ServerContext } from "../context.js";
import { deploymentView } from "../deploymentView.js";
import { sendDocuments } from "../documentStream.js";
import { badRequest, HttpError, notFound } from "../errors.js";
import { parseBody } from "../parseBody.js";
import { findDeployment } from "./deployments.js";

const TakeSnapshot = z
  .object({
    /** Keep this on-demand snapshot this many days (default: the schedule's onDemandKeepDays). */
    keepDays: z.number().positive().optional(),
  })
  .strict();

const SnapshotSettings = z
  .object({
    store: z.string().min(1).nullable().optional(),
    schedule: z.record(z.string(), z.unknown()).nullable().optional(),
  })
  .strict();

/** A snapshot as the API shows it. */
export function snapshotView(record: SnapshotRecord, service?: SnapshotService, withManifest = false) {
  const manifest = record.manifest as {
    collections: Array<{ namespace: string; type: string; count: number; bytes: number; md5: string | null }>;
  } | null;
  return {
    id: record.id,
    deploymentId: record.deploymentId,
    deploymentName: record.deploymentName,
    trigger: record.trigger,
    status: record.status,
    /** Retention classes (regular, daily, weekly, monthly, on_demand) given at completion. */
    classes: record.classes,
    ts: record.ts,
    /** The backup generation it belongs to (a resync starts a new one); null if not recorded. */
    generation: record.generation,
    wallTime: record.wallTime === null ? null : new Date(record.wallTime).toISOString(),
    store: record.store,
    storeKind: record.storeKind,
    createdAt: new Date(record.createdAt).toISOString(),
    completedAt: record.completedAt === null ? null : new Date(record.completedAt).toISOString(),
    expiresAt: record.expiresAt === null ? null : new Date(record.expiresAt).toISOString(),
    collections: (manifest?.collections ?? []).map(({ namespace, type, count, bytes, md5 }) => ({
      namespace,
      type,
      count,
      bytes,
      md5,
    })),
    logicalBytes: record.logicalBytes,
    storedBytes: record.storedBytes,
    error: record.error,
    progress: service?.progress(record.id) ?? null,
    verification: {
      state: record.verifyState,
      verifiedAt: record.verifiedAt === null ? null : new Date(record.verifiedAt).toISOString(),
      result: record.verifyResult,
    },
    ...(withManifest ? { manifest: record.manifest } : {}),
  };
}

type WithId = FastifyRequest<{ Params: { id: string }; Querystring: { manifest?: string } }>;

/** Snapshots: take, list, show, delete, verify; groom; a deployment's snapshot settings. */
export function registerSnapshotRoutes(app: FastifyInstance, ctx: ServerContext): void {
  const { catalog } = ctx;
  const service = (): SnapshotService => {
    if (!ctx.snapshots)
      throw new HttpError(
        503,
        "NO_DAEMON",
        "this server runs without the backup daemon, so without snapshots",
      );
    return ctx.snapshots.service;
  };
  const findSnapshot = (id: string) => {
    const record = catalog.snapshots.get(id);
    if (!record) throw notFound(`snapshot '${id}'`);
    return record;
  };
  const answer = async <T>(action: () => Promise<T> | T): Promise<T> => {
    try {
      return await action();
    } catch (error) {
      if (error instanceof SnapshotRequestError)
        throw new HttpError(error.status, error.code, error.message, error.hint);
      throw error;
    }
  };
  app.addHook("onRequest", async (request) => {
    const route = routeOf(request);
    if (route.startsWith("/api/v1/snapshots") || route.startsWith("/api/v1/groom"))
      requireAdmin(request, catalog);
  });

  app.post("/api/v1/deployments/:id/snapshots", async (request: WithId, reply) => {
    const { keepDays } = parseBody(TakeSnapshot, request.body ?? {});
    const deployment = findDeployment(ctx, request.params.id);
    const record = await answer(() =>
      service().take(
        deployment,
        "on_demand",
        keepDays ? { expiresAt: Date.now() + keepDays * 86_400_000 } : {},
      ),
    );
    return reply.code(202).send(snapshotView(record, service()));
  });

  app.get("/api/v1/deployments/:id/snapshots", async (request: WithId) => {
    const deployment = findDeployment(ctx, request.params.id);
    return {
      snapshots: catalog.snapshots
        .forDeployment(deployment.id)
        .map((s) => snapshotView(s, ctx.snapshots?.service)),
    };
  });

  app.patch("/api/v1/deployments/:id/snapshot-settings", async (request: WithId) => {
    const deployment = findDeployment(ctx, request.params.id);
    const settings = parseBody(SnapshotSettings, request.body ?? {});
    if (settings.schedule) {
      const parsed = SnapshotSchedule.safeParse(settings.schedule);
      if (!parsed.success)
        throw badRequest(
          // An unknown key's issue has no path: "schedule: Unrecognized key", not "schedule: : …".
          `schedule: ${parsed.error.issues.map((i) => `${i.path.length ? `${i.path.join(".")}: ` : ""}${i.message}`).join("; ")}`,
        );
    }
    if (settings.store) {
      // Opened now, so a typo or an unreachable bucket is said here, not at the next snapshot.
      try {
        await ctx.snapshots?.stores.open(settings.store);
      } catch (error) {
        // The spec is not echoed: it may hold a pasted credential (ftp://user:secret@host). The
        // opener's message names only what is safe to show (a scheme, a bucket, a path).
        throw badRequest(
          `cannot use this snapshot store: ${(error as Error).message}`,
          "use blockstore, a path ending .sqlite, s3://BUCKET/PREFIX or fs:/PATH",
        );
      }
    }
    catalog.deployments.setSnapshotSettings(deployment.id, settings);
    ctx.log(`deployment ${deployment.name}: snapshot settings changed`);
    return deploymentView(catalog.deployments.get(deployment.id)!, catalog, ctx.daemon);
  });

  app.get("/api/v1/snapshots/:id", async (request: WithId) =>
    snapshotView(findSnapshot(request.params.id), ctx.snapshots?.service, request.query.manifest === "true"),
  );

  // One collection's documents as concatenated raw BSON in `_id` order (what a restore loads),
  // read back and checked block by block. A damaged block ends the stream with the error trailer
  // (src/snapshot/streamTrailer.ts) naming the block, and the connection is closed.
  app.get(
    "/api/v1/snapshots/:id/collections/:namespace",
    async (request: FastifyRequest<{ Params: { id: string; namespace: string } }>, reply) => {
      const record = findSnapshot(request.params.id);
      if (record.status !== "complete")
        throw new HttpError(409, "NOT_COMPLETE", `snapshot ${record.id} is ${record.status}`);
      const manifest = parseManifest(record.manifest, record.id);
      const collection = manifest.collections.find((c) => c.namespace === request.params.namespace);
      if (!collection) throw notFound(`collection '${request.params.namespace}' in snapshot ${record.id}`);
      const store = await service().storeOf(record);
      await sendDocuments(reply, readCollectionBatches(manifest, collection, store.source), {
        label: `snapshot ${record.id}: ${collection.namespace}`,
        log: ctx.log,
        failureOf: (error) => readFailure(error, collection),
      });
    },
  );

  app.delete("/api/v1/snapshots/:id", async (request: WithId) => {
    const record = findSnapshot(request.params.id);
    await answer(() => service().delete(record));
    return { deleted: record.id };
  });

  app.post("/api/v1/snapshots/:id/verify", async (request: WithId, reply) => {
    const record = findSnapshot(request.params.id);
    await answer(() => {
      void service().verify(record);
    });
    return reply.code(202).send(snapshotView(catalog.snapshots.get(record.id)!, service()));
  });

  app.post("/api/v1/groom", async () => {
    if (!ctx.snapshots) throw new HttpError(503, "NO_DAEMON", "this server runs without the backup daemon");
    return ctx.snapshots.scheduler.groom();
  });
}
