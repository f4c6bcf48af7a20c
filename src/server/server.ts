import { join, resolve } from "node:path";
import Fastify, { type FastifyInstance } from "fastify";
import { Catalog } from "../catalog/index.js";
import { Daemon } from "../daemon/daemon.js";
import { openOplogStore } from "../oplogstore/open.js";
import { RestoreJobs } from "../restore/jobs/index.js";
import { ensureAdminKey } from "./adminKey.js";
import type { ServerContext } from "./context.js";
import { DownloadLinks, loadOrCreateLinkSecret } from "./download/index.js";
import { HttpError } from "./errors.js";
import { parseServerConfig, type ServerConfig, type ServerConfigInput } from "./options.js";
import { registerAgentRoutes } from "./routes/agent.js";
import { registerBackupPageRoutes } from "./routes/backupPage.js";
import { registerDeploymentRoutes } from "./routes/deployments.js";
import { downloadLinkOf, registerRestoreDownload } from "./routes/restoreDownload.js";
import { registerRestoreRoutes } from "./routes/restores.js";
import { registerSnapshotRoutes } from "./routes/snapshots.js";
import { registerVerificationRoutes } from "./routes/verifications.js";
import { startSnapshots } from "./snapshotSetup.js";

export interface StartServerOptions extends ServerConfigInput {
  /** The admin key to set on first start (else TIDEMARK_ADMIN_KEY, else a generated one). */
  adminKey?: string;
  log?: (line: string) => void;
  /** Run the backup daemon (default true; tests of the agent alone may turn it off). */
  daemon?: boolean;
  /** How often the daemon enforces the oplog retention window (default once a minute). */
  retentionCheckMs?: number;
}

export interface RunningServer {
  url: string;
  port: number;
  config: ServerConfig;
  /** Set when this start generated the admin key: show it once, it is not stored in clear. */
  generatedAdminKey?: string;
  context: ServerContext;
  stop(): Promise<void>;
}

function buildApp(ctx: ServerContext, links: DownloadLinks): FastifyInstance {
  const app = Fastify({
    // Slices are at most --slice-mb compressed, plus their header; allow some margin.
    bodyLimit: Math.ceil(ctx.config.sliceMb * 1024 * 1024 * 1.25) + 1024 * 1024,
    logger: false,
    // Stopping must not wait on a client: an agent mid-upload retries, a browser polls again.
    forceCloseConnections: true,
  });
  app.addContentTypeParser("application/octet-stream", { parseAs: "buffer" }, (_request, body, done) =>
    done(null, body),
  );
  app.setErrorHandler((error, request, reply) => {
    if (error instanceof HttpError) return reply.code(error.status).send(error.toBody());
    const {
      statusCode: status,
      message,
      code,
    } = error as { statusCode?: number; message?: string; code?: string };
    if (status && status >= 400 && status < 500) {
      return reply.code(status).send({ error: message ?? "bad request", code: code ?? "BAD_REQUEST" });
    }
    ctx.log(
      `${request.method} ${request.url} failed: ${error instanceof Error ? error.stack : String(error)}`,
    );
    return reply.code(500).send({ error: "internal error; see the server log", code: "INTERNAL" });
  });
  app.get("/api/v1/health", async () => ({ ok: true }));
  registerDeploymentRoutes(app, ctx);
  registerAgentRoutes(app, ctx);
  registerVerificationRoutes(app, ctx);
  registerSnapshotRoutes(app, ctx);
  registerRestoreRoutes(app, ctx, { link: (record) => downloadLinkOf(links, record) });
  registerRestoreDownload(app, ctx, links);
  registerBackupPageRoutes(app);
  return app;
}

/** Starts `tidemark server`: the catalog and oplog store in the data directory, and the HTTP API. */
export async function startServer(options: StartServerOptions = {}): Promise<RunningServer> {
  const {
    adminKey,
    log = (line: string) => process.stderr.write(`${line}\n`),
    daemon: runDaemon = true,
    retentionCheckMs,
    ...input
  } = options;
  const config = parseServerConfig(input);
  const dataDir = resolve(config.dataDir);
  const catalog = Catalog.open(join(dataDir, "catalog.sqlite"));
  const { generated } = ensureAdminKey(catalog.db, adminKey ?? process.env.TIDEMARK_ADMIN_KEY);
  const store = await openOplogStore(config.oplogStore ?? join(dataDir, "oplogstore"), {
    dataDir,
    maxBytes: config.oplogStoreMaxBytes,
    s3: config.s3,
  });
  const daemon = runDaemon
    ? new Daemon({
        catalog,
        store,
        dataDir,
        log,
        oplogRetentionMs: config.oplogRetentionHours * 3600_000,
        retentionCheckMs: retentionCheckMs,
        delayMs: Number(process.env.TIDEMARK_FAULT_DAEMON_DELAY_MS ?? 0) || undefined,
        phaseDelayMs: Number(process.env.TIDEMARK_FAULT_DAEMON_PHASE_DELAY_MS ?? 0) || undefined,
      })
    : undefined;
  let snapshots;
  try {
    snapshots = daemon ? await startSnapshots({ catalog, daemon, config, dataDir, log }) : undefined;
  } catch (error) {
    // A refused start (a wrong master key, an invalid schedule) must not leave the catalog and the
    // oplog store open: a caller in the same process may start again on the same data directory.
    await store.close();
    catalog.close();
    throw error;
  }
  const restores = snapshots
    ? new RestoreJobs({
        catalog,
        stores: snapshots.stores,
        oplog: store,
        dataDir,
        log,
        concurrency: config.restoreJobs,
      })
    : undefined;
  const ctx: ServerContext = { catalog, store, config, log, daemon, snapshots, restores };
  const links = new DownloadLinks(loadOrCreateLinkSecret(dataDir, { onWarning: log }).secret);
  const app = buildApp(ctx, links);
  await app.listen({ host: config.host, port: config.port });
  const address = app.server.address();
  daemon?.start();
  snapshots?.scheduler.start();
  restores?.start();
  const port = typeof address === "object" && address ? address.port : config.port;
  log(
    `tidemark server listening on http://${config.host}:${port} (data ${dataDir}, oplog store ${store.location})`,
  );
  return {
    url: `http://${config.host}:${port}`,
    port,
    config,
    generatedAdminKey: generated,
    context: ctx,
    async stop() {
      await app.close();
      await restores?.stop();
      await snapshots?.scheduler.stop();
      await snapshots?.service.stop();
      await daemon?.stop();
      await snapshots?.stores.close();
      await store.close();
      catalog.close();
    },
  };
}
