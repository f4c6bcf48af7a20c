/**
 * The cloner against the emulator through the driver, into a collecting sink: every document
 * exactly once, in `_id` order, byte for byte; resuming after an acknowledged `_id` (of any BSON
 * type, across type brackets); connections cut and cursors killed mid-clone without duplicating
 * or skipping anything; collections in parallel up to the limit.
 */
import {
  Binary,
  Decimal128,
  Double,
  Int32,
  Long,
  MaxKey,
  MinKey,
  ObjectId,
  Timestamp,
  type MongoClient,
} from "mongodb";
import { EJSON } from "bson";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Cloner, type CloneTask } from "../../src/agent/cloner.js";
import { createLogger } from "../../src/agent/logger.js";
import { filtersAfter } from "../../src/agent/resumeFilter.js";
import { createSourceClient } from "../../src/agent/sourceClient.js";
import type { OutgoingSlice } from "../../src/agent/sliceSink.js";
import { readSliceHeader } from "../../src/slice/format.js";
import { withEmulator, type AnyDoc, type EmulatorFixture } from "../helpers/emulator.js";
import { CollectingSink } from "./collectingSink.js";

const FAST = { initialMs: 5, maxMs: 50 };

/** `_id`s of every kind an `_id` can have, in MongoDB's sort order. */
const MIXED_IDS: unknown[] = [
  new MinKey(),
  null,
  -Infinity,
  new Int32(-5),
  new Double(2.5),
  Long.fromNumber(3),
  Decimal128.fromString("3.25"),
  new Int32(4),
  "",
  "apple",
  "banana",
  { a: 1 },
  { a: 1, b: 2 },
  { b: 0 },
  new Binary(Buffer.from("x"), 0),
  new Binary(Buffer.from("xy"), 0),
  new ObjectId("000000000000000000000001"),
  new ObjectId("650000000000000000000000"),
  false,
  true,
  new Date(-1000),
  new Date(1_700_000_000_000),
  new Timestamp({ t: 1, i: 1 }),
  new Timestamp({ t: 2, i: 0 }),
  new MaxKey(),
];

async function rawDocuments(client: MongoClient, db: string, collection: string): Promise<Buffer[]> {
  const docs = await client
    .db(db)
    .collection(collection)
    .find({}, { sort: { _id: 1 }, raw: true })
    .toArray();
  return (docs as unknown as Uint8Array[]).map((doc) => Buffer.from(doc));
}

function sameBytes(actual: Buffer[], expected: Buffer[]): void {
  expect(actual.length).toBe(expected.length);
  const mismatch = actual.findIndex((doc, i) => !doc.equals(expected[i]));
  expect(mismatch).toBe(-1);
}

function task(db: string, collection: string, extra: Partial<CloneTask> = {}): CloneTask {
  return { db, collection, nextSequence: 0, ...extra };
}

describe("Cloner", () => {
  let fx: EmulatorFixture;
  let client: MongoClient;
  beforeAll(async () => {
    fx = await withEmulator();
    client = createSourceClient({ uri: fx.emulator.uri });
    await client.connect();
    const orders = fx.client.db("shop").collection<AnyDoc>("orders");
    for (let batch = 0; batch < 6; batch++) {
      await orders.insertMany(
        Array.from({ length: 500 }, (_, i) => ({
          _id: new ObjectId(),
          n: batch * 500 + i,
          note: `order ${batch}-${i} `.repeat(8),
          amount: new Decimal128(String((i * 7) % 1000)),
        })),
      );
    }
    await fx.client
      .db("mixed")
      .collection<AnyDoc>("ids")
      .insertMany(MIXED_IDS.map((id, i) => ({ _id: id as AnyDoc["_id"], i })));
    await fx.client.db("mixed").createCollection("empty");
    for (const name of ["c1", "c2", "c3", "c4", "c5"]) {
      await fx.client
        .db("many")
        .collection<AnyDoc>(name)
        .insertMany(Array.from({ length: 200 }, (_, i) => ({ _id: i, name, pad: "p".repeat(200) })));
    }
  });
  afterAll(async () => {
    await client?.close();
    await fx?.close();
  });

  function cloner(sink: CollectingSink, options: Partial<ConstructorParameters<typeof Cloner>[0]> = {}) {
    return new Cloner({
      client,
      sink,
      deployment: "dep-1",
      codec: "zstd",
      targetBytes: 16 * 1024,
      parallelism: 2,
      backoff: FAST,
      ...options,
    });
  }

  it("clones a collection in _id order into slices of at most the target size, byte for byte", async () => {
    const sink = new CollectingSink();
    const done: Array<[string, number]> = [];
    const c = cloner(sink, {
      onCollectionDone: async (t, documents) => void done.push([`${t.db}.${t.collection}`, documents]),
    });
    expect(await c.cloneCollection(task("shop", "orders"))).toBe(3000);
    const slices = sink.stream("documents/shop.orders");
    expect(slices.length).toBeGreaterThan(3);
    expect(slices.map((s) => s.sequence)).toEqual(slices.map((_, i) => i));
    for (const s of slices) expect(s.bytes.length).toBeLessThanOrEqual(16 * 1024);
    const headers = slices.map((s) => readSliceHeader(s.bytes));
    expect(headers.every((h) => h.kind === "documents" && h.namespace === "shop.orders")).toBe(true);
    expect(headers.every((h) => h.deployment === "dep-1" && h.codec === "zstd")).toBe(true);
    sameBytes(sink.documents("documents/shop.orders"), await rawDocuments(fx.client, "shop", "orders"));
    expect(done).toEqual([["shop.orders", 3000]]);
  });

  it("keeps every kind of _id in MongoDB's order, and an empty collection makes no slice", async () => {
    const sink = new CollectingSink();
    const c = cloner(sink, { targetBytes: 300 });
    await c.cloneAll([task("mixed", "ids"), task("mixed", "empty")]);
    sameBytes(sink.documents("documents/mixed.ids"), await rawDocuments(fx.client, "mixed", "ids"));
    // The driver gives a null _id a new ObjectId, so every _id is still there once.
    expect(sink.documents("documents/mixed.ids")).toHaveLength(MIXED_IDS.length);
    expect(sink.stream("documents/mixed.empty")).toHaveLength(0);
  });

  it("resumes after the last acknowledged _id of every kind, with the job's next sequence", async () => {
    const all = await rawDocuments(fx.client, "mixed", "ids");
    const full = new CollectingSink();
    await cloner(full, { targetBytes: 200 }).cloneCollection(task("mixed", "ids"));
    const slices = full.stream("documents/mixed.ids");
    expect(slices.length).toBeGreaterThan(5);
    // Resume after each acknowledged slice in turn, as a restarted agent would.
    for (let acked = 0; acked < slices.length; acked++) {
      const header = readSliceHeader(slices[acked].bytes);
      const lastId = EJSON.stringify({ _id: header.lastId }, { relaxed: false });
      const sink = new CollectingSink();
      await cloner(sink, { targetBytes: 200 }).cloneCollection(
        task("mixed", "ids", { lastId, nextSequence: acked + 1 }),
      );
      const resumed = sink.stream("documents/mixed.ids");
      const sentBefore = slices.slice(0, acked + 1).reduce((n, s) => n + readSliceHeader(s.bytes).count, 0);
      sameBytes(sink.documents("documents/mixed.ids"), all.slice(sentBefore));
      if (resumed.length > 0) expect(resumed[0].sequence).toBe(acked + 1);
    }
  });

  it("filtersAfter selects exactly the _ids after each one, in order, across type brackets", async () => {
    const all = await rawDocuments(fx.client, "mixed", "ids");
    const ids = (
      await fx.client
        .db("mixed")
        .collection<AnyDoc>("ids")
        .find({}, { sort: { _id: 1 } })
        .toArray()
    ).map((d) => d._id);
    for (let i = 0; i < ids.length; i++) {
      const after: Buffer[] = [];
      for (const filter of filtersAfter(ids[i])) {
        const docs = await fx.client
          .db("mixed")
          .collection("ids")
          .find(filter, { sort: { _id: 1 }, raw: true })
          .toArray();
        after.push(...(docs as unknown as Uint8Array[]).map((d) => Buffer.from(d)));
      }
      sameBytes(after, all.slice(i + 1));
    }
    expect(filtersAfter(undefined)).toEqual([{}]);
    expect(filtersAfter(new MaxKey())).toEqual([]);
  });

  it("survives connections cut mid-clone: re-opens after the last document read, no duplicate, no gap", async () => {
    let cuts = 0;
    const sink = new (class extends CollectingSink {
      override async put(slice: OutgoingSlice): Promise<void> {
        await super.put(slice);
        if (this.slices.length % 2 === 1 && cuts < 4) {
          cuts++;
          fx.emulator.faults.closeConnections();
        }
      }
    })();
    const lines: string[] = [];
    const log = createLogger({ sink: (line) => lines.push(line) });
    await cloner(sink, { batchSize: 50, targetBytes: 4096, log }).cloneCollection(task("shop", "orders"));
    expect(cuts).toBe(4);
    expect(lines.filter((line) => line.includes("clone cursor lost")).length).toBeGreaterThanOrEqual(4);
    sameBytes(sink.documents("documents/shop.orders"), await rawDocuments(fx.client, "shop", "orders"));
  });

  it("re-opens a cursor the server killed (CursorNotFound, Interrupted) and goes on", async () => {
    fx.emulator.faults.failCommand("getMore", 43, 2); // CursorNotFound
    fx.emulator.faults.failCommand("find", 11601, 1); // Interrupted
    const sink = new CollectingSink();
    await cloner(sink, { batchSize: 100 }).cloneCollection(task("shop", "orders"));
    sameBytes(sink.documents("documents/shop.orders"), await rawDocuments(fx.client, "shop", "orders"));
  });

  it("clones collections in parallel, never more than --clone-parallelism at once", async () => {
    const sink = new CollectingSink({ delayMs: 5 });
    const c = cloner(sink, { parallelism: 2, targetBytes: 4096 });
    let most = 0;
    const timer = setInterval(() => (most = Math.max(most, c.progress().inProgress.length)), 1);
    const done: string[] = [];
    const withDone = cloner(sink, {
      parallelism: 2,
      targetBytes: 4096,
      onCollectionDone: async (t) => void done.push(t.collection),
    });
    void withDone;
    await c.cloneAll(["c1", "c2", "c3", "c4", "c5"].map((name) => task("many", name)));
    clearInterval(timer);
    expect(most).toBe(2);
    expect(c.progress()).toMatchObject({ collectionsTotal: 5, collectionsDone: 5, documents: 1000 });
    for (const name of ["c1", "c2", "c3", "c4", "c5"]) {
      sameBytes(sink.documents(`documents/many.${name}`), await rawDocuments(fx.client, "many", name));
    }
  });

  it("stops promptly when aborted", async () => {
    const controller = new AbortController();
    const sink = new CollectingSink({ delayMs: 20 });
    const c = cloner(sink, { signal: controller.signal, targetBytes: 2048 });
    const running = c.cloneAll([task("shop", "orders")]);
    setTimeout(() => controller.abort(), 50);
    await expect(running).rejects.toThrow(/stopped/);
    expect(sink.documents("documents/shop.orders").length).toBeLessThan(3000);
  });
});
