/**
 * Missing documents: the agent reads the requested `_id`s that still exist (raw BSON, exact
 * types) and answers with one `missing` slice on stream `missing/<requestId>`, sequence 0; zero
 * documents is a valid answer.
 */
import { EJSON } from "bson";
import { Int32, Long, ObjectId, type Document, type MongoClient } from "mongodb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { newestOplogOpTime } from "../../src/agent/oplogQueries.js";
import { compareOpTimes, toOpTime } from "../../src/protocol/optime.js";
import { MissingFetcher, splitNamespace } from "../../src/agent/missingFetcher.js";
import { createSourceClient } from "../../src/agent/sourceClient.js";
import { readSliceHeader } from "../../src/slice/format.js";
import { withEmulator, type AnyDoc, type EmulatorFixture } from "../helpers/emulator.js";
import { CollectingSink } from "./collectingSink.js";

function request(id: string, namespace: string, ids: unknown[]) {
  return { id, namespace, ids: EJSON.stringify({ ids }, { relaxed: false }) };
}

describe("MissingFetcher", () => {
  let fx: EmulatorFixture;
  let client: MongoClient;
  const oid = new ObjectId();
  beforeAll(async () => {
    fx = await withEmulator();
    client = createSourceClient({ uri: fx.emulator.uri });
    await client.connect();
    await fx.client
      .db("shop")
      .collection<AnyDoc>("orders.archive")
      .insertMany([
        { _id: new Int32(1), v: "one" },
        { _id: Long.fromNumber(2), v: "two" },
        { _id: "three", v: 3 },
        { _id: oid, v: "oid" },
      ]);
  });
  afterAll(async () => {
    await client?.close();
    await fx?.close();
  });

  function fetcher(sink: CollectingSink) {
    return new MissingFetcher({
      client,
      sink,
      deployment: "dep-1",
      codec: "gzip",
      backoff: { initialMs: 5 },
    });
  }

  it("sends the documents that still exist, byte for byte, as missing/<id> #0", async () => {
    const sink = new CollectingSink();
    // 1.0 finds the Int32 1 (the same _id for MongoDB); 99 no longer exists.
    const newestBefore = (await newestOplogOpTime(fx.client))!;
    const found = await fetcher(sink).answer(
      request("req-1", "shop.orders.archive", [1.0, Long.fromNumber(2), oid, 99]),
    );
    expect(found).toBe(3);
    const [slice] = sink.stream("missing/req-1");
    expect(slice.sequence).toBe(0);
    const header = readSliceHeader(slice.bytes);
    // lastTs: the newest oplog optime read after the documents, which the daemon applies up to.
    expect(header.lastTs).toBeDefined();
    expect(compareOpTimes(toOpTime(header.lastTs!), newestBefore)).toBeGreaterThanOrEqual(0);
    expect(header).toMatchObject({
      kind: "missing",
      stream: "missing/req-1",
      namespace: "shop.orders.archive",
      count: 3,
    });
    const expected = (await fx.client
      .db("shop")
      .collection("orders.archive")
      .find({ _id: { $in: [new Int32(1), Long.fromNumber(2), oid] } } as Document, {
        sort: { _id: 1 },
        raw: true,
      })
      .toArray()) as unknown as Uint8Array[];
    const got = sink.documents("missing/req-1");
    expect(got.map((doc) => doc.toString("hex"))).toEqual(
      expected.map((doc) => Buffer.from(doc).toString("hex")),
    );
  });

  it("zero documents is a valid answer: an empty slice", async () => {
    const sink = new CollectingSink();
    expect(await fetcher(sink).answer(request("req-2", "shop.orders.archive", ["gone"]))).toBe(0);
    const [slice] = sink.stream("missing/req-2");
    expect(readSliceHeader(slice.bytes).count).toBe(0);
  });

  it("answers each request once, even when the job lists it again", async () => {
    const sink = new CollectingSink();
    const f = fetcher(sink);
    const r = request("req-3", "shop.orders.archive", ["three"]);
    f.request([r]);
    f.request([r, request("req-4", "shop.orders.archive", [])]);
    await f.idle();
    expect(sink.streams()).toEqual(["missing/req-3", "missing/req-4"]);
    expect(sink.stream("missing/req-3")).toHaveLength(1);
  });

  it("splits namespaces at the first dot", () => {
    expect(splitNamespace("shop.orders.archive")).toEqual({ db: "shop", collection: "orders.archive" });
    expect(() => splitNamespace("nodot")).toThrow(/not a namespace/);
  });
});
