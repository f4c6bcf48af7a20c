/**
 * The agent's side of `tidemark headdb verify`: the dbHash of every backed-up database with the
 * newest oplog ts, kept only when no write reached the oplog while hashing (no-ops do not count);
 * writes that do not stop give an error answer after the last attempt.
 */
import { type MongoClient } from "mongodb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { newestOplogOpTime } from "../../src/agent/oplogQueries.js";
import { createSourceClient } from "../../src/agent/sourceClient.js";
import { Verifier } from "../../src/agent/verifier.js";
import { AgentJob, type VerificationAnswer } from "../../src/protocol/agentProtocol.js";
import { withEmulator, type AnyDoc, type EmulatorFixture } from "../helpers/emulator.js";

describe("Verifier", () => {
  let fx: EmulatorFixture;
  let client: MongoClient;

  beforeAll(async () => {
    // No-ops every 10 ms while nothing else is written: hashing spans some of them.
    fx = await withEmulator({ noopIntervalSeconds: 0.01 });
    client = createSourceClient({ uri: fx.emulator.uri });
    await client.connect();
    await fx.client
      .db("shop")
      .collection<AnyDoc>("orders")
      .insertMany(Array.from({ length: 3000 }, (_, i) => ({ _id: i, note: "x".repeat(200) })));
    await fx.client.db("cms").collection<AnyDoc>("pages").insertOne({ _id: "home" });
    await fx.client.db("cms").createCollection("home", { viewOn: "pages", pipeline: [] });
  });
  afterAll(async () => {
    await client?.close();
    await fx?.close();
  });

  const verifier = (send: (id: string, answer: VerificationAnswer) => Promise<void> = async () => {}) =>
    new Verifier({ client, send, attempts: 3, retryDelayMs: 10 });

  it("hashes every backed-up database at a quiet moment, no-ops notwithstanding", async () => {
    const answer = await verifier().hashDeployment();
    if (!("asOf" in answer)) throw new Error(`an error answer: ${answer.error}`);
    const newest = (await newestOplogOpTime(client))!;
    expect(answer.asOf.t * 2 ** 32 + answer.asOf.i).toBeLessThanOrEqual(newest.t * 2 ** 32 + newest.i);
    expect(Object.keys(answer.databases)).not.toContain("local");
    expect(Object.keys(answer.databases)).not.toContain("config");
    for (const db of ["shop", "cms"]) {
      const reply = await client.db(db).command({ dbHash: 1 });
      expect(answer.databases[db].collections, db).toEqual(reply.collections);
    }
    expect(Object.keys(answer.databases.cms.collections)).toEqual(["pages", "system.views"]);
  });

  it("does not count the server's own writes to config.* (e.g. session refreshes) as writes", async () => {
    let writing = true;
    const writer = (async () => {
      for (let i = 0; writing; i++)
        await fx.client
          .db("config")
          .collection<AnyDoc>("system.sessions")
          .insertOne({ _id: `s${i}` });
    })();
    try {
      const answer = await verifier().hashDeployment();
      expect(answer).toHaveProperty("asOf");
    } finally {
      writing = false;
      await writer;
    }
  });

  it("answers with an error when writes do not stop", async () => {
    let writing = true;
    const writer = (async () => {
      for (let i = 0; writing; i++)
        await fx.client.db("shop").collection<AnyDoc>("busy").insertOne({ _id: i });
    })();
    try {
      const answer = await verifier().hashDeployment();
      expect(answer).toEqual({
        error: expect.stringMatching(
          /^writes did not stop: newest oplog ts moved from \d+:\d+ to \d+:\d+ while hashing \(op 'i' on shop\.busy\); 3 attempts$/,
        ),
      });
    } finally {
      writing = false;
      await writer;
    }
  });

  it("answers each request once, in order", async () => {
    const sent: string[] = [];
    const v = verifier(async (id, answer) => {
      expect(answer).toHaveProperty("asOf");
      sent.push(id);
    });
    v.request([{ id: "a" }, { id: "b" }]);
    v.request([{ id: "a" }, { id: "c" }]);
    await v.idle();
    expect(sent).toEqual(["a", "b", "c"]);
  });

  it("reads a job from a server that predates verifications", () => {
    const job = AgentJob.parse({
      deploymentId: "d",
      name: "n",
      state: "active",
      generation: 1,
      oplog: { nextSequence: 0 },
      collections: [],
      catalogs: [],
      missing: [],
      settings: { sliceMb: 10, oplogFlushSeconds: 5 },
    });
    expect(job.verifications).toEqual([]);
  });
});
