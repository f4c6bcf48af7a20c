import type { FastifyInstance, FastifyRequest } from "fastify";
import { z } from "zod";
import type { DeploymentRecord } from "../../catalog/deployments.js";
import { generateKey, hashKey } from "../../catalog/keys.js";
import { requireAdmin, routeOf } from "../auth.js";
import type { ServerContext } from "../context.js";
import { parseBody } from "../parseBody.js";
import { deploymentView } from "../deploymentView.js";
import { badRequest, conflict, notFound } from "../errors.js";
import { deleteDeploymentSlices } from "../sliceCleanup.js";

const CreateDeployment = z.object({
  name: z
    .string()
    .min(1)
    .max(64)
    .regex(
      /^[A-Za-z0-9][A-Za-z0-9._-]*$/,
      "use letters, digits, '.', '_' and '-', starting with a letter or digit",
    ),
});

/** A deployment by id or, for convenience on the command line, by name. */
export function findDeployment(ctx: ServerContext, idOrName: string): DeploymentRecord {
  const record = ctx.catalog.deployments.get(idOrName) ?? ctx.catalog.deployments.findByName(idOrName);
  if (!record) throw notFound(`deployment '${idOrName}'`);
  return record;
}

type WithId = FastifyRequest<{ Params: { id: string } }>;

export function registerDeploymentRoutes(app: FastifyInstance, ctx: ServerContext): void {
  const { catalog } = ctx;
  app.addHook("onRequest", async (request) => {
    if (routeOf(request).startsWith("/api/v1/deployments")) requireAdmin(request, catalog);
  });

  app.post("/api/v1/deployments", async (request, reply) => {
    const { name } = parseBody(CreateDeployment, request.body);
    if (catalog.deployments.findByName(name)) {
      throw conflict("NAME_TAKEN", `a deployment named '${name}' already exists`, "choose another name");
    }
    const agentKey = generateKey("tdm_agent");
    const record = catalog.deployments.create(name, hashKey(agentKey));
    ctx.log(`deployment ${record.name} (${record.id}) added`);
    // The agent key is shown this once; only its hash is kept.
    return reply.code(201).send({ id: record.id, name: record.name, agentKey });
  });

  app.get("/api/v1/deployments", async () => ({
    deployments: catalog.deployments.list().map((record) => deploymentView(record, catalog, ctx.daemon)),
  }));

  app.get("/api/v1/deployments/:id", async (request: WithId) =>
    deploymentView(findDeployment(ctx, request.params.id), catalog, ctx.daemon),
  );

  app.get(
    "/api/v1/deployments/:id/slices",
    async (
      request: FastifyRequest<{ Params: { id: string }; Querystring: { stream?: string; kind?: string } }>,
    ) => {
      const record = findDeployment(ctx, request.params.id);
      const kind = request.query.kind;
      if (kind && !["documents", "oplog", "catalog", "missing"].includes(kind)) {
        throw badRequest(`unknown slice kind '${kind}'`, "use documents, oplog, catalog or missing");
      }
      const slices = catalog.slices
        .list(record.id, record.generation, kind as "documents" | undefined)
        .filter((slice) => !request.query.stream || slice.stream === request.query.stream);
      return { deployment: record.id, generation: record.generation, slices };
    },
  );

  app.post("/api/v1/deployments/:id/backup/start", async (request: WithId) => {
    const record = findDeployment(ctx, request.params.id);
    switch (record.state) {
      case "inactive":
        catalog.deployments.beginInitialSync(record.id);
        break;
      case "stopped":
        // Pick up where it stopped: the agent resumes from the acknowledged slices.
        if (record.generation === 0) catalog.deployments.beginInitialSync(record.id);
        else
          catalog.deployments.setState(
            record.id,
            record.phase === "complete" ? "active" : "initial_sync",
            record.phase,
          );
        break;
      case "initial_sync":
      case "active":
        break;
      case "resync_required":
        throw conflict(
          "RESYNC_REQUIRED",
          `deployment '${record.name}' needs a resync: ${record.resyncReason ?? ""}`,
          `run: tidemark backup resync ${record.name}`,
        );
      case "terminated":
        throw conflict(
          "TERMINATED",
          `deployment '${record.name}' is terminated`,
          "add it again under a new name",
        );
    }
    ctx.log(`backup of ${record.name} started`);
    return deploymentView(catalog.deployments.get(record.id)!, catalog, ctx.daemon);
  });

  app.post("/api/v1/deployments/:id/backup/stop", async (request: WithId) => {
    const record = findDeployment(ctx, request.params.id);
    if (record.state === "initial_sync" || record.state === "active") {
      catalog.deployments.setState(record.id, "stopped", record.phase);
      ctx.log(`backup of ${record.name} stopped`);
    } else if (record.state !== "stopped") {
      throw conflict("NOT_RUNNING", `the backup of '${record.name}' is ${record.state}, not running`);
    }
    return deploymentView(catalog.deployments.get(record.id)!, catalog, ctx.daemon);
  });

  app.post("/api/v1/deployments/:id/backup/resync", async (request: WithId) => {
    const record = findDeployment(ctx, request.params.id);
    if (record.state === "terminated")
      throw conflict("TERMINATED", `deployment '${record.name}' is terminated`);
    catalog.deployments.beginInitialSync(record.id);
    const updated = catalog.deployments.get(record.id)!;
    await deleteDeploymentSlices(ctx, record.id, updated.generation);
    ctx.log(`backup of ${record.name} resynced: generation ${updated.generation}`);
    return deploymentView(updated, catalog, ctx.daemon);
  });

  app.delete("/api/v1/deployments/:id", async (request: WithId) => {
    const record = findDeployment(ctx, request.params.id);
    catalog.deployments.setState(record.id, "terminated", null);
    await deleteDeploymentSlices(ctx, record.id);
    ctx.log(`deployment ${record.name} terminated; its slices are deleted`);
    return deploymentView(catalog.deployments.get(record.id)!, catalog, ctx.daemon);
  });
}
