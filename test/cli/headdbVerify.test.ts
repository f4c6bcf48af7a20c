/**
 * `tidemark headdb verify` end to end: the emulator as the deployment, the server with its daemon
 * and the agent in-process, the CLI as an operator runs it. Once the backup is active and the
 * head database has caught up every collection matches; a tampered head database is reported
 * collection by collection; an unknown deployment, a backup that is not active and an agent that
 * does not answer end with exit code 2 and a hint.
 */
import { serialize, UUID } from "bson";
import { Int32, ObjectId } from "mongodb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunningAgent } from "../../src/agent/agent.js";
import { newestOplogOpTime } from "../../src/agent/oplogQueries.js";
import { compareOpTimes } from "../../src/protocol/optime.js";
import type { DatabaseHashes } from "../../src/protocol/agentProtocol.js";
import { isBackedUp } from "../../src/protocol/namespaces.js";
import type { DeploymentView } from "../../src/server/deploymentView.js";
import type { VerificationView } from "../../src/server/verification.js";
import { killAll, runCliToEnd } from "../helpers/cli.js";
import { withEmulator, type AnyDoc, type EmulatorFixture } from "../helpers/emulator.js";
import { ADMIN_KEY, withServer, type ServerFixture } from "../helpers/server.js";
import { startTestAgent } from "../helpers/agent.js";
import { waitFor } from "../helpers/wait.js";

describe("tidemark headdb verify", () => {
  let source: EmulatorFixture;
  let fx: ServerFixture;
  let agent: RunningAgent | undefined;
  let env: Record<string, string>;
  let deploymentId: string;
  let agentKey: string;
  const logLines: string[] = [];

  const view = async () => (await fx.api<DeploymentView>("GET", `/api/v1/deployments/${deploymentId}`)).body;

  beforeAll(async () => {
    source = await withEmulator();
    fx = await withServer({ sliceMb: 0.05, oplogFlushSeconds: 0.2, log: (line) => logLines.push(line) });
    env = { TIDEMARK_URL: fx.server.url, TIDEMARK_API_KEY: ADMIN_KEY };
    const shop = source.client.db("shop");
    await shop
      .collection<AnyDoc>("customers")
      .insertMany(Array.from({ length: 500 }, (_, i) => ({ _id: i, name: `customer ${i}` })));
    await shop
      .collection<AnyDoc>("orders")
      .insertMany(
        Array.from({ length: 500 }, (_, i) => ({ _id: new ObjectId(), n: i, qty: new Int32(i % 5) })),
      );
    const cms = source.client.db("cms");
    await cms.collection<AnyDoc>("pages").insertOne({ _id: "home", title: "Home" });
    await cms.createCollection("home_page", { viewOn: "pages", pipeline: [] });

    const created = await fx.api<{ id: string; agentKey: string }>("POST", "/api/v1/deployments", {
      name: "rs",
    });
    ({ id: deploymentId, agentKey } = created.body);
    expect((await fx.api("POST", "/api/v1/deployments/rs/backup/start")).status).toBe(200);
    agent = startTestAgent({
      serverUrl: fx.server.url,
      agentKey,
      deploymentId,
      sourceUri: source.emulator.uri,
      cloneBatchSize: 200,
      log: (line) => logLines.push(line),
    });
    await waitFor(
      "the backup to become active",
      async () => {
        const v = await view();
        if (v.daemon.error) throw new Error(`daemon error: ${v.daemon.error}`);
        return v.state === "active" ? v : undefined;
      },
      40_000,
    );
    // Writes after T0, through the oplog: the head database applies them.
    await shop.collection<AnyDoc>("orders").insertOne({ _id: new ObjectId(), n: -1 });
    await shop.collection<AnyDoc>("customers").updateOne({ _id: 7 }, { $set: { vip: true } });
    const newest = (await newestOplogOpTime(source.client))!;
    await waitFor(
      "the head database to catch up",
      async () => {
        const v = await view();
        return v.head.appliedTs && compareOpTimes(v.head.appliedTs, newest) >= 0 ? v : undefined;
      },
      40_000,
    );
  }, 60_000);

  afterAll(async () => {
    killAll();
    await agent?.stop();
    await fx?.close();
    await source?.close();
    if (process.env.TIDEMARK_TEST_AGENT_LOG) process.stderr.write(`${logLines.join("\n")}\n`);
  });

  it("reports every collection as a match, as text and as JSON (exit 0)", async () => {
    const text = await runCliToEnd(["headdb", "verify", "rs"], env);
    expect(text.code, text.stderr).toBe(0);
    for (const ns of ["shop.customers", "shop.orders", "cms.pages", "cms.system.views"]) {
      expect(text.stdout).toMatch(new RegExp(`^${ns.replace(/\./g, "\\.")}\\s+match$`, "m"));
    }
    expect(text.stdout).toMatch(/rs: all 4 collections match \(asOf \d+:\d+, head applied \d+:\d+\)/);

    const json = await runCliToEnd(["headdb", "verify", "rs", "--json"], env);
    expect(json.code, json.stderr).toBe(0);
    const result = JSON.parse(json.stdout) as VerificationView;
    expect(result).toMatchObject({ state: "done", match: true, deployment: "rs", warnings: [] });
    expect(result.collections.map((c) => `${c.db}.${c.collection}`)).toEqual([
      "cms.pages",
      "cms.system.views",
      "shop.customers",
      "shop.orders",
    ]);
    expect(result.collections.every((c) => c.match && c.deployment === c.head)).toBe(true);
    expect(compareOpTimes(result.headAppliedTs!, result.asOf!)).toBeGreaterThanOrEqual(0);
  }, 30_000);

  it("has --help with an example", async () => {
    const help = await runCliToEnd(["headdb", "verify", "--help"], env);
    expect(help.stdout).toContain("Example");
    expect(help.stdout).toContain("--timeout");
  });

  it("names the collections where a tampered head database differs (exit 1)", async () => {
    // Tampering through the head database's own API: an extra document and a collection the
    // deployment never had.
    const head = fx.server.context.daemon!.headDatabase(deploymentId)!;
    const customers = head.catalog.collectionByName("shop", "customers")!;
    head.write(() => {
      head.insertDocuments(customers.uuid, [serialize({ _id: "tampered" })]);
      head.createCollection({ uuid: new UUID(), db: "shop", name: "ghost" });
    });

    const text = await runCliToEnd(["headdb", "verify", "rs"], env);
    expect(text.code, text.stderr).toBe(1);
    expect(text.stdout).toMatch(/^shop\.customers\s+MISMATCH\s+[0-9a-f]{32}\s+[0-9a-f]{32}$/m);
    expect(text.stdout).toMatch(/^shop\.ghost\s+MISMATCH\s+\(absent\)\s+[0-9a-f]{32}$/m);
    expect(text.stdout).toMatch(/^shop\.orders\s+match$/m);
    expect(text.stdout).toContain("2 of 5 collections MISMATCH");

    const json = await runCliToEnd(["headdb", "verify", "rs", "--json"], env);
    expect(json.code).toBe(1);
    const result = JSON.parse(json.stdout) as VerificationView;
    expect(result.match).toBe(false);
    expect(result.collections.filter((c) => !c.match)).toEqual([
      expect.objectContaining({ db: "shop", collection: "customers" }),
      expect.objectContaining({ db: "shop", collection: "ghost", deployment: null }),
    ]);
  }, 30_000);

  it("exits 2 with a hint for an unknown deployment and for a backup that is not active", async () => {
    const unknown = await runCliToEnd(["headdb", "verify", "nope"], env);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain("deployment 'nope' not found");
    expect(unknown.stderr).toContain("hint: list the deployments with: tidemark deployments list");

    await fx.api("POST", "/api/v1/deployments", { name: "idle" });
    const idle = await runCliToEnd(["headdb", "verify", "idle"], env);
    expect(idle.code).toBe(2);
    expect(idle.stderr).toContain("the backup of 'idle' is inactive, not active");
    expect(idle.stderr).toContain("hint: start the backup first");
  });

  it("with the agent stopped: times out (exit 2) asking whether the agent runs", async () => {
    await agent!.stop();
    agent = undefined;
    const started = Date.now();
    const result = await runCliToEnd(["headdb", "verify", "rs", "--timeout", "1.5"], env);
    expect(result.code).toBe(2);
    expect(Date.now() - started).toBeLessThan(15_000);
    expect(result.stderr).toContain("the agent did not send the deployment's dbHash within 1.5 s");
    expect(result.stderr).toMatch(/hint: is the agent running\? \(it was last seen \d{4}-/);
  });

  it("warns when the head database had applied writes after the deployment's asOf", async () => {
    // The agent's side through the protocol, with an asOf before the writes made after T0.
    const started = await fx.api<{ id: string }>("POST", "/api/v1/deployments/rs/verifications");
    expect(started.status).toBe(202);
    const t0 = (await view()).initialSync.t0!;
    const databases: DatabaseHashes = {};
    for (const db of ["cms", "shop"]) {
      const reply = await source.client.db(db).command({ dbHash: 1 });
      databases[db] = {
        collections: Object.fromEntries(
          Object.entries(reply.collections as Record<string, string>).filter(([name]) =>
            isBackedUp(db, name),
          ),
        ),
      };
    }
    const path = `/api/v1/agent/deployments/${deploymentId}/verifications/${started.body.id}`;
    const answered = await fx.api("POST", path, { asOf: t0, databases }, agentKey);
    expect(answered).toEqual({ status: 200, body: { ok: true, duplicate: false } });
    const again = await fx.api("POST", path, { error: "late" }, agentKey);
    expect(again.body).toEqual({ ok: true, duplicate: true });
    expect((await fx.api("POST", path, { asOf: t0, databases })).status).toBe(401);

    const result = (
      await fx.api<VerificationView>("GET", `/api/v1/deployments/rs/verifications/${started.body.id}`)
    ).body;
    expect(result.state).toBe("done");
    expect(result.asOf).toEqual(t0);
    expect(result.warnings).toHaveLength(1);
    expect(result.warnings[0]).toMatch(
      /^writes continued after the agent's hash: 2 oplog entries between asOf/,
    );
    expect(result.warnings[0]).toContain("op 'i' on shop.orders");
  });
});
