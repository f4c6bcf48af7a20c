/**
 * The backup daemon end to end: the emulator with data and a light write workload during the
 * clone, the server (with its daemon) and the agent in-process with small slices. The job must
 * reach `active` through the phases in order, and once writes stop and the head database has
 * caught up, every collection's dbHash must equal the emulator's.
 */
import { Int32, ObjectId } from "mongodb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunningAgent } from "../../src/agent/agent.js";
import { newestOplogOpTime } from "../../src/agent/oplogQueries.js";
import { PHASES } from "../../src/catalog/deployments.js";
import { compareOpTimes } from "../../src/protocol/optime.js";
import { defaultNamespaceFilter } from "../../src/oplog/apply/context.js";
import { OPLOG_STREAM } from "../../src/protocol/agentProtocol.js";
import type { DeploymentView } from "../../src/server/deploymentView.js";
import { sliceStoreKey } from "../../src/server/sliceCleanup.js";
import { withEmulator, type AnyDoc, type EmulatorFixture } from "../helpers/emulator.js";
import { withServer, type ServerFixture } from "../helpers/server.js";
import { startTestAgent } from "../helpers/agent.js";
import { waitFor } from "../helpers/wait.js";

describe("backup daemon: initial sync to active, head database equal to the deployment", () => {
  let source: EmulatorFixture;
  let fx: ServerFixture;
  let agent: RunningAgent | undefined;
  const logLines: string[] = [];

  beforeAll(async () => {
    source = await withEmulator();
    fx = await withServer({
      daemon: true,
      sliceMb: 0.02,
      oplogFlushSeconds: 0.2,
      // A two-second point-in-time window, enforced often, so this test sees slices expire.
      oplogRetentionHours: 2 / 3600,
      retentionCheckMs: 100,
      // No scheduled snapshot: one would hold back the slices after it (see snapshotRetention.test.ts).
      snapshotSchedule: { enabled: false },
      log: (line) => logLines.push(line),
    });
    const shop = source.client.db("shop");
    await shop
      .collection<AnyDoc>("customers")
      .insertMany(
        Array.from({ length: 4000 }, (_, i) => ({ _id: i, name: `customer ${i}`, visits: new Int32(0) })),
      );
    await shop.collection<AnyDoc>("orders").insertMany(
      Array.from({ length: 4000 }, (_, i) => ({
        _id: new ObjectId(),
        n: i,
        lines: [{ sku: `sku-${i % 13}`, qty: new Int32(1 + (i % 4)) }],
        note: `order ${i} `.repeat(5),
      })),
    );
    await shop.collection("orders").createIndex({ n: -1 }, { name: "by_n" });
    const cms = source.client.db("cms");
    await cms.collection<AnyDoc>("pages").insertOne({ _id: "home", title: "Home" });
    // A view: its definition is a system.views document, which the head database must keep.
    await cms.createCollection("home_page", { viewOn: "pages", pipeline: [{ $match: { _id: "home" } }] });
  });

  afterAll(async () => {
    await agent?.stop();
    await fx?.close();
    await source?.close();
    if (process.env.TIDEMARK_TEST_AGENT_LOG) process.stderr.write(`${logLines.join("\n")}\n`);
  });

  it("reaches active through the phases in order and matches the emulator's dbHash", async () => {
    const created = await fx.api<{ id: string; agentKey: string }>("POST", "/api/v1/deployments", {
      name: "rs",
    });
    expect(created.status).toBe(201);
    const { id, agentKey } = created.body;
    expect((await fx.api("POST", `/api/v1/deployments/rs/backup/start`)).status).toBe(200);

    // A light write workload while the clone runs: updates, inserts, deletes, a new collection.
    let writing = true;
    const workload = (async () => {
      const shop = source.client.db("shop");
      let i = 0;
      while (writing) {
        await shop
          .collection<AnyDoc>("customers")
          .updateOne({ _id: (i * 37) % 4000 }, { $inc: { visits: 1 } });
        if (i % 3 === 0) await shop.collection<AnyDoc>("orders").insertOne({ _id: new ObjectId(), fresh: i });
        if (i % 7 === 0) await shop.collection<AnyDoc>("customers").deleteOne({ _id: 3999 - i });
        if (i % 5 === 0) await source.client.db("logs").collection<AnyDoc>("events").insertOne({ _id: i });
        if (i === 20)
          await source.client.db("logs").createCollection("recent", { viewOn: "events", pipeline: [] });
        i++;
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      return i;
    })();

    agent = startTestAgent({
      serverUrl: fx.server.url,
      agentKey,
      deploymentId: id,
      sourceUri: source.emulator.uri,
      cloneParallelism: 2,
      cloneBatchSize: 200,
      log: (line) => logLines.push(line),
    });

    const seen: string[] = [];
    const view = async () => (await fx.api<DeploymentView>("GET", `/api/v1/deployments/${id}`)).body;
    const active = await waitFor(
      "the job to become active",
      async () => {
        const v = await view();
        if (v.daemon.error) throw new Error(`daemon error: ${v.daemon.error}`);
        if (v.phase && seen.at(-1) !== v.phase) seen.push(v.phase);
        return v.state === "active" ? v : undefined;
      },
      90_000,
    );
    writing = false;
    expect(await workload).toBeGreaterThan(10);
    expect(active.phase).toBe("complete");
    expect(active.phases.every((p) => p.status === "done")).toBe(true);
    // Phases only move forward.
    const order = seen.map((phase) => PHASES.indexOf(phase as (typeof PHASES)[number]));
    expect(order).toEqual([...order].sort((a, b) => a - b));
    expect(seen.at(-1)).toBe("complete");
    expect(seen).toEqual(expect.arrayContaining(["transferring", "complete"]));

    // Continuous backup: the head database catches up with the deployment's last write.
    const newest = (await newestOplogOpTime(source.client))!;
    const caughtUp = await waitFor(
      "the head database to catch up",
      async () => {
        const v = await view();
        return v.head.appliedTs && compareOpTimes(v.head.appliedTs, newest) >= 0 ? v : undefined;
      },
      90_000,
    );
    expect(caughtUp.head.lagSeconds).toBeGreaterThanOrEqual(0);
    expect(caughtUp.phases[2].done).toBe(caughtUp.phases[2].total);

    const head = fx.server.context.daemon!.headDatabase(id)!;
    const listed = (await source.client.db("admin").command({ listDatabases: 1, nameOnly: true }))
      .databases as Array<{ name: string }>;
    const databases = listed.map((db) => db.name).filter((db) => defaultNamespaceFilter(db));
    expect(databases).toEqual(expect.arrayContaining(["shop", "cms", "logs"]));
    for (const db of databases) {
      const reply = await source.client.db(db).command({ dbHash: 1 });
      const expected = Object.fromEntries(
        Object.entries(reply.collections as Record<string, string>).filter(([name]) =>
          defaultNamespaceFilter(db, name),
        ),
      );
      expect(head.dbHash(db).collections, db).toEqual(expected);
    }
    expect(head.missing.count()).toBe(0);
    // The views came through: the one cloned and the one created during the clone.
    const views = (db: string) =>
      head.catalog
        .namespaces(db)
        .filter((entry) => entry.type === "view")
        .map((entry) => entry.name);
    expect(views("cms")).toEqual(["home_page"]);
    expect(views("logs")).toEqual(["recent"]);
    expect(Object.keys(head.dbHash("cms").collections)).toContain("system.views");

    // The retention window: applied oplog slices older than two seconds leave the store; the
    // newest stays, and the phases still count every slice.
    const { catalog, store } = fx.server.context;
    const { generation } = await view();
    const stored = await waitFor(
      "old oplog slices to expire",
      async () => {
        const oplog = catalog.slices.list(id, generation, "oplog");
        // The pass logs once its removals are done (the catalog changes first).
        const logged = logLines.some((line) =>
          /removed \d+ oplog slices older than the retention window/.test(line),
        );
        return logged && oplog.length > 0 && oplog[0].sequence > 0 ? oplog : undefined;
      },
      90_000,
    );
    const final = await view();
    expect(stored.at(-1)!.sequence).toBe(final.phases[3].total! - 1);
    expect(final.phases[3].done).toBe(final.phases[3].total);
    expect(await store.exists(sliceStoreKey(id, generation, OPLOG_STREAM, 0))).toBe(false);
    // The newest always stays (the window keeps sliding: an older one may go at any pass).
    expect(await store.exists(stored.at(-1)!.storeKey)).toBe(true);
  }, 120_000);
});
