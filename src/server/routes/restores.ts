import type { FastifyInstance, FastifyRequest } from "fastify";
import type { RestoreRecord } from "../../catalog/restores.js";
import {
  RestoreBody,
  RestoreJobError,
  restoreRequestOf,
  type RestoreJobs,
} from "../../restore/jobs/index.js";
import { deploymentRanges, isoOf, TargetNotRestorableError } from "../../restore/pointInTime/index.js";
import { DOCUMENTS_PER_BATCH, inBatches } from "../../snapshot/batches.js";
import { READ_FAILED } from "../../snapshot/streamTrailer.js";
import { requireAdmin, routeOf } from "../auth.js";
import type { ServerContext } from "../context.js";
import { sendDocuments } from "../documentStream.js";
import { HttpError, notFound } from "../errors.js";
import { parseBody } from "../parseBody.js";
import { findDeployment } from "./deployments.js";

type WithId = FastifyRequest<{ Params: { id: string } }>;

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

/** A restore job as the API shows it; `downloadUrl` once an archive can be fetched. */
export function restoreView(record: RestoreRecord, downloadUrl?: string) {
  return {
    id: record.id,
    status: record.status,
    source: record.source,
    delivery: record.delivery,
    progress: record.progress,
    result: record.result,
    error: record.error,
    createdAt: iso(record.createdAt),
    completedAt: iso(record.completedAt),
    expiresAt: iso(record.expiresAt),
    ...(downloadUrl ? { downloadUrl } : {}),
  };
}

/** Restore jobs and a deployment's restorable ranges. */
export function registerRestoreRoutes(
  app: FastifyInstance,
  ctx: ServerContext,
  downloads: { link: (record: RestoreRecord) => string | undefined },
): void {
  const { catalog } = ctx;
  const jobs = (): RestoreJobs => {
    if (!ctx.restores)
      throw new HttpError(
        503,
        "NO_DAEMON",
        "this server runs without the backup daemon, so without restores",
      );
    return ctx.restores;
  };
  const answer = <T>(action: () => T): T => {
    try {
      return action();
    } catch (error) {
      if (error instanceof RestoreJobError)
        throw new HttpError(error.status, error.code, error.message, error.hint);
      if (error instanceof TargetNotRestorableError)
        throw new HttpError(
          409,
          error.code,
          error.message,
          "list what can be restored: tidemark restore ranges DEPLOYMENT (GET /api/v1/deployments/ID/restore-ranges)",
        );
      throw error;
    }
  };
  const findRestore = (id: string) => {
    const record = catalog.restores.get(id);
    if (!record) throw notFound(`restore '${id}'`);
    return record;
  };
  app.addHook("onRequest", async (request) => {
    // The download is behind its own expiring link (checked in its handler), so it can be handed on.
    const route = routeOf(request);
    if (route.startsWith("/api/v1/restores") && route !== "/api/v1/restores/:id/download")
      requireAdmin(request, catalog);
  });

  app.get("/api/v1/deployments/:id/restore-ranges", async (request: WithId) => {
    const deployment = findDeployment(ctx, request.params.id);
    const ranges = deploymentRanges(catalog, deployment).map((range) => ({
      ...range,
      fromTime: isoOf(range.from),
      toTime: isoOf(range.to),
    }));
    return {
      deploymentId: deployment.id,
      deploymentName: deployment.name,
      generation: deployment.generation,
      ranges,
    };
  });

  app.post("/api/v1/restores", async (request, reply) => {
    const body = parseBody(RestoreBody, request.body ?? {});
    const record = answer(() => jobs().create(restoreRequestOf(body)));
    return reply.code(202).send(restoreView(record));
  });

  app.get("/api/v1/restores", async () => ({
    restores: catalog.restores.list().map((r) => restoreView(r, downloads.link(r))),
  }));

  app.get("/api/v1/restores/:id", async (request: WithId) => {
    const record = findRestore(request.params.id);
    return restoreView(record, downloads.link(record));
  });

  app.delete("/api/v1/restores/:id", async (request: WithId) => {
    const record = findRestore(request.params.id);
    await jobs().delete(record.id);
    return restoreView(catalog.restores.get(record.id)!);
  });

  // A ready point in time's collection, as raw BSON in `_id` order (what the CLI loads or exports).
  app.get(
    "/api/v1/restores/:id/collections/:namespace",
    async (request: FastifyRequest<{ Params: { id: string; namespace: string } }>, reply) => {
      const image = answer(() => jobs().image(request.params.id));
      const collection = image.collections.find((c) => c.namespace === request.params.namespace);
      if (!collection)
        throw notFound(`collection '${request.params.namespace}' in restore ${request.params.id}`);
      await sendDocuments(reply, inBatches(image.documents(collection), DOCUMENTS_PER_BATCH), {
        label: `restore ${request.params.id}: ${collection.namespace}`,
        log: ctx.log,
        failureOf: (error) => ({
          code: READ_FAILED,
          message: error instanceof Error ? error.message : String(error),
          namespace: collection.namespace,
          block: null,
        }),
      });
    },
  );
}
