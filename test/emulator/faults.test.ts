import { performance } from "node:perf_hooks";
import type { Document } from "bson";
import { MongoClient, MongoServerError, type Collection } from "mongodb";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import type { ClientConnection } from "../../src/emulator/connection.js";
import { withEmulator, type EmulatorFixture } from "../helpers/emulator.js";

/*
 * Fault injection, through the in-process API (`emulator.faults`) and the `tidemarkFault` admin
 * command. The driver's reactions checked here are those of the retryable reads / retryable
 * writes specifications against MongoDB 7.0: one retry after a network error or a retryable
 * error (NotWritablePrimary 10107 carries the RetryableWriteError label on a retryable write,
 * as mongod adds it), no retry for other codes.
 */

interface FaultDriver {
  closeConnections(): Promise<number>;
  failCommand(command: string, code: number, times?: number, errorLabels?: string[]): Promise<void>;
  delayReplies(ms: number): Promise<void>;
  truncateOplog(keep: number): Promise<number>;
  hideFromFind(ns: string, ids: unknown[]): Promise<void>;
  clear(): Promise<void>;
}

let fx: EmulatorFixture;
/** A second client that only sends tidemarkFault commands. */
let control: MongoClient;

beforeAll(async () => {
  fx = await withEmulator({ noopIntervalSeconds: 3600 });
  control = new MongoClient(fx.emulator.directUri, { serverSelectionTimeoutMS: 5000 });
  await control.connect();
});
afterAll(async () => {
  await control?.close();
  await fx?.close();
});

const inProcess = (): FaultDriver => ({
  closeConnections: async () => fx.emulator.faults.closeConnections(),
  failCommand: async (command, code, times, labels) =>
    fx.emulator.faults.failCommand(command, code, times, labels),
  delayReplies: async (ms) => fx.emulator.faults.delayReplies(ms),
  truncateOplog: async (keep) => fx.emulator.faults.truncateOplog(keep),
  hideFromFind: async (ns, ids) => fx.emulator.faults.hideFromFind(ns, ids),
  clear: async () => fx.emulator.faults.clear(),
});

const byCommand = (): FaultDriver => {
  const run = (command: Document) => control.db("admin").command(command);
  return {
    closeConnections: async () => (await run({ tidemarkFault: "closeConnections" })).closing as number,
    failCommand: async (command, code, times, errorLabels) => {
      await run({
        tidemarkFault: "failCommand",
        command,
        code,
        ...(times !== undefined ? { times } : {}),
        ...(errorLabels !== undefined ? { errorLabels } : {}),
      });
    },
    delayReplies: async (ms) => {
      await run({ tidemarkFault: "delayReplies", ms });
    },
    truncateOplog: async (keep) => (await run({ tidemarkFault: "truncateOplog", keep })).removed as number,
    hideFromFind: async (ns, ids) => {
      await run({ tidemarkFault: "hideFromFind", ns, ids });
    },
    clear: async () => {
      await run({ tidemarkFault: "clear" });
    },
  };
};

const received = (name: string) => fx.emulator.deployment.receivedCommandCounts.get(name) ?? 0;

describe.each([
  ["the in-process API", inProcess],
  ["the tidemarkFault command", byCommand],
])("faults through %s", (via, makeDriver) => {
  let faults: FaultDriver;
  let coll: Collection<{ _id: string }>;
  beforeAll(async () => {
    faults = makeDriver();
    coll = fx.client.db("faults").collection<{ _id: string }>(via.replace(/\W+/g, "_"));
    await coll.deleteMany({});
  });
  afterEach(() => fx.emulator.faults.clear());

  describe("closeConnections", () => {
    it("cuts every connection; the next retryable write and read succeed on new connections", async () => {
      await coll.insertOne({ _id: "before" });
      const old = new Set<ClientConnection>(fx.emulator.deployment.connections);
      expect(old.size).toBeGreaterThanOrEqual(2); // the driver's monitor and at least one pooled connection

      const closing = await faults.closeConnections();
      expect(closing).toBeGreaterThanOrEqual(old.size);
      await vi.waitFor(() => expect([...old].every((c) => c.isClosed)).toBe(true), { timeout: 5000 });

      await coll.insertOne({ _id: "after" });
      expect(await coll.find({}).sort({ _id: 1 }).toArray()).toEqual([{ _id: "after" }, { _id: "before" }]);
      // They ran on connections opened after the cut.
      const fresh = [...fx.emulator.deployment.connections].filter((c) => !old.has(c) && !c.isClosed);
      expect(fresh.length).toBeGreaterThan(0);
      await coll.deleteMany({});
    });
  });

  describe("failCommand", () => {
    it("NotWritablePrimary once: the driver retries the retryable write, which succeeds", async () => {
      const inserts = received("insert");
      await faults.failCommand("insert", 10107, 1);
      const result = await coll.insertOne({ _id: "retried" });
      expect(result.acknowledged).toBe(true);
      expect(received("insert")).toBe(inserts + 2);
      expect(await coll.countDocuments({ _id: "retried" })).toBe(1);
      await coll.deleteMany({});
    });

    it("NotWritablePrimary twice: the retry fails too, with the RetryableWriteError label", async () => {
      const inserts = received("insert");
      await faults.failCommand("insert", 10107, 2);
      const error = await coll.insertOne({ _id: "failed" }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(MongoServerError);
      const server = error as MongoServerError;
      expect(server.code).toBe(10107);
      expect(server.codeName).toBe("NotWritablePrimary");
      expect(server.errorLabels).toContain("RetryableWriteError");
      expect(received("insert")).toBe(inserts + 2); // one attempt and exactly one retry
      expect(await coll.countDocuments({ _id: "failed" })).toBe(0);
    });

    it("NotWritablePrimary carries the server's topologyVersion, as MongoDB 4.4+ state-change errors do", async () => {
      const hello = await fx.client.db("admin").command({ hello: 1 });
      await faults.failCommand("ping", 10107, 1);
      const error = (await fx.client
        .db("admin")
        .command({ ping: 1 })
        .catch((e: unknown) => e)) as MongoServerError;
      expect(error.code).toBe(10107);
      expect(String(error.topologyVersion?.processId)).toBe(String(hello.topologyVersion.processId));
      // ping is not a retryable write: no RetryableWriteError label.
      expect(error.errorLabels ?? []).not.toContain("RetryableWriteError");
    });

    it("explicit errorLabels replace the server's: with none, the driver does not retry", async () => {
      const inserts = received("insert");
      await faults.failCommand("insert", 10107, 1, []);
      const error = (await coll
        .insertOne({ _id: "unlabelled" })
        .catch((e: unknown) => e)) as MongoServerError;
      expect(error.code).toBe(10107);
      expect(error.errorLabels ?? []).toEqual([]);
      expect(received("insert")).toBe(inserts + 1);
      // The failure was used up: the next insert works.
      await coll.insertOne({ _id: "unlabelled" });
      expect(await coll.countDocuments({ _id: "unlabelled" })).toBe(1);
      await coll.deleteMany({});
    });

    it("explicit errorLabels are returned as given", async () => {
      await faults.failCommand("ping", 12345, 1, ["SomeLabel"]);
      await expect(fx.client.db("admin").command({ ping: 1 })).rejects.toMatchObject({
        code: 12345,
        errorLabels: ["SomeLabel"],
      });
    });

    it("NotWritablePrimary once on find: the retryable read is retried and succeeds", async () => {
      await coll.insertOne({ _id: "read" });
      const finds = received("find");
      await faults.failCommand("find", 10107, 1);
      expect(await coll.find({ _id: "read" }).toArray()).toEqual([{ _id: "read" }]);
      expect(received("find")).toBe(finds + 2);
      await coll.deleteMany({});
    });

    it("an arbitrary code fails the command once, without a retry", async () => {
      const finds = received("find");
      await faults.failCommand("find", 12345, 1);
      const error = (await coll
        .find({})
        .toArray()
        .catch((e: unknown) => e)) as MongoServerError;
      expect(error).toBeInstanceOf(MongoServerError);
      expect(error.code).toBe(12345);
      expect(error.codeName).toBe("Location12345");
      expect(error.message).toMatch(/find/);
      expect(received("find")).toBe(finds + 1);
      expect(await coll.find({}).toArray()).toEqual([]);
    });

    it("a known non-retryable code (DuplicateKey 11000) on a write is not retried", async () => {
      const inserts = received("insert");
      await faults.failCommand("insert", 11000, 1);
      await expect(coll.insertOne({ _id: "dup" })).rejects.toMatchObject({ code: 11000 });
      expect(received("insert")).toBe(inserts + 1);
    });

    it("fails only the named command", async () => {
      await faults.failCommand("count", 12345, 1);
      expect(await coll.find({}).toArray()).toEqual([]);
      await expect(coll.db.command({ count: coll.collectionName })).rejects.toMatchObject({ code: 12345 });
      expect((await coll.db.command({ count: coll.collectionName })).n).toBe(0);
    });
  });

  describe("delayReplies", () => {
    it("holds every reply for at least the delay, until cleared", async () => {
      const delay = 250;
      await faults.delayReplies(delay);
      const started = performance.now();
      await fx.client.db("admin").command({ ping: 1 });
      expect(performance.now() - started).toBeGreaterThanOrEqual(delay * 0.9);
      const started2 = performance.now();
      await coll.insertOne({ _id: "delayed" });
      expect(performance.now() - started2).toBeGreaterThanOrEqual(delay * 0.9);
      await faults.delayReplies(0);
      expect(fx.emulator.deployment.faults.replyDelayMs).toBe(0);
      await coll.deleteMany({});
    });
  });

  describe("truncateOplog", () => {
    it("keeps only the newest N entries of local.oplog.rs", async () => {
      await coll.insertMany(Array.from({ length: 20 }, (_, i) => ({ _id: `oplog-${i}` })));
      const oplog = fx.client.db("local").collection("oplog.rs");
      const before = await oplog
        .find({}, { projection: { ts: 1 } })
        .sort({ $natural: 1 })
        .toArray();
      expect(before.length).toBeGreaterThan(20);

      const removed = await faults.truncateOplog(5);
      expect(removed).toBe(before.length - 5);
      const after = await oplog
        .find({}, { projection: { ts: 1 } })
        .sort({ $natural: 1 })
        .toArray();
      expect(after.map((e) => e.ts.toString())).toEqual(before.slice(-5).map((e) => e.ts.toString()));
      expect(await oplog.countDocuments()).toBe(5);
      // New writes still append after the kept entries.
      await coll.deleteMany({});
      const newest = await oplog.find({}).sort({ $natural: -1 }).limit(1).next();
      expect(newest?.op).toBe("d");
    });
  });

  describe("hideFromFind", () => {
    it("find leaves out the hidden _ids (1 and 1.0 are one _id) until cleared; writes still see them", async () => {
      const numbers = fx.client
        .db("faults")
        .collection<{ _id: number; n: number }>(`${coll.collectionName}_n`);
      await numbers.deleteMany({});
      await numbers.insertMany(Array.from({ length: 300 }, (_, i) => ({ _id: i, n: i })));
      await faults.hideFromFind(numbers.namespace, [1, 250.0, 999]);
      // Across getMore batches too.
      const seen = await numbers.find({}, { batchSize: 50 }).toArray();
      expect(seen.map((doc) => doc._id)).toEqual(
        Array.from({ length: 300 }, (_, i) => i).filter((i) => i !== 1 && i !== 250),
      );
      expect(await numbers.findOne({ _id: 1 })).toBeNull();
      // Only find is affected: the document is there for writes and for other collections' reads.
      expect((await numbers.updateOne({ _id: 1 }, { $set: { n: -1 } })).matchedCount).toBe(1);
      expect(await numbers.countDocuments({ _id: 1 })).toBe(1);
      await faults.clear();
      expect(await numbers.findOne({ _id: 1 })).toEqual({ _id: 1, n: -1 });
    });
  });
});

describe("closeConnections while a command is in flight (in-process API)", () => {
  it("the driver retries the interrupted retryable write, which mongod applies only once", async () => {
    const coll = fx.client.db("faults").collection<{ _id: number; n: number }>("inflight");
    await coll.insertOne({ _id: 1, n: 0 });
    const updates = received("update");
    fx.emulator.faults.delayReplies(3000); // long enough to cut in before it ends; cleared at once
    const pending = coll.updateOne({ _id: 1 }, { $inc: { n: 1 } });
    // Once the update has run on the server but its reply is still held, cut the network.
    await vi.waitFor(() => expect(received("update")).toBe(updates + 1), { timeout: 5000, interval: 5 });
    fx.emulator.faults.closeConnections();
    fx.emulator.faults.delayReplies(0);
    const result = await pending;
    expect(result.matchedCount).toBe(1);
    expect(received("update")).toBe(updates + 2); // the retry reached the server...
    expect(await coll.findOne({ _id: 1 })).toEqual({ _id: 1, n: 1 }); // ...and was not applied twice
  });

  it("the driver retries an interrupted retryable read", async () => {
    const coll = fx.client.db("faults").collection<{ _id: number; n: number }>("inflight");
    const finds = received("find");
    fx.emulator.faults.delayReplies(3000); // long enough to cut in before it ends; cleared at once
    const pending = coll.find({ _id: 1 }).toArray();
    await vi.waitFor(() => expect(received("find")).toBe(finds + 1), { timeout: 5000, interval: 5 });
    fx.emulator.faults.closeConnections();
    fx.emulator.faults.delayReplies(0);
    expect(await pending).toEqual([{ _id: 1, n: 1 }]);
    expect(received("find")).toBe(finds + 2);
  });
});

describe("the tidemarkFault command itself", () => {
  afterEach(() => fx.emulator.faults.clear());

  it("answers closeConnections before cutting, even while replies are delayed", async () => {
    fx.emulator.faults.delayReplies(100);
    const reply = await control.db("admin").command({ tidemarkFault: "closeConnections" });
    expect(reply.ok).toBe(1);
    expect(reply.closing).toBeGreaterThanOrEqual(1);
    fx.emulator.faults.delayReplies(0);
    expect(await fx.client.db("faults").collection("x").countDocuments()).toBeGreaterThanOrEqual(0);
  });

  it("runs only against the admin database (Unauthorized 13, like other admin-only commands)", async () => {
    await expect(control.db("test").command({ tidemarkFault: "clear" })).rejects.toMatchObject({ code: 13 });
  });

  it("rejects hideFromFind without ns or ids (BadValue 2)", async () => {
    await expect(
      control.db("admin").command({ tidemarkFault: "hideFromFind", ns: "a.b" }),
    ).rejects.toMatchObject({
      code: 2,
    });
  });

  it("rejects an unknown action and a failCommand without command or code (BadValue 2)", async () => {
    await expect(control.db("admin").command({ tidemarkFault: "explode" })).rejects.toMatchObject({
      code: 2,
    });
    await expect(
      control.db("admin").command({ tidemarkFault: "failCommand", code: 1 }),
    ).rejects.toMatchObject({
      code: 2,
    });
  });

  it("clear stops failures and delays", async () => {
    await control
      .db("admin")
      .command({ tidemarkFault: "failCommand", command: "ping", code: 12345, times: 5 });
    await control.db("admin").command({ tidemarkFault: "delayReplies", ms: 50 });
    await control.db("admin").command({ tidemarkFault: "clear" });
    expect(fx.emulator.deployment.faults.replyDelayMs).toBe(0);
    expect(await fx.client.db("admin").command({ ping: 1 })).toMatchObject({ ok: 1 });
  });
});
