import type { FastifyInstance, FastifyRequest } from "fastify";
import type { DeploymentRecord } from "../../catalog/deployments.js";
import {
  CloneDone,
  CollectionDone,
  Heartbeat,
  InitialSyncStart,
  OPLOG_STREAM,
  OplogGap,
  streamForCatalog,
  streamForCollection,
  type AgentJob,
  type AgentSelf,
} from "../../protocol/agentProtocol.js";
import { hashKey } from "../../catalog/keys.js";
import { requireAgent } from "../auth.js";
import type { ServerContext } from "../context.js";
import { parseBody } from "../parseBody.js";
import { conflict, unauthorized } from "../errors.js";
import { acceptSlice } from "../sliceIntake.js";
import { AGENT_ANSWER_TIMEOUT_MS } from "../verification.js";

type AgentRequest = FastifyRequest<{ Params: { id: string } }>;

function assertInitialSync(record: DeploymentRecord): void {
  if (record.state !== "initial_sync") {
    throw conflict(
      "NOT_IN_INITIAL_SYNC",
      `the backup of '${record.name}' is ${record.state}, not in initial sync`,
    );
  }
}

/** The job the agent should run: state plus every resume point, built from the catalog. */
function jobFor(ctx: ServerContext, record: DeploymentRecord): AgentJob {
  const { catalog, config } = ctx;
  const heads = catalog.slices.streamHeads(record.id, record.generation);
  const done = catalog.cloneProgress.doneNamespaces(record.id, record.generation);
  const oplog = heads.find((head) => head.stream === OPLOG_STREAM);
  const namespaces = new Set([
    ...done,
    ...heads.filter((h) => h.kind === "documents").map((h) => h.namespace!),
  ]);
  return {
    deploymentId: record.id,
    name: record.name,
    state: record.state,
    generation: record.generation,
    t0: record.t0 ?? undefined,
    cloneCompleteAt: record.cloneCompleteAt ?? undefined,
    oplog: { nextSequence: oplog ? oplog.lastSequence + 1 : 0, lastTs: oplog?.lastTs ?? undefined },
    collections: [...namespaces].sort().map((namespace) => {
      const head = heads.find((h) => h.stream === streamForCollection(namespace));
      return {
        namespace,
        nextSequence: head ? head.lastSequence + 1 : 0,
        lastId: head?.lastId ?? undefined,
        done: done.has(namespace),
      };
    }),
    catalogs: heads
      .filter((h) => h.kind === "catalog")
      .map((h) => h.stream.slice(streamForCatalog("").length)),
    missing: catalog.missing
      .pending(record.id, record.generation)
      .map((request) => ({ id: request.id, namespace: request.namespace, ids: request.ids })),
    verifications: catalog.verifications.waitingForAgent(
      record.id,
      record.generation,
      Date.now() - AGENT_ANSWER_TIMEOUT_MS,
    ),
    settings: { sliceMb: config.sliceMb, oplogFlushSeconds: config.oplogFlushSeconds },
  };
}

export function registerAgentRoutes(app: FastifyInstance, ctx: ServerContext): void {
  const { catalog } = ctx;
  const base = "/api/v1/agent/deployments/:id";
  const agent = (request: AgentRequest) => {
    const record = requireAgent(request, catalog, request.params.id);
    catalog.deployments.touchAgent(record.id);
    return record;
  };

  // Which deployment a key belongs to, so an agent needs only the server URL and its key.
  app.get("/api/v1/agent/self", async (request): Promise<AgentSelf> => {
    const header = request.headers.authorization;
    const key = header?.startsWith("Bearer ") ? header.slice("Bearer ".length).trim() : "";
    const owner = key ? catalog.deployments.findByAgentKeyHash(hashKey(key)) : undefined;
    if (!owner) throw unauthorized("agent");
    catalog.deployments.touchAgent(owner.id);
    return { deploymentId: owner.id, name: owner.name };
  });

  app.get(`${base}/job`, async (request: AgentRequest) => jobFor(ctx, agent(request)));

  app.post(`${base}/heartbeat`, async (request: AgentRequest) => {
    const record = agent(request);
    catalog.deployments.touchAgent(record.id, parseBody(Heartbeat, request.body));
    return { ok: true };
  });

  app.post(`${base}/initial-sync/start`, async (request: AgentRequest) => {
    const record = agent(request);
    assertInitialSync(record);
    const { t0, estimate } = parseBody(InitialSyncStart, request.body);
    // A restarted agent may report again; the first T0 of a generation stands.
    if (!record.t0) {
      catalog.deployments.recordT0(record.id, t0, estimate);
      ctx.log(`${record.name}: initial sync started at T0 ${t0.t}:${t0.i}`);
    }
    return jobFor(ctx, catalog.deployments.get(record.id)!);
  });

  app.post(`${base}/clone/collection-done`, async (request: AgentRequest) => {
    const record = agent(request);
    assertInitialSync(record);
    const { namespace, documents } = parseBody(CollectionDone, request.body);
    catalog.cloneProgress.markDone(record.id, record.generation, namespace, documents);
    return { ok: true };
  });

  app.post(`${base}/initial-sync/clone-done`, async (request: AgentRequest) => {
    const record = agent(request);
    assertInitialSync(record);
    const { t1 } = parseBody(CloneDone, request.body);
    if (!record.cloneCompleteAt) {
      catalog.deployments.recordCloneComplete(record.id, t1);
      ctx.log(`${record.name}: clone complete at T1 ${t1.t}:${t1.i}`);
    }
    return { ok: true };
  });

  app.post(`${base}/oplog-gap`, async (request: AgentRequest) => {
    const record = agent(request);
    const gap = parseBody(OplogGap, request.body);
    catalog.deployments.requireResync(record.id, gap.message);
    ctx.log(`${record.name}: oplog gap, resync required: ${gap.message}`);
    return { ok: true };
  });

  app.put(
    `${base}/slices/:stream/:sequence`,
    async (request: FastifyRequest<{ Params: { id: string; stream: string; sequence: string } }>, reply) => {
      const record = agent(request as unknown as AgentRequest);
      const ack = await acceptSlice(ctx, record, {
        stream: request.params.stream,
        sequence: Number(request.params.sequence),
        generation: Number(request.headers["x-tidemark-generation"]),
        body: request.body as Buffer,
      });
      return reply.code(ack.duplicate ? 200 : 201).send(ack);
    },
  );
}
