/**
 * RawFindCursor against the emulator: whole batches of raw documents, byte for byte and in order,
 * sized by bytes; the next batch requested ahead; the server's cursor killed on close; a failed
 * getMore reported by the next call (never as an unhandled rejection).
 */
import { Long, serialize } from "bson";
import type { MongoClient } from "mongodb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RawFindCursor, readCursorReply } from "../../src/agent/rawFind.js";
import { createSourceClient } from "../../src/agent/sourceClient.js";
import { withEmulator, type AnyDoc, type EmulatorFixture } from "../helpers/emulator.js";

const SORTED = { filter: {}, sort: { _id: 1 }, hint: { _id: 1 } };

describe("RawFindCursor", () => {
  let fx: EmulatorFixture;
  let client: MongoClient;
  let expected: Buffer[];
  beforeAll(async () => {
    fx = await withEmulator();
    client = createSourceClient({ uri: fx.emulator.uri });
    await client.connect();
    await fx.client
      .db("shop")
      .collection<AnyDoc>("orders")
      .insertMany(Array.from({ length: 1000 }, (_, i) => ({ _id: 999 - i, note: "x".repeat(i % 300) })));
    const docs = await fx.client
      .db("shop")
      .collection("orders")
      .find({}, { sort: { _id: 1 }, raw: true })
      .toArray();
    expected = (docs as unknown as Uint8Array[]).map((doc) => Buffer.from(doc));
  });
  afterAll(async () => {
    await client?.close();
    await fx?.close();
  });

  async function readAll(cursor: RawFindCursor): Promise<Buffer[][]> {
    const batches: Buffer[][] = [];
    let batch: Buffer[] | undefined;
    while ((batch = await cursor.nextBatch())) batches.push(batch.map((doc) => Buffer.from(doc)));
    await cursor.close();
    return batches;
  }

  it("reads every document in order, byte for byte, in batches of about batchBytes", async () => {
    const batches = await readAll(
      new RawFindCursor(client, "shop", "orders", { ...SORTED, batchBytes: 16_384 }),
    );
    expect(Buffer.concat(batches.flat()).equals(Buffer.concat(expected))).toBe(true);
    expect(batches[0].length).toBe(101); // the server's first batch
    for (const batch of batches.slice(1, -1)) {
      const bytes = batch.reduce((sum, doc) => sum + doc.length, 0);
      expect(bytes).toBeGreaterThan(16_384 / 3);
      expect(bytes).toBeLessThan(16_384 * 3);
    }
    expect(fx.emulator.deployment.cursors.openCount).toBe(0);
  });

  it("uses batchSize when given, and the filter", async () => {
    const batches = await readAll(
      new RawFindCursor(client, "shop", "orders", {
        ...SORTED,
        filter: { _id: { $gte: 500 } },
        batchSize: 64,
      }),
    );
    expect(batches.map((batch) => batch.length)).toEqual([64, 64, 64, 64, 64, 64, 64, 52]);
    expect(Buffer.concat(batches.flat()).equals(Buffer.concat(expected.slice(500)))).toBe(true);
  });

  it("kills the server's cursor when closed early, then hands out nothing more", async () => {
    const cursor = new RawFindCursor(client, "shop", "orders", { ...SORTED, batchSize: 100 });
    expect(await cursor.nextBatch()).toHaveLength(100);
    expect(fx.emulator.deployment.cursors.openCount).toBe(1);
    await cursor.close();
    expect(fx.emulator.deployment.cursors.openCount).toBe(0);
    expect(await cursor.nextBatch()).toBeUndefined();
  });

  it("reports a failed getMore (sent ahead) from the next call", async () => {
    fx.emulator.faults.failCommand("getMore", 43); // CursorNotFound
    const cursor = new RawFindCursor(client, "shop", "orders", { ...SORTED, batchSize: 100 });
    expect(await cursor.nextBatch()).toHaveLength(100);
    await new Promise((resolve) => setTimeout(resolve, 50)); // the getMore fails meanwhile
    await expect(cursor.nextBatch()).rejects.toMatchObject({ code: 43 });
    await cursor.close();
  });

  it("readCursorReply refuses a reply without a cursor or a batch", () => {
    const cursor = Buffer.from(serialize({ id: Long.fromNumber(7), nextBatch: [{ a: 1 }] }));
    const read = readCursorReply({ cursor }, "nextBatch");
    expect(read.id.toNumber()).toBe(7);
    expect(read.documents.map((doc) => doc.equals(serialize({ a: 1 })))).toEqual([true]);
    expect(() => readCursorReply({ ok: 1 }, "nextBatch")).toThrow(/no cursor/);
    expect(() => readCursorReply({ cursor }, "firstBatch")).toThrow(/no id or no firstBatch/);
  });
});
