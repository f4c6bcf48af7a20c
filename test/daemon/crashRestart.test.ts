/**
 * Crash safety of the backup daemon, with the server and the agent as the processes an operator
 * runs (the compiled CLI): the agent is killed with SIGKILL once during the clone, the server once
 * in every phase of the initial sync (transferring, building, applying_oplogs,
 * fetching_missing_documents, creating_indexes) and once while active, each time restarted on the
 * same data directory. The job must carry on from its persisted state (same generation and T0: no
 * new initial sync) and the head database must end equal to the deployment.
 *
 * Two faults make this deterministic: the emulator hides a few documents from the clone's find
 * (so the daemon has missing documents to fetch) and the server pauses after every head database
 * transaction and phase change (TIDEMARK_FAULT_DAEMON_*), so each phase lasts long enough to be
 * caught and killed in.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Int32, ObjectId } from "mongodb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { newestOplogOpTime } from "../../src/agent/oplogQueries.js";
import { PHASES, type Phase } from "../../src/catalog/deployments.js";
import { compareOpTimes } from "../../src/protocol/optime.js";
import { HeadDatabase } from "../../src/headdb/index.js";
import { isBackedUp } from "../../src/protocol/namespaces.js";
import type { DeploymentView } from "../../src/server/deploymentView.js";
import { killAll, runCli, runCliToEnd, waitForLine, type Run } from "../helpers/cli.js";
import { withEmulator, type AnyDoc, type EmulatorFixture } from "../helpers/emulator.js";
import { waitFor } from "../helpers/wait.js";

const ADMIN_KEY = "crash-test-admin-key-0123456789";
const HIDDEN = [10, 1010, 2020];

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

describe("crash safety: SIGKILL the server in every phase and the agent during the clone", () => {
  let source: EmulatorFixture;
  let dataDir: string;
  let configFile: string;
  let port: number;
  let server: Run | undefined;
  let agent: Run | undefined;
  const serverLogs: string[] = [];
  let writing = false;
  let workload: Promise<number> | undefined;
  const url = () => `http://127.0.0.1:${port}`;

  async function api<T>(method: string, path: string): Promise<{ status: number; body: T }> {
    const response = await fetch(`${url()}${path}`, {
      method,
      headers: { authorization: `Bearer ${ADMIN_KEY}` },
    });
    const text = await response.text();
    return { status: response.status, body: (text ? JSON.parse(text) : undefined) as T };
  }

  async function startServerProcess(): Promise<void> {
    server = runCli(["server", "--data-dir", dataDir, "--port", String(port), "--config", configFile], {
      TIDEMARK_ADMIN_KEY: ADMIN_KEY,
      TIDEMARK_FAULT_DAEMON_DELAY_MS: "60",
      TIDEMARK_FAULT_DAEMON_PHASE_DELAY_MS: "1500",
    });
    await waitForLine(server, /tidemark server ready/);
  }

  async function killServer(): Promise<void> {
    const run = server!;
    run.child.kill("SIGKILL");
    expect((await run.exited).signal).toBe("SIGKILL");
    serverLogs.push(run.stderr());
  }

  function startAgentProcess(agentKey: string): void {
    agent = runCli([
      "agent",
      "--server",
      url(),
      "--key",
      agentKey,
      "--source",
      source.emulator.uri,
      "--codec",
      "none",
      "--clone-parallelism",
      "2",
    ]);
  }

  beforeAll(async () => {
    source = await withEmulator();
    dataDir = mkdtempSync(join(tmpdir(), "tidemark-crash-"));
    configFile = join(dataDir, "server.json");
    writeFileSync(configFile, JSON.stringify({ sliceMb: 0.02, oplogFlushSeconds: 0.3 }));
    port = await freePort();
    const shop = source.client.db("shop");
    await shop.collection<AnyDoc>("customers").insertMany(
      Array.from({ length: 6000 }, (_, i) => ({
        _id: i,
        name: `customer ${i}`,
        visits: new Int32(0),
        address: { city: `city ${i % 17}`, lines: [`${i} main street`, "apt 1"] },
      })),
    );
    await shop.collection<AnyDoc>("orders").insertMany(
      Array.from({ length: 6000 }, (_, i) => ({
        _id: new ObjectId(),
        n: i,
        lines: [{ sku: `sku-${i % 13}`, qty: new Int32(1 + (i % 4)) }],
        note: `order ${i} `.repeat(4),
      })),
    );
    await shop.collection("orders").createIndex({ n: -1 }, { name: "by_n" });
    await shop.collection("customers").createIndex({ name: 1 }, { unique: true });
    const cms = source.client.db("cms");
    await cms.collection<AnyDoc>("pages").insertOne({ _id: "home", title: "Home" });
    await cms.createCollection("home_page", { viewOn: "pages", pipeline: [{ $match: { _id: "home" } }] });
  }, 60_000);

  afterAll(async () => {
    writing = false;
    await workload?.catch(() => {});
    killAll();
    await source?.close();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  it("carries on from its persisted state after each kill; the head database ends equal to the deployment", async () => {
    await startServerProcess();
    const created = await fetch(`${url()}/api/v1/deployments`, {
      method: "POST",
      headers: { authorization: `Bearer ${ADMIN_KEY}`, "content-type": "application/json" },
      body: JSON.stringify({ name: "rs" }),
    });
    expect(created.status).toBe(201);
    const { id, agentKey } = (await created.json()) as { id: string; agentKey: string };
    expect((await api("POST", `/api/v1/deployments/${id}/backup/start`)).status).toBe(200);
    const view = async () => (await api<DeploymentView>("GET", `/api/v1/deployments/${id}`)).body;

    // The clone misses a few customers (as a scan can miss a moving document) and runs slowly.
    source.emulator.faults.hideFromFind("shop.customers", HIDDEN);
    source.emulator.faults.delayReplies(15);

    writing = true;
    workload = (async () => {
      const shop = source.client.db("shop");
      let i = 0;
      while (writing) {
        const customers = shop.collection<AnyDoc>("customers");
        await customers.updateOne({ _id: HIDDEN[i % HIDDEN.length] }, { $inc: { visits: 1 } });
        await customers.updateOne({ _id: (i * 37) % 6000 }, { $set: { "address.city": `moved ${i}` } });
        if (i % 3 === 0) await shop.collection<AnyDoc>("orders").insertOne({ _id: new ObjectId(), fresh: i });
        if (i % 7 === 0) await customers.deleteOne({ _id: 5999 - i });
        if (i % 5 === 0) await source.client.db("logs").collection<AnyDoc>("events").insertOne({ _id: i });
        i++;
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      return i;
    })();

    startAgentProcess(agentKey);
    const first = await waitFor(
      "the clone to upload slices",
      async () => {
        const v = await view();
        return v.phase === "transferring" && v.slices.documents.count >= 3 ? v : undefined;
      },
      60_000,
      20,
    );
    const t0 = first.initialSync.t0;
    expect(t0).not.toBeNull();

    // The agent, killed mid-clone, resumes after its last acknowledged _id.
    agent!.child.kill("SIGKILL");
    await agent!.exited;
    startAgentProcess(agentKey);

    const killedIn: string[] = [];
    const killServerIn = async (phase: string, ready: (v: DeploymentView) => boolean = () => true) => {
      // Polled every 20 ms: a phase may last only moments.
      const seen = await waitFor(
        `phase ${phase}`,
        async () => {
          const v = await view();
          if (v.daemon.error) throw new Error(`daemon error: ${v.daemon.error}`);
          if (phase !== "active" && PHASES.indexOf(v.phase!) > PHASES.indexOf(phase as Phase))
            throw new Error(
              `the job passed ${phase} (now ${v.phase}) before the server could be killed in it`,
            );
          return (phase === "active" ? v.state === "active" : v.phase === phase) && ready(v) ? v : undefined;
        },
        60_000,
        20,
      );
      await killServer();
      killedIn.push(phase);
      await startServerProcess();
      // No new initial sync: the same generation and T0.
      const after = await view();
      expect(after.generation).toBe(seen.generation);
      expect(after.initialSync.t0).toEqual(t0);
      return seen;
    };

    const transferring = await killServerIn("transferring");
    expect(transferring.initialSync.cloneCompleteAt).toBeNull();
    // The clone's end: the hidden customers stay out of it, replies go back to normal speed.
    await waitFor("the clone to end", async () =>
      (await view()).initialSync.cloneCompleteAt ? true : undefined,
    );
    source.emulator.faults.clear();

    await killServerIn("building", (v) => v.phases[2].done > 0);
    await killServerIn("applying_oplogs");
    // Killed once the daemon asked the agent for the hidden customers.
    const fetching = await killServerIn("fetching_missing_documents", (v) => (v.phases[4].total ?? 0) > 0);
    expect(fetching.phases[4].total).toBeGreaterThanOrEqual(HIDDEN.length);
    await killServerIn("creating_indexes");
    const active = await killServerIn("active");
    expect(active.phase).toBe("complete");
    expect(killedIn).toEqual([
      "transferring",
      "building",
      "applying_oplogs",
      "fetching_missing_documents",
      "creating_indexes",
      "active",
    ]);

    // Writes keep flowing into the head database after the last restart.
    await new Promise((resolve) => setTimeout(resolve, 500));
    writing = false;
    expect(await workload).toBeGreaterThan(20);
    const newest = (await newestOplogOpTime(source.client))!;
    const caughtUp = await waitFor("the head database to catch up", async () => {
      const v = await view();
      return v.head.appliedTs && compareOpTimes(v.head.appliedTs, newest) >= 0 ? v : undefined;
    });
    expect(caughtUp.state).toBe("active");
    expect(caughtUp.generation).toBe(first.generation);
    expect(caughtUp.head.missing).toBe(0);

    // What an operator runs: every collection matches.
    const verify = await runCliToEnd(["headdb", "verify", "rs", "--json"], {
      TIDEMARK_URL: url(),
      TIDEMARK_API_KEY: ADMIN_KEY,
    });
    expect(verify.code, verify.stderr).toBe(0);
    const verified = JSON.parse(verify.stdout) as {
      match: boolean;
      collections: Array<{ db: string; collection: string }>;
    };
    expect(verified.match).toBe(true);
    expect(verified.collections.map((c) => `${c.db}.${c.collection}`)).toEqual(
      expect.arrayContaining(["shop.customers", "shop.orders", "cms.system.views", "logs.events"]),
    );

    // Stop the server cleanly and compare the head database with the deployment.
    server!.child.kill("SIGTERM");
    expect((await server!.exited).code).toBe(0);
    agent!.child.kill("SIGTERM");
    await agent!.exited;
    serverLogs.push(server!.stderr());
    expect(serverLogs.join("\n")).not.toMatch(/backup daemon stopped/);

    const head = HeadDatabase.open({ path: join(dataDir, "headdb", id) });
    try {
      const listed = (await source.client.db("admin").command({ listDatabases: 1, nameOnly: true }))
        .databases as Array<{ name: string }>;
      const databases = listed.map((db) => db.name).filter((db) => isBackedUp(db));
      expect(databases).toEqual(expect.arrayContaining(["shop", "cms", "logs"]));
      for (const db of databases) {
        const reply = await source.client.db(db).command({ dbHash: 1 });
        const expected = Object.fromEntries(
          Object.entries(reply.collections as Record<string, string>).filter(([name]) =>
            isBackedUp(db, name),
          ),
        );
        expect(head.dbHash(db).collections, db).toEqual(expected);
      }
      // The hidden customers came in as missing documents, with their latest visits.
      const customers = source.client.db("shop").collection<AnyDoc>("customers");
      for (const _id of HIDDEN) expect(await customers.findOne({ _id })).toMatchObject({ _id });
    } finally {
      await head.close();
    }
  }, 240_000);
});
