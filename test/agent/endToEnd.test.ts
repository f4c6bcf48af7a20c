/**
 * The agent end to end: the emulator as the deployment, the real server (HTTP API, catalog, oplog
 * store), the agent in-process or as a child process killed with SIGKILL. Slices are read back
 * from the oplog store and compared with the deployment byte for byte.
 */
import { spawn, type ChildProcess } from "node:child_process";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { encodeIdKey, encodeIdKeyFromDocument } from "../../src/bson/keyEncoding.js";
import { deserialize, EJSON } from "bson";
import { Int32, Long, ObjectId, type MongoClient } from "mongodb";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { startAgent, type AgentOptions, type RunningAgent } from "../../src/agent/agent.js";
import { newestOplogOpTime } from "../../src/agent/oplogQueries.js";
import { compareOpTimes, toTimestamp } from "../../src/protocol/optime.js";
import { readOpTime } from "../../src/agent/rawBson.js";
import { AgentJob, type OpTimeJson } from "../../src/protocol/agentProtocol.js";
import { decodeSlice } from "../../src/slice/format.js";
import { testAgentOptions } from "../helpers/agent.js";
import { root } from "../helpers/cli.js";
import { withEmulator, type AnyDoc, type EmulatorFixture } from "../helpers/emulator.js";
import { withServer, type ServerFixture } from "../helpers/server.js";
import { waitFor } from "../helpers/wait.js";

interface Deployment {
  id: string;
  name: string;
  agentKey: string;
}

const keyHex = (id: unknown) => encodeIdKey(id).toString("hex");

async function rawCollection(client: MongoClient, db: string, coll: string): Promise<Buffer[]> {
  const docs = (await client
    .db(db)
    .collection(coll)
    .find({}, { sort: { _id: 1 }, raw: true })
    .toArray()) as unknown as Uint8Array[];
  return docs.map((d) => Buffer.from(d));
}

async function oplogRange(client: MongoClient, from: OpTimeJson, to: OpTimeJson): Promise<Buffer[]> {
  const docs = (await client
    .db("local")
    .collection("oplog.rs")
    .find({ ts: { $gte: toTimestamp(from), $lte: toTimestamp(to) } }, { raw: true })
    .toArray()) as unknown as Uint8Array[];
  return docs.map((d) => Buffer.from(d));
}

describe("agent end to end (emulator + server + agent)", () => {
  let source: EmulatorFixture;
  let fx: ServerFixture;
  const agents: RunningAgent[] = [];
  const children: ChildProcess[] = [];
  const logLines: string[] = [];

  beforeAll(async () => {
    source = await withEmulator();
    // The agent alone: a running daemon would finish the initial sync (state active) while we inspect it.
    fx = await withServer({ sliceMb: 0.05, oplogFlushSeconds: 0.3, daemon: false });
    const shop = source.client.db("shop");
    for (let batch = 0; batch < 8; batch++) {
      await shop.collection<AnyDoc>("orders").insertMany(
        Array.from({ length: 500 }, (_, i) => ({
          _id: new ObjectId(),
          n: batch * 500 + i,
          customer: (batch * 500 + i) % 97,
          lines: [{ sku: `sku-${i % 13}`, qty: new Int32(1 + (i % 4)) }],
          note: `order ${batch}-${i} `.repeat(6),
        })),
      );
    }
    await shop.collection<AnyDoc>("customers").insertMany(
      Array.from({ length: 1000 }, (_, i) => ({
        _id: i,
        name: `customer ${i}`,
        since: new Date(1_600_000_000_000 + i),
      })),
    );
    await shop.collection("orders").createIndex({ customer: 1, n: -1 }, { name: "by_customer" });
    const mixed = source.client.db("mixed").collection<AnyDoc>("ids");
    await mixed.insertMany([
      { _id: new Int32(1) },
      { _id: Long.fromNumber(2) },
      { _id: 2.5 },
      { _id: "s" },
      { _id: { k: 1 } },
      { _id: new ObjectId() },
      { _id: true },
      { _id: new Date(0) },
    ]);
    await source.client.db("cms").createCollection("pages", { validator: { title: { $type: "string" } } });
    await source.client.db("cms").collection<AnyDoc>("pages").insertOne({ _id: "home", title: "Home" });
    await source.client
      .db("cms")
      .createCollection("titles", { viewOn: "pages", pipeline: [{ $project: { title: 1 } }] });
    await source.client
      .db("cms")
      .collection<AnyDoc>("system.js")
      .insertOne({ _id: "helper", value: "function () {}" });
  });

  afterEach(async () => {
    if (process.env.TIDEMARK_TEST_AGENT_LOG) process.stderr.write(`${logLines.join("\n")}\n`);
    logLines.length = 0;
    for (const agent of agents.splice(0)) await agent.stop();
    for (const child of children.splice(0))
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  });

  afterAll(async () => {
    await fx?.close();
    await source?.close();
  });

  async function addDeployment(name: string): Promise<Deployment> {
    const created = await fx.api<Deployment>("POST", "/api/v1/deployments", { name });
    expect(created.status).toBe(201);
    expect((await fx.api("POST", `/api/v1/deployments/${name}/backup/start`)).status).toBe(200);
    return created.body;
  }

  function agentOptions(d: Deployment, extra: Partial<AgentOptions> = {}): AgentOptions {
    return testAgentOptions({
      serverUrl: fx.server.url,
      agentKey: d.agentKey,
      deploymentId: d.id,
      sourceUri: source.emulator.uri,
      cloneParallelism: 2,
      cloneBatchSize: 300,
      log: (line) => logLines.push(line),
      ...extra,
    });
  }

  function inProcessAgent(d: Deployment, extra: Partial<AgentOptions> = {}): RunningAgent {
    const agent = startAgent(agentOptions(d, extra));
    agents.push(agent);
    return agent;
  }

  /** The agent as its own process (the compiled dist/), so it can be killed with SIGKILL. */
  function childAgent(d: Deployment, extra: Partial<AgentOptions> = {}): ChildProcess {
    const { log: _log, ...options } = agentOptions(d, extra);
    const module = pathToFileURL(path.join(root, "dist/src/agent/agent.js")).href;
    const code = `
      import { startAgent } from ${JSON.stringify(module)};
      const agent = startAgent(JSON.parse(process.env.AGENT_OPTIONS));
      agent.done.then(() => process.exit(0), (e) => process.exit(e.exitCode ?? 1));`;
    const child = spawn(process.execPath, ["--input-type=module", "-e", code], {
      env: { ...process.env, AGENT_OPTIONS: JSON.stringify(options) },
      stdio: ["ignore", "ignore", "pipe"],
    });
    child
      .stderr!.setEncoding("utf8")
      .on("data", (chunk: string) => logLines.push(...chunk.trim().split("\n")));
    children.push(child);
    return child;
  }

  async function job(d: Deployment): Promise<AgentJob> {
    const response = await fetch(`${fx.server.url}/api/v1/agent/deployments/${d.id}/job`, {
      headers: { authorization: `Bearer ${d.agentKey}` },
    });
    return AgentJob.parse(await response.json());
  }

  /** Every stored slice of a stream, decoded, in sequence order (0, 1, 2... without a gap). */
  async function streamSlices(d: Deployment, stream: string) {
    const j = await job(d);
    const records = fx.server.context.catalog.slices
      .list(d.id, j.generation)
      .filter((s) => s.stream === stream);
    expect(records.map((r) => r.sequence)).toEqual(records.map((_, i) => i));
    return Promise.all(records.map(async (r) => decodeSlice(await fx.server.context.store.get(r.storeKey))));
  }

  async function streamDocuments(d: Deployment, stream: string): Promise<Buffer[]> {
    return (await streamSlices(d, stream)).flatMap((slice) =>
      [...slice.documents()].map((doc) => Buffer.from(doc)),
    );
  }

  function documentSliceCount(d: Deployment, generation: number): number {
    return fx.server.context.catalog.slices.list(d.id, generation, "documents").length;
  }

  /** Waits until the oplog stream holds the deployment's newest entry. */
  async function oplogCaughtUp(d: Deployment): Promise<OpTimeJson> {
    await source.client.db("ping").collection<AnyDoc>("ping").insertOne({ at: new Date() });
    const newest = (await newestOplogOpTime(source.client))!;
    return waitFor(
      "the oplog stream to catch up",
      async () => {
        const lastTs = (await job(d)).oplog.lastTs;
        return lastTs && compareOpTimes(lastTs, newest) >= 0 ? lastTs : undefined;
      },
      30_000,
    );
  }

  /** The oplog slices are the deployment's oplog from T0 to their last entry, byte for byte. */
  async function expectOplogComplete(d: Deployment): Promise<void> {
    const j = await job(d);
    const entries = await streamDocuments(d, "oplog");
    const last = readOpTime(entries[entries.length - 1])!;
    expect(readOpTime(entries[0])).toEqual(j.t0);
    const expected = await oplogRange(source.client, j.t0!, last);
    expect(entries.length).toBe(expected.length);
    expect(entries.findIndex((entry, i) => !entry.equals(expected[i]))).toBe(-1);
  }

  /** With no writes during the clone, every collection's stream is the collection, byte for byte. */
  async function expectExactClone(d: Deployment, namespaces: string[]): Promise<void> {
    for (const ns of namespaces) {
      const [db, coll] = [ns.slice(0, ns.indexOf(".")), ns.slice(ns.indexOf(".") + 1)];
      const cloned = await streamDocuments(d, `documents/${ns}`);
      const actual = await rawCollection(source.client, db, coll);
      expect(cloned.length, ns).toBe(actual.length);
      expect(
        cloned.findIndex((doc, i) => !doc.equals(actual[i])),
        ns,
      ).toBe(-1);
    }
  }

  const ALL = [
    "shop.orders",
    "shop.customers",
    "mixed.ids",
    "cms.pages",
    "cms.system.js",
    "cms.system.views",
  ];

  it("initial sync under a concurrent write workload: clone, catalogs, T0/T1, oplog slices", async () => {
    const d = await addDeployment("workload");
    const touched = new Set<string>();
    let writing = true;
    const workload = (async () => {
      const orders = source.client.db("shop").collection<AnyDoc>("orders");
      const customers = source.client.db("shop").collection<AnyDoc>("customers");
      const some = await orders
        .find({}, { projection: { _id: 1 } })
        .limit(2000)
        .toArray();
      let i = 0;
      while (writing) {
        const target = some[(i * 37) % some.length]._id;
        touched.add(keyHex(target));
        if (i % 3 === 0)
          await orders.updateOne({ _id: target }, { $inc: { edits: 1 }, $set: { note: "edited" } });
        else if (i % 3 === 1) await orders.deleteOne({ _id: target });
        else {
          const id = new ObjectId();
          touched.add(keyHex(id));
          await orders.insertOne({ _id: id, fresh: i });
        }
        touched.add(keyHex(i % 1000));
        await customers.updateOne({ _id: i % 1000 }, { $set: { visits: new Int32(i) } });
        i++;
      }
      return i;
    })();
    const agent = inProcessAgent(d);
    const done = await waitFor("the clone to complete", async () => (await job(d)).cloneCompleteAt, 60_000);
    writing = false;
    const writes = await workload;
    expect(writes).toBeGreaterThan(10);
    await oplogCaughtUp(d);

    const j = await job(d);
    expect(j.state).toBe("initial_sync");
    expect(j.t0).toBeDefined();
    expect(compareOpTimes(done, j.t0!)).toBeGreaterThan(0);
    expect(j.collections.map((c) => c.namespace).sort()).toEqual([...ALL].sort());
    expect(j.collections.every((c) => c.done)).toBe(true);
    expect(j.catalogs.sort()).toEqual(
      ["cms", "mixed", "ping", "shop"].filter((db) => db !== "ping" || j.catalogs.includes("ping")),
    );
    await expectOplogComplete(d);
    await expectExactClone(d, ["mixed.ids", "cms.pages", "cms.system.js", "cms.system.views"]);

    // Written collections: _ids strictly increasing; every untouched document exactly as it is now.
    for (const ns of ["shop.orders", "shop.customers"]) {
      const [db, coll] = ns.split(".");
      const cloned = await streamDocuments(d, `documents/${ns}`);
      const keys = cloned.map((doc) => encodeIdKeyFromDocument(doc).toString("hex"));
      for (let k = 1; k < keys.length; k++) expect(keys[k] > keys[k - 1], ns).toBe(true);
      const clonedByKey = new Map(cloned.map((doc, k) => [keys[k], doc]));
      const now = await rawCollection(source.client, db, coll);
      let compared = 0;
      for (const doc of now) {
        const key = encodeIdKeyFromDocument(doc).toString("hex");
        if (touched.has(key)) continue;
        expect(clonedByKey.get(key)?.equals(doc), `${ns} ${key}`).toBe(true);
        compared++;
      }
      for (const [key, doc] of clonedByKey) {
        if (!touched.has(key)) expect(now.some((n) => n.equals(doc))).toBe(true);
      }
      expect(compared).toBeGreaterThan(100);
    }

    // One catalog slice per database: every collection and view with options, UUID and indexes.
    const [cmsCatalog] = await streamSlices(d, "catalog/cms");
    const entries = [...cmsCatalog.documents()].map((doc) => deserialize(doc));
    expect(entries.map((e) => e.name).sort()).toEqual(["pages", "system.js", "system.views", "titles"]);
    const pages = entries.find((e) => e.name === "pages")!;
    expect(pages).toMatchObject({
      type: "collection",
      options: { validator: { title: { $type: "string" } } },
    });
    expect(pages.uuid).toBeDefined();
    expect(pages.idIndex).toMatchObject({ key: { _id: 1 }, name: "_id_" });
    expect(entries.find((e) => e.name === "titles")).toMatchObject({
      type: "view",
      options: { viewOn: "pages" },
      indexes: [],
    });
    const [shopCatalog] = await streamSlices(d, "catalog/shop");
    const orders = [...shopCatalog.documents()]
      .map((doc) => deserialize(doc))
      .find((e) => e.name === "orders")!;
    expect(orders.indexes.map((index: { name: string }) => index.name)).toEqual(["_id_", "by_customer"]);

    // The heartbeat tells the Backup page what the agent does.
    const view = await fx.api<{ agent: { activity: string; version: string } }>(
      "GET",
      `/api/v1/deployments/${d.id}`,
    );
    expect(view.body.agent.version).toBe("0.1.0");
    expect(view.body.agent.activity).toMatch(/oplog at \d+:\d+/);
    await agent.stop();
  }, 120_000);

  it("SIGKILL mid-clone: the next agent resumes each collection after its last acknowledged _id", async () => {
    const d = await addDeployment("killed-mid-clone");
    const child = childAgent(d, { cloneParallelism: 1, codec: "none", sliceMb: 0.02 });
    const generation = await waitFor(
      "the job to start",
      async () => (await job(d)).t0 && (await job(d)).generation,
      30_000,
    );
    await waitFor(
      "some document slices",
      () => documentSliceCount(d, generation) >= 8 || undefined,
      30_000,
      25,
    );
    // Killed part-way through a collection (not between two), so that one must resume. Slow
    // replies make sure the collection cannot finish between seeing it part-way and the kill.
    source.emulator.faults.delayReplies(50);
    try {
      await waitFor(
        "a collection part-way",
        async () => (await job(d)).collections.find((c) => !c.done && c.nextSequence >= 3),
        30_000,
        25,
      );
      child.kill("SIGKILL");
      await new Promise((resolve) => child.once("exit", resolve));
    } finally {
      source.emulator.faults.delayReplies(0);
    }
    const before = await job(d);
    expect(before.cloneCompleteAt).toBeUndefined(); // killed mid-clone
    const resumed = before.collections.find((c) => !c.done && c.lastId);
    expect(resumed).toBeDefined();
    const t0 = before.t0;

    inProcessAgent(d, { cloneParallelism: 1, codec: "none", sliceMb: 0.02 });
    await waitFor("the clone to complete", async () => (await job(d)).cloneCompleteAt, 60_000);
    await oplogCaughtUp(d);
    const after = await job(d);
    expect(after.t0).toEqual(t0); // never a new initial sync
    expect(after.generation).toBe(before.generation);
    await expectExactClone(d, ALL);
    await expectOplogComplete(d);
    expect(
      logLines.some((line) => line.includes("collection clone resumed") && line.includes(resumed!.namespace)),
    ).toBe(true);
  }, 120_000);

  it("connections cut again and again during the initial sync: nothing duplicated, nothing skipped", async () => {
    const d = await addDeployment("cuts");
    inProcessAgent(d, { cloneParallelism: 2, sliceMb: 0.02, codec: "snappy", cloneBatchSize: 100 });
    let cuts = 0;
    const cutting = setInterval(() => {
      cuts++;
      source.emulator.faults.closeConnections();
    }, 40);
    try {
      await waitFor("the clone to complete", async () => (await job(d)).cloneCompleteAt, 60_000);
    } finally {
      clearInterval(cutting);
    }
    expect(cuts).toBeGreaterThan(3);
    await oplogCaughtUp(d);
    await expectExactClone(d, ALL);
    await expectOplogComplete(d);
  }, 120_000);

  it("SIGKILL mid-tail: the next agent resumes at the last acknowledged ts, no entry lost or doubled", async () => {
    const d = await addDeployment("killed-mid-tail");
    const child = childAgent(d);
    await waitFor("the clone to complete", async () => (await job(d)).cloneCompleteAt, 60_000);
    const events = source.client.db("tail").collection<AnyDoc>("events");
    for (let i = 0; i < 50; i++) await events.insertOne({ _id: `before-kill-${i}` });
    await oplogCaughtUp(d);
    for (let i = 0; i < 20; i++) await events.insertOne({ _id: `around-kill-${i}` });
    child.kill("SIGKILL");
    await new Promise((resolve) => child.once("exit", resolve));
    for (let i = 0; i < 50; i++) await events.insertOne({ _id: `while-down-${i}` });

    inProcessAgent(d);
    await oplogCaughtUp(d);
    await expectOplogComplete(d);
    expect(
      logLines.some((line) => line.includes("oplog tail started") && line.includes("skipFirst=true")),
    ).toBe(true);
  }, 120_000);

  it("an oplog gap while the agent was down: reported, the job goes to resync_required, the agent waits", async () => {
    const d = await addDeployment("gap");
    const first = inProcessAgent(d);
    await waitFor("the clone to complete", async () => (await job(d)).cloneCompleteAt, 60_000);
    const resumeAt = await oplogCaughtUp(d);
    await first.stop();
    for (let i = 0; i < 30; i++) await source.client.db("gap").collection<AnyDoc>("c").insertOne({ i });
    source.emulator.faults.truncateOplog(10);

    const second = inProcessAgent(d);
    const view = await waitFor(
      "resync_required",
      async () => {
        const v = await fx.api<{ state: string; resyncReason: string }>("GET", `/api/v1/deployments/${d.id}`);
        return v.body.state === "resync_required" ? v.body : undefined;
      },
      30_000,
    );
    expect(view.resyncReason).toContain(`resume at ${resumeAt.t}:${resumeAt.i}`);
    expect(view.resyncReason).toMatch(/oldest entry still in the oplog is \d+:\d+/);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(second.status().activity).toMatch(/resync/);
    // A resync starts a new generation: the agent starts over, T0 anew.
    expect((await fx.api("POST", `/api/v1/deployments/${d.id}/backup/resync`)).status).toBe(200);
    const fresh = await waitFor(
      "a new clone",
      async () => {
        const j = await job(d);
        return j.generation === 2 && j.cloneCompleteAt ? j : undefined;
      },
      60_000,
    );
    expect(compareOpTimes(fresh.t0!, resumeAt)).toBeGreaterThan(0);
  }, 120_000);

  it("answers missing-document requests, stops on 'stopped' and exits on 'terminated'", async () => {
    const d = await addDeployment("lifecycle");
    const agent = inProcessAgent(d);
    const started = await waitFor(
      "the clone to complete",
      async () => (await job(d)).cloneCompleteAt && (await job(d)),
      30_000,
    );
    const ids = EJSON.stringify({ ids: [0, 1, 5000, "gone"] }, { relaxed: false });
    const request = fx.server.context.catalog.missing.create(d.id, started.generation, "shop.customers", ids);
    await waitFor(
      "the missing request to be answered",
      async () => ((await job(d)).missing.length === 0 ? true : undefined),
      30_000,
    );
    const [answer] = await streamSlices(d, `missing/${request.id}`);
    const found = [...answer.documents()].map((doc) => deserialize(doc)._id);
    expect(found).toEqual([0, 1]);

    expect((await fx.api("POST", `/api/v1/deployments/${d.id}/backup/stop`)).status).toBe(200);
    await waitFor(
      "the agent to stop working",
      () => (agent.status().activity.includes("stopped") ? true : undefined),
      30_000,
    );
    expect((await fx.api("DELETE", `/api/v1/deployments/${d.id}`)).status).toBe(200);
    await agent.done; // terminated: the agent exits (code 0 from the CLI)
  }, 120_000);
});
