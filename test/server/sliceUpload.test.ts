import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { EJSON, Long, serialize, Timestamp, type Document } from "bson";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { DeploymentView } from "../../src/server/deploymentView.js";
import { encodeSlice } from "../../src/slice/format.js";
import { withServer, type ServerFixture } from "../helpers/server.js";

function docs(from: number, to: number, pad = 10): Buffer[] {
  const out: Buffer[] = [];
  for (let i = from; i < to; i++) out.push(Buffer.from(serialize({ _id: i, pad: "x".repeat(pad) })));
  return out;
}

function filesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir)) {
    const path = join(dir, entry);
    if (statSync(path).isDirectory()) out.push(...filesUnder(path));
    else out.push(path);
  }
  return out;
}

async function setup(fx: ServerFixture, name: string) {
  const created = (await fx.api<{ id: string; agentKey: string }>("POST", "/api/v1/deployments", { name }))
    .body;
  await fx.api("POST", `/api/v1/deployments/${name}/backup/start`);
  const put = (stream: string, sequence: number, body: Buffer, generation = 1) =>
    fetch(
      `${fx.server.url}/api/v1/agent/deployments/${created.id}/slices/${encodeURIComponent(stream)}/${sequence}`,
      {
        method: "PUT",
        headers: {
          authorization: `Bearer ${created.agentKey}`,
          "content-type": "application/octet-stream",
          "x-tidemark-generation": String(generation),
        },
        body,
      },
    ).then(async (r) => ({ status: r.status, body: (await r.json()) as Document }));
  const slice = (
    stream: string,
    sequence: number,
    documents: Buffer[],
    kind: "documents" | "oplog" = "documents",
  ) =>
    encodeSlice(
      {
        kind,
        deployment: created.id,
        stream,
        sequence,
        namespace: kind === "documents" ? stream.slice(10) : undefined,
      },
      documents,
      "zstd",
    );
  return { ...created, put, slice };
}

describe("slice uploads (PUT .../slices/:stream/:sequence)", () => {
  let fx: ServerFixture;
  let d: Awaited<ReturnType<typeof setup>>;
  beforeAll(async () => {
    fx = await withServer();
    d = await setup(fx, "rs");
  });
  afterAll(async () => fx?.close());

  it("stores a verified slice once and acknowledges a re-send as a duplicate", async () => {
    const body = d.slice("documents/shop.orders", 0, docs(0, 100));
    const first = await d.put("documents/shop.orders", 0, body);
    expect(first).toMatchObject({ status: 201, body: { stored: true, duplicate: false } });
    const again = await d.put("documents/shop.orders", 0, body);
    expect(again).toMatchObject({ status: 200, body: { stored: true, duplicate: true } });
    const listed = await fx.api<{ slices: Array<{ stream: string; count: number }> }>(
      "GET",
      "/api/v1/deployments/rs/slices",
    );
    expect(listed.body.slices).toHaveLength(1);
    expect(listed.body.slices[0]).toMatchObject({ stream: "documents/shop.orders", count: 100 });
    const stored = filesUnder(join(fx.dataDir, "oplogstore")).filter((f) => f.endsWith(".slice"));
    expect(stored).toHaveLength(1);
  });

  it("gives the agent the resume point: next sequence and the last _id with its type", async () => {
    const job = await fx.api<{
      collections: Array<{ namespace: string; nextSequence: number; lastId: string }>;
    }>("GET", `/api/v1/agent/deployments/${d.id}/job`, undefined, d.agentKey);
    const orders = job.body.collections.find((c) => c.namespace === "shop.orders")!;
    expect(orders.nextSequence).toBe(1);
    expect(EJSON.parse(orders.lastId, { relaxed: false })).toEqual({ _id: expect.anything() });
    expect(JSON.parse(orders.lastId)).toEqual({ _id: { $numberInt: "99" } });
  });

  it("rejects a corrupted slice with 400 and stores nothing", async () => {
    const body = d.slice("documents/shop.orders", 1, docs(100, 200));
    const corrupt = Buffer.from(body);
    corrupt[corrupt.length - 5] ^= 0xff;
    const answer = await d.put("documents/shop.orders", 1, corrupt);
    expect(answer.status).toBe(400);
    expect(answer.body.code).toBe("SLICE_BODY_CHECKSUM");
    const truncated = await d.put("documents/shop.orders", 1, body.subarray(0, body.length - 100));
    expect(truncated.status).toBe(400);
    const listed = await fx.api<{ slices: unknown[] }>("GET", "/api/v1/deployments/rs/slices");
    expect(listed.body.slices).toHaveLength(1);
  });

  it("refuses gaps, a different slice under a taken sequence, stale generations and mismatched headers", async () => {
    const outOfOrder = await d.put(
      "documents/shop.orders",
      2,
      d.slice("documents/shop.orders", 2, docs(200, 210)),
    );
    expect(outOfOrder).toMatchObject({ status: 409, body: { code: "OUT_OF_ORDER" } });
    const taken = await d.put(
      "documents/shop.orders",
      0,
      d.slice("documents/shop.orders", 0, docs(500, 510)),
    );
    expect(taken).toMatchObject({ status: 409, body: { code: "SEQUENCE_TAKEN" } });
    const stale = await d.put(
      "documents/shop.orders",
      1,
      d.slice("documents/shop.orders", 1, docs(100, 110)),
      0,
    );
    expect(stale).toMatchObject({ status: 409, body: { code: "STALE_GENERATION" } });
    const mismatch = await d.put("documents/shop.other", 0, d.slice("documents/shop.orders", 0, docs(0, 1)));
    expect(mismatch.status).toBe(400);
    expect(String(mismatch.body.error)).toContain("stream");
  });

  it("tracks oplog slices: last optime and counts in the deployment view", async () => {
    const entries = [1, 2, 3].map((i) =>
      Buffer.from(
        serialize({
          op: "n",
          ns: "",
          o: { msg: "x" },
          ts: new Timestamp({ t: 1700000000, i }),
          t: Long.fromNumber(1),
        }),
      ),
    );
    const answer = await d.put("oplog", 0, d.slice("oplog", 0, entries, "oplog"));
    expect(answer.status).toBe(201);
    const view = await fx.api<DeploymentView>("GET", "/api/v1/deployments/rs");
    expect(view.body.oplog.lastTs).toEqual({ t: 1700000000, i: 3 });
    expect(view.body.slices.oplog).toMatchObject({ count: 1, entries: 3 });
    expect(view.body.slices.documents).toMatchObject({ count: 1, documents: 100 });
  });

  it("refuses slices while the backup is stopped", async () => {
    await fx.api("POST", "/api/v1/deployments/rs/backup/stop");
    const answer = await d.put(
      "documents/shop.orders",
      1,
      d.slice("documents/shop.orders", 1, docs(100, 110)),
    );
    expect(answer).toMatchObject({ status: 409, body: { code: "NOT_RUNNING" } });
    await fx.api("POST", "/api/v1/deployments/rs/backup/start");
  });
});

describe("a full oplog store", () => {
  let fx: ServerFixture;
  beforeAll(async () => {
    fx = await withServer({ oplogStoreMaxBytes: 64 * 1024 });
  });
  afterAll(async () => fx?.close());

  it("answers 507 and keeps the slices it had", async () => {
    const d = await setup(fx, "full");
    const small = d.slice("documents/a.b", 0, docs(0, 10));
    expect((await d.put("documents/a.b", 0, small)).status).toBe(201);
    const random = Array.from({ length: 100 }, (_, i) =>
      Buffer.from(
        serialize({
          _id: 1000 + i,
          noise: Buffer.from(Array.from({ length: 1024 }, () => Math.floor(Math.random() * 256))),
        }),
      ),
    );
    const big = d.slice("documents/a.b", 1, random);
    const answer = await d.put("documents/a.b", 1, big);
    expect(answer.status).toBe(507);
    expect(answer.body.code).toBe("STORE_FULL");
    const view = await fx.api<DeploymentView>("GET", "/api/v1/deployments/full");
    expect(view.body.slices.documents.count).toBe(1);
  });
});
