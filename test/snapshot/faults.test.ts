/**
 * Snapshots under faults and bad input (issue 6, "Bad input and faults"):
 * - the server (the compiled CLI, as an operator runs it) SIGKILLed while a snapshot stores its
 *   blocks: after a restart on the same data directory the snapshot is `failed` (interrupted),
 *   never `complete`, groom reclaims exactly the blocks it stored, a new snapshot completes and
 *   verifies, and the backup job carried on without a new initial sync;
 * - a flipped byte in a stored block, and a damaged manifest in the catalog: verify fails and says
 *   which block and collection, or that the manifest is damaged; snapshots not using the block pass;
 * - bad requests through the API: 401, 404, 409 (not ready, in progress, not complete), 400;
 * - a server stop while a snapshot is written ends it `failed` (interrupted), its block
 *   references let go.
 * TIDEMARK_FAULT_SNAPSHOT_DELAY_MS (a pause after each stored block) keeps a snapshot writing long
 * enough to be caught.
 */
import Database from "better-sqlite3";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { MongoClient } from "mongodb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { newestOplogOpTime } from "../../src/agent/oplogQueries.js";
import type { RunningAgent } from "../../src/agent/agent.js";
import { INTERRUPTED } from "../../src/catalog/snapshots.js";
import { compareOpTimes } from "../../src/protocol/optime.js";
import type { DeploymentView } from "../../src/server/deploymentView.js";
import { manifestBlocks } from "../../src/snapshot/manifest.js";
import { startActiveBackup, type ActiveBackup } from "../helpers/activeBackup.js";
import { startTestAgent } from "../helpers/agent.js";
import { killAll, runCli, waitForLine, type Run } from "../helpers/cli.js";
import { withEmulator, type AnyDoc, type EmulatorFixture } from "../helpers/emulator.js";
import { ADMIN_KEY, withServer, type ServerFixture } from "../helpers/server.js";
import {
  damageStoredBlock,
  groomViaApi,
  listSnapshots,
  manifestOf,
  seedShop,
  snapshotEnd,
  snapshotServerOptions,
  startSnapshot,
  takeSnapshot,
  verifySnapshotViaApi,
  type SnapshotView,
} from "../helpers/snapshots.js";
import { waitFor } from "../helpers/wait.js";

type Api = <T = Record<string, unknown>>(
  method: string,
  path: string,
  body?: unknown,
  key?: string | null,
) => Promise<{ status: number; body: T }>;
interface ErrorBody {
  error: string;
  code: string;
  hint?: string;
}
interface VerifyResult {
  ok: boolean;
  firstProblem?: string;
  collections: Array<{ namespace: string; ok: boolean; problem?: string }>;
}

/** Calls the API at `baseUrl()` with `key` (null: no authorization header). */
function apiAt(baseUrl: () => string, defaultKey: string): Api {
  return async <T>(method: string, path: string, body?: unknown, key: string | null = defaultKey) => {
    const response = await fetch(`${baseUrl()}${path}`, {
      method,
      headers: {
        ...(key === null ? {} : { authorization: `Bearer ${key}` }),
        ...(body === undefined ? {} : { "content-type": "application/json" }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await response.text();
    return { status: response.status, body: (text ? JSON.parse(text) : undefined) as T };
  };
}

/** About 3 MB of orders and some customers: many 64 KB blocks. */
async function loadData(client: MongoClient): Promise<void> {
  await seedShop(client, {
    orders: 12_000,
    notePrefix: "order",
    withPrice: false,
    customers: 3000,
    customer: (i) => ({ _id: i, name: `customer ${i}` }),
    byCustomerIndex: false,
  });
}

/** Opens a SQLite file beside a running server (both catalog and blockstore use WAL). */
function openSqlite(file: string, readonly = true): Database.Database {
  return new Database(file, { readonly, fileMustExist: true });
}

function count(file: string, sql: string, ...params: unknown[]): number {
  const db = openSqlite(file);
  try {
    return (db.prepare(sql).get(...params) as { n: number }).n;
  } finally {
    db.close();
  }
}

/** Blocks in the blockstore that no complete snapshot refers to (per the catalog). */
function unreferencedBlocks(dataDir: string): string[] {
  const blockstore = openSqlite(join(dataDir, "blockstore.sqlite"));
  const catalog = openSqlite(join(dataDir, "catalog.sqlite"));
  try {
    const referenced = new Set(
      (
        catalog
          .prepare(
            `SELECT b.hash FROM snapshot_blocks b JOIN snapshots s ON s.id = b.snapshot_id
             WHERE s.status = 'complete'`,
          )
          .all() as Array<{ hash: string }>
      ).map((r) => r.hash),
    );
    const stored = (blockstore.prepare("SELECT hash FROM blocks").all() as Array<{ hash: string }>).map(
      (r) => r.hash,
    );
    return stored.filter((hash) => !referenced.has(hash));
  } finally {
    blockstore.close();
    catalog.close();
  }
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const address = probe.address();
      probe.close(() => resolve(typeof address === "object" && address ? address.port : 0));
    });
  });
}

describe("snapshots: SIGKILL of the server mid-snapshot", () => {
  let source: EmulatorFixture;
  let dataDir: string;
  let configFile: string;
  let port: number;
  let server: Run | undefined;
  let agent: RunningAgent | undefined;
  const url = () => `http://127.0.0.1:${port}`;
  const api = apiAt(url, ADMIN_KEY);
  const viaApi = { api };

  async function startServerProcess(env: Record<string, string> = {}): Promise<void> {
    server = runCli(["server", "--data-dir", dataDir, "--port", String(port), "--config", configFile], {
      TIDEMARK_ADMIN_KEY: ADMIN_KEY,
      ...env,
    });
    await waitForLine(server, /tidemark server ready/);
  }

  beforeAll(async () => {
    source = await withEmulator();
    dataDir = mkdtempSync(join(tmpdir(), "tidemark-snapshot-crash-"));
    configFile = join(dataDir, "server.json");
    writeFileSync(configFile, JSON.stringify(snapshotServerOptions()));
    port = await freePort();
    await loadData(source.client);
  }, 60_000);

  afterAll(async () => {
    await agent?.stop();
    killAll();
    await source?.close();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  it("is failed (interrupted) after a restart, never complete; groom reclaims its blocks; the next one verifies", async () => {
    // Each stored block is followed by a pause: the snapshot lasts long enough to be killed in.
    await startServerProcess({ TIDEMARK_FAULT_SNAPSHOT_DELAY_MS: "250" });
    const created = await api<{ id: string; agentKey: string }>("POST", "/api/v1/deployments", {
      name: "rs",
    });
    expect(created.status).toBe(201);
    const { id, agentKey } = created.body;
    expect((await api("POST", `/api/v1/deployments/${id}/backup/start`)).status).toBe(200);
    agent = startTestAgent({
      serverUrl: url(),
      agentKey,
      deploymentId: id,
      sourceUri: source.emulator.uri,
      cloneBatchSize: 500,
    });
    const view = async () => (await api<DeploymentView>("GET", `/api/v1/deployments/${id}`)).body;
    const caughtUp = async () => {
      const newest = (await newestOplogOpTime(source.client))!;
      return waitFor("the head database to catch up", async () => {
        const v = await view();
        return v.head.appliedTs && compareOpTimes(v.head.appliedTs, newest) >= 0 ? v : undefined;
      });
    };
    await waitFor("rs to become active", async () => ((await view()).state === "active" ? true : undefined));
    const before = await caughtUp();

    const cut = await startSnapshot(viaApi, "rs");
    const blockstore = join(dataDir, "blockstore.sqlite");
    await waitFor(
      "the snapshot to store a few blocks",
      () => existsSync(blockstore) && count(blockstore, "SELECT count(*) AS n FROM blocks") >= 4,
      30_000,
      20,
    );
    server!.child.kill("SIGKILL");
    expect((await server!.exited).signal).toBe("SIGKILL");
    const storedBeforeKill = count(blockstore, "SELECT count(*) AS n FROM blocks");
    expect(storedBeforeKill).toBeGreaterThanOrEqual(4);
    // Still `writing` in the catalog (nothing ran after the kill), with its block references.
    expect(
      count(
        join(dataDir, "catalog.sqlite"),
        "SELECT count(*) AS n FROM snapshot_blocks WHERE snapshot_id = ?",
        cut.id,
      ),
    ).toBeGreaterThan(0);

    // Restarted without the pause, on the same data directory.
    await startServerProcess();
    const listed = await listSnapshots(viaApi, "rs");
    expect(listed.map((s) => [s.id, s.status])).toEqual([[cut.id, "failed"]]);
    expect(listed[0].error).toMatch(/interrupted/);
    expect(listed[0].error).toBe(INTERRUPTED);
    // A failed snapshot cannot be verified (nor restored from).
    const refused = await api<ErrorBody>("POST", `/api/v1/snapshots/${cut.id}/verify`);
    expect(refused.status).toBe(409);
    expect(refused.body.error).toMatch(/failed/);

    const groomed = await groomViaApi(viaApi);
    expect(groomed.blocksRemoved).toBe(storedBeforeKill);
    expect(groomed.bytesReclaimed).toBeGreaterThan(0);
    expect(unreferencedBlocks(dataDir)).toEqual([]);
    expect(count(blockstore, "SELECT count(*) AS n FROM blocks")).toBe(0);

    // The job carried on: more writes reach the head database, with no new initial sync.
    await source.client
      .db("shop")
      .collection<AnyDoc>("customers")
      .insertMany(Array.from({ length: 100 }, (_, i) => ({ _id: 10_000 + i, name: "after the crash" })));
    const after = await caughtUp();
    expect(after.state).toBe("active");
    expect(after.generation).toBe(before.generation);
    expect(after.initialSync.t0).toEqual(before.initialSync.t0);

    const next = await takeSnapshot(viaApi, "rs");
    const manifest = manifestOf(next);
    expect(manifest.collections.find((c) => c.namespace === "shop.customers")?.count).toBe(3100);
    expect(manifest.collections.find((c) => c.namespace === "shop.orders")?.count).toBe(12_000);
    const checked = await verifySnapshotViaApi(viaApi, next.id);
    expect(checked.verification.state, JSON.stringify(checked.verification.result)).toBe("passed");
    // Groom now keeps every block: each belongs to the complete snapshot.
    expect((await api<{ blocksRemoved: number }>("POST", "/api/v1/groom")).body.blocksRemoved).toBe(0);
    expect(unreferencedBlocks(dataDir)).toEqual([]);
    expect(count(blockstore, "SELECT count(*) AS n FROM blocks")).toBe(manifestBlocks(manifest).size);
  }, 90_000);
});

describe("snapshots: corruption, bad input, a stop while writing", () => {
  let source: EmulatorFixture;
  let fx: ServerFixture;
  let backup: ActiveBackup;
  let stopped = false;
  let api: Api;

  beforeAll(async () => {
    source = await withEmulator();
    // A pause after each stored block (read once, at start): a base snapshot writes for seconds.
    const previousDelay = process.env.TIDEMARK_FAULT_SNAPSHOT_DELAY_MS;
    process.env.TIDEMARK_FAULT_SNAPSHOT_DELAY_MS = "40";
    try {
      fx = await withServer(snapshotServerOptions());
    } finally {
      if (previousDelay === undefined) delete process.env.TIDEMARK_FAULT_SNAPSHOT_DELAY_MS;
      else process.env.TIDEMARK_FAULT_SNAPSHOT_DELAY_MS = previousDelay;
    }
    api = apiAt(() => fx.server.url, ADMIN_KEY);
    await loadData(source.client);
    backup = await startActiveBackup(fx, source, "rs");
  }, 120_000);

  afterAll(async () => {
    await backup?.agent.stop();
    if (fx) {
      if (stopped) rmSync(fx.dataDir, { recursive: true, force: true });
      else await fx.close();
    }
    await source?.close();
  });

  let first: SnapshotView;
  let second: SnapshotView;

  it("refuses bad requests with the right status and a message", async () => {
    const someId = "00000000-0000-0000-0000-000000000000";
    // Without the admin key (or with a wrong one): 401, whatever the request.
    for (const [method, path, body] of [
      ["POST", "/api/v1/deployments/rs/snapshots", {}],
      ["GET", "/api/v1/deployments/rs/snapshots", undefined],
      ["PATCH", "/api/v1/deployments/rs/snapshot-settings", { store: "blockstore" }],
      ["GET", `/api/v1/snapshots/${someId}`, undefined],
      ["DELETE", `/api/v1/snapshots/${someId}`, undefined],
      ["POST", `/api/v1/snapshots/${someId}/verify`, undefined],
      ["POST", "/api/v1/groom", undefined],
    ] as const) {
      for (const key of [null, "not-the-admin-key"]) {
        const response = await api<ErrorBody>(method, path, body, key);
        expect(response.status, `${method} ${path} with key ${key}`).toBe(401);
        expect(response.body.code).toBe("UNAUTHORIZED");
      }
    }
    expect(await api("GET", "/api/v1/deployments/rs/snapshots")).toMatchObject({ status: 200 });

    const unknown = await api<ErrorBody>("POST", "/api/v1/deployments/nope/snapshots", {});
    expect(unknown.status).toBe(404);
    expect(unknown.body.error).toMatch(/nope/);
    const unknownSnapshot = await api<ErrorBody>("GET", `/api/v1/snapshots/${someId}`);
    expect(unknownSnapshot.status).toBe(404);
    expect(unknownSnapshot.body.error).toContain(someId);
    expect((await api("DELETE", `/api/v1/snapshots/${someId}`)).status).toBe(404);
    expect((await api("POST", `/api/v1/snapshots/${someId}/verify`)).status).toBe(404);
    expect((await api("POST", "/api/v1/deployments/rs/snapshots", { keepDays: -1 })).status).toBe(400);

    // Added, its backup never started: nothing to snapshot yet.
    expect((await api("POST", "/api/v1/deployments", { name: "idle" })).status).toBe(201);
    const notReady = await api<ErrorBody>("POST", "/api/v1/deployments/idle/snapshots", {});
    expect(notReady.status).toBe(409);
    expect(notReady.body.code).toBe("NOT_READY");
    expect(notReady.body.error).toMatch(/idle/);
    expect(notReady.body.hint).toMatch(/backup start idle/);
    expect((await api<{ snapshots: unknown[] }>("GET", "/api/v1/deployments/idle/snapshots")).body).toEqual({
      snapshots: [],
    });

    // Settings: an unsupported store (with what looks like credentials in it), a bad schedule.
    const secret = "hunter2-s3cr3t";
    for (const store of ["ftp://x", `ftp://admin:${secret}@backup.example.com/snapshots`]) {
      const badStore = await api<ErrorBody>("PATCH", "/api/v1/deployments/rs/snapshot-settings", { store });
      expect(badStore.status, store).toBe(400);
      expect(badStore.body.code).toBe("BAD_REQUEST");
      expect(badStore.body.error).toMatch(/ftp/);
      expect(JSON.stringify(badStore.body)).not.toContain(secret);
      expect(JSON.stringify(badStore.body)).not.toContain("admin:");
    }
    const badSchedule = await api<ErrorBody>("PATCH", "/api/v1/deployments/rs/snapshot-settings", {
      schedule: { intervalHours: -1 },
    });
    expect(badSchedule.status).toBe(400);
    expect(badSchedule.body.error).toMatch(/intervalHours/);
    expect(
      (await api("PATCH", "/api/v1/deployments/rs/snapshot-settings", { schedule: { bogus: 1 }, extra: 1 }))
        .status,
    ).toBe(400);
    // Nothing of that was kept: snapshots still go to the server's store.
    const rs = (await api<DeploymentView>("GET", "/api/v1/deployments/rs")).body;
    expect({ store: rs.snapshotStore, schedule: rs.snapshotSchedule }).toEqual({
      store: null,
      schedule: null,
    });

    // While one is written: no second one, no delete of it.
    await backup.caughtUp();
    const writing = await startSnapshot(fx, "rs");
    expect(writing.status).toBe("writing");
    const again = await api<ErrorBody>("POST", "/api/v1/deployments/rs/snapshots", {});
    expect(again.status).toBe(409);
    expect(again.body.code).toBe("SNAPSHOT_IN_PROGRESS");
    expect(again.body.error).toContain(writing.id);
    const deleting = await api<ErrorBody>("DELETE", `/api/v1/snapshots/${writing.id}`);
    expect(deleting.status).toBe(409);
    expect(deleting.body.code).toBe("SNAPSHOT_IN_PROGRESS");
    const verifying = await api<ErrorBody>("POST", `/api/v1/snapshots/${writing.id}/verify`);
    expect(verifying.status).toBe(409);
    expect(verifying.body.code).toBe("NOT_COMPLETE");
    first = await snapshotEnd(fx, writing.id);
    expect(first.status, first.error ?? "").toBe("complete");
    const listed = await listSnapshots(fx, "rs");
    expect(listed.map((s) => s.id)).toEqual([first.id]);
  });

  it("a flipped byte in a block fails verify, naming the block and the collection; others pass", async () => {
    // A second snapshot: a delta run for orders whose blocks only it uses.
    const orders = source.client.db("shop").collection<AnyDoc>("orders");
    await orders.updateMany({ n: { $lt: 600 } }, { $set: { note: "edited" } });
    await backup.caughtUp();
    second = await takeSnapshot(fx, "rs");
    const firstBlocks = manifestBlocks(manifestOf(first));
    const runs = manifestOf(second).collections.find((c) => c.namespace === "shop.orders")!.runs!;
    expect(runs.map((r) => r.kind)).toEqual(["base", "delta"]);
    const hash = runs[1].blocks.map((b) => b.hash).find((h) => !firstBlocks.has(h))!;
    expect(hash).toBeDefined();

    const putRight = damageStoredBlock(fx.dataDir, hash);
    try {
      const bad = await verifySnapshotViaApi(fx, second.id);
      expect(bad.verification.state).toBe("failed");
      const result = bad.verification.result as VerifyResult;
      expect(result.ok).toBe(false);
      expect(result.firstProblem).toContain("shop.orders");
      expect(result.firstProblem).toContain(hash.slice(0, 16));
      expect(result.firstProblem).toMatch(/damaged/);
      // Only the collection whose chain holds the block is bad.
      expect(result.collections.filter((c) => !c.ok).map((c) => c.namespace)).toEqual(["shop.orders"]);
      // The first snapshot does not use the block: it still passes.
      expect((await verifySnapshotViaApi(fx, first.id)).verification.state).toBe("passed");
    } finally {
      putRight();
    }
    expect((await verifySnapshotViaApi(fx, second.id)).verification.state).toBe("passed");
  });

  it("a damaged manifest in the catalog fails verify with a message saying so", async () => {
    const catalog = openSqlite(join(fx.dataDir, "catalog.sqlite"), false);
    try {
      const row = catalog.prepare("SELECT manifest FROM snapshots WHERE id = ?").get(first.id) as {
        manifest: string;
      };
      const manifest = JSON.parse(row.manifest) as Record<string, unknown>;
      delete manifest.collections;
      catalog
        .prepare("UPDATE snapshots SET manifest = ? WHERE id = ?")
        .run(JSON.stringify(manifest), first.id);
    } finally {
      catalog.close();
    }
    const shown = await api<SnapshotView>("GET", `/api/v1/snapshots/${first.id}`);
    expect(shown.status).toBe(200);
    const bad = await verifySnapshotViaApi(fx, first.id);
    expect(bad.verification.state).toBe("failed");
    const result = bad.verification.result as VerifyResult;
    expect(result.ok).toBe(false);
    expect(result.firstProblem).toMatch(/manifest is damaged/);
    expect(result.firstProblem).toContain(first.id);
    // The other snapshot is not affected.
    expect((await verifySnapshotViaApi(fx, second.id)).verification.state).toBe("passed");
  });

  it("a server stop while a snapshot is written ends it failed (interrupted)", async () => {
    // maxDeltas 0: a new base of every collection, so the snapshot writes many blocks.
    const patched = await api("PATCH", "/api/v1/deployments/rs/snapshot-settings", {
      schedule: { enabled: false, maxDeltas: 0 },
    });
    expect(patched.status, JSON.stringify(patched.body)).toBe(200);
    await backup.caughtUp();
    const writing = await startSnapshot(fx, "rs");
    const catalogFile = join(fx.dataDir, "catalog.sqlite");
    await waitFor(
      "the snapshot to store some blocks",
      () =>
        count(catalogFile, "SELECT count(*) AS n FROM snapshot_blocks WHERE snapshot_id = ?", writing.id) >=
        3,
      30_000,
      20,
    );
    await backup.agent.stop();
    stopped = true;
    await fx.server.stop();

    const catalog = openSqlite(catalogFile);
    try {
      const rows = catalog
        .prepare("SELECT id, status, error FROM snapshots ORDER BY created_at")
        .all() as Array<{
        id: string;
        status: string;
        error: string | null;
      }>;
      expect(rows.map((r) => [r.id, r.status])).toEqual([
        [first.id, "complete"],
        [second.id, "complete"],
        [writing.id, "failed"],
      ]);
      expect(rows[2].error).toBe(INTERRUPTED);
      // Its blocks are let go (groom reclaims those no other snapshot uses).
      expect(
        (
          catalog
            .prepare("SELECT count(*) AS n FROM snapshot_blocks WHERE snapshot_id = ?")
            .get(writing.id) as {
            n: number;
          }
        ).n,
      ).toBe(0);
    } finally {
      catalog.close();
    }
  });
});
