/**
 * Snapshots in every kind of store, end to end through the HTTP API (the emulator with data, the
 * server with its daemon, the in-process agent), as snapshots.test.ts does for the blockstore:
 *
 * - fs: full mongodump-layout copies whose files hash to the manifest and the deployment's
 *   dbHash; verify names a damaged file; delete and groom remove directories;
 * - s3 (s3rver over HTTP, behind a TCP proxy that stands for the endpoint going down and coming
 *   back): incremental blocks as objects; verify names a damaged block; groom removes only
 *   unreferenced blocks; an endpoint failing mid-snapshot fails the snapshot, never completes it;
 * - encryption: sealed blocks in the blockstore, deduplication kept, restarts with a wrong key
 *   (refused, nothing lost), the right key, a rotated key, and no key.
 */
import { createHash, randomBytes } from "node:crypto";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { connect, createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import {
  CreateBucketCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
} from "@aws-sdk/client-s3";
import Database from "better-sqlite3";
import { BSON } from "bson";
import { Int32, ObjectId } from "mongodb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { DeploymentView } from "../../src/server/deploymentView.js";
import type { snapshotView } from "../../src/server/routes/snapshots.js";
import type { StartServerOptions } from "../../src/server/server.js";
import { EncryptionError, MasterKey } from "../../src/snapshot/encryption/index.js";
import { manifestBlocks, parseManifest, type SnapshotManifest } from "../../src/snapshot/manifest.js";
import { readCollection } from "../../src/snapshot/reader.js";
import { blockKey } from "../../src/snapshot/stores/index.js";
import { S3RVER_CREDENTIALS, startS3rver, type RunningS3rver } from "../oplogstore/s3rverFixture.js";
import { startActiveBackup, type ActiveBackup } from "../helpers/activeBackup.js";
import { withEmulator, type AnyDoc, type EmulatorFixture } from "../helpers/emulator.js";
import { withServer, type ServerFixture } from "../helpers/server.js";
import { waitFor } from "../helpers/wait.js";

type SnapshotView = ReturnType<typeof snapshotView> & { manifest?: unknown };
type GroomReport = { blocksRemoved: number; partialsRemoved: number; errors: string[] };

/** In every order's note, so the raw stored bytes can be searched for plaintext. */
const MARKER = "tidemark-plaintext-marker";

const COMMON: StartServerOptions = {
  sliceMb: 0.1,
  oplogFlushSeconds: 0.2,
  snapshotBlockBytes: 64 * 1024,
  snapshotSchedule: { enabled: false },
};

/** shop.orders (`orders` documents of ~300 bytes), shop.customers, cms.pages and a view on it. */
async function seed(source: EmulatorFixture, orders: number): Promise<void> {
  const shop = source.client.db("shop");
  const docs = Array.from({ length: orders }, (_, i) => ({
    _id: new ObjectId(),
    n: i,
    customer: `customer-${i % 500}`,
    lines: [{ sku: `sku-${i % 13}`, qty: new Int32(1 + (i % 4)), price: (i % 97) + 0.5 }],
    note: `${MARKER} ${i}: ${createHash("sha256").update(String(i)).digest("hex")}`,
  }));
  for (let k = 0; k < docs.length; k += 2000)
    await shop.collection<AnyDoc>("orders").insertMany(docs.slice(k, k + 2000));
  await shop
    .collection<AnyDoc>("customers")
    .insertMany(
      Array.from({ length: 1500 }, (_, i) => ({ _id: i, name: `customer ${i}`, tags: [`t${i % 7}`] })),
    );
  await shop.collection("orders").createIndex({ customer: 1, n: -1 }, { name: "by_customer" });
  const cms = source.client.db("cms");
  await cms.collection<AnyDoc>("pages").insertOne({ _id: "home", title: "Home" });
  await cms.createCollection("home_page", { viewOn: "pages", pipeline: [{ $match: { _id: "home" } }] });
}

/** Changes 1% of the orders and customers, spread evenly. */
async function changeOnePercent(source: EmulatorFixture, tag: string): Promise<void> {
  const shop = source.client.db("shop");
  const ids = (
    await shop
      .collection("orders")
      .find({}, { projection: { _id: 1 } })
      .sort({ _id: 1 })
      .toArray()
  ).map((d) => d._id);
  for (let k = 0; k < ids.length; k += 100)
    await shop.collection("orders").updateOne({ _id: ids[k] }, { $set: { note: `${tag} ${k}` } });
  for (let k = 0; k < 1500; k += 100)
    await shop.collection<AnyDoc>("customers").updateOne({ _id: k }, { $set: { tag } });
}

async function snapshotEnd(fx: ServerFixture, id: string): Promise<SnapshotView> {
  return waitFor(
    `snapshot ${id} to end`,
    async () => {
      const view = (await fx.api<SnapshotView>("GET", `/api/v1/snapshots/${id}?manifest=true`)).body;
      return view.status !== "writing" ? view : undefined;
    },
    60_000,
    20,
  );
}

async function startSnapshot(fx: ServerFixture, backup: ActiveBackup): Promise<SnapshotView> {
  await backup.caughtUp();
  const started = await fx.api<SnapshotView>("POST", `/api/v1/deployments/${backup.id}/snapshots`, {});
  expect(started.status, JSON.stringify(started.body)).toBe(202);
  expect(started.body.status).toBe("writing");
  return started.body;
}

async function take(fx: ServerFixture, backup: ActiveBackup): Promise<SnapshotView> {
  const done = await snapshotEnd(fx, (await startSnapshot(fx, backup)).id);
  expect(done.status, done.error ?? "").toBe("complete");
  return done;
}

function manifestOf(view: SnapshotView): SnapshotManifest {
  return parseManifest(view.manifest, view.id);
}

/** Verifies through the API and waits for the outcome. */
async function verify(fx: ServerFixture, id: string): Promise<SnapshotView> {
  const started = await fx.api<SnapshotView>("POST", `/api/v1/snapshots/${id}/verify`);
  expect(started.status, JSON.stringify(started.body)).toBe(202);
  return waitFor(
    `verification of ${id}`,
    async () => {
      const view = (await fx.api<SnapshotView>("GET", `/api/v1/snapshots/${id}`)).body;
      return view.verification.state !== "verifying" ? view : undefined;
    },
    30_000,
    20,
  );
}

function firstProblem(view: SnapshotView): string {
  return (view.verification.result as { firstProblem?: string } | null)?.firstProblem ?? "";
}

async function groom(fx: ServerFixture): Promise<GroomReport> {
  const groomed = await fx.api<GroomReport>("POST", "/api/v1/groom");
  expect(groomed.status, JSON.stringify(groomed.body)).toBe(200);
  expect(groomed.body.errors).toEqual([]);
  return groomed.body;
}

/** Per collection, the manifest's MD5s equal the emulator's dbHash now (nothing written since T). */
async function expectEqualToDeployment(source: EmulatorFixture, manifest: SnapshotManifest): Promise<void> {
  for (const db of [...new Set(manifest.collections.map((c) => c.db))]) {
    const hash = await source.client.db(db).command({ dbHash: 1 });
    const inManifest = Object.fromEntries(
      manifest.collections.filter((c) => c.db === db && c.md5 !== null).map((c) => [c.name, c.md5]),
    );
    expect(inManifest, db).toEqual(hash.collections);
    expect(manifest.databases.find((d) => d.name === db)?.md5, db).toBe(hash.md5);
  }
}

/** Reads every collection back from the snapshot's store; returns the first order read. */
async function expectReadBack(fx: ServerFixture, manifest: SnapshotManifest): Promise<Buffer | undefined> {
  const store = await fx.server.context.snapshots!.stores.byLocation(manifest.store);
  let firstOrder: Buffer | undefined;
  for (const collection of manifest.collections) {
    if (collection.type === "view") continue;
    const md5 = createHash("md5");
    let count = 0;
    for await (const doc of readCollection(manifest, collection, store.source)) {
      if (collection.namespace === "shop.orders") firstOrder ??= doc;
      md5.update(doc);
      count++;
    }
    expect({ namespace: collection.namespace, count, md5: md5.digest("hex") }).toEqual({
      namespace: collection.namespace,
      count: collection.count,
      md5: collection.md5,
    });
  }
  return firstOrder;
}

/** Raw BSON documents laid end to end (a mongodump `.bson` file), split. */
function splitBson(bytes: Buffer): Buffer[] {
  const docs: Buffer[] = [];
  for (let at = 0; at < bytes.length;) {
    const size = bytes.readInt32LE(at);
    docs.push(bytes.subarray(at, at + size));
    at += size;
  }
  return docs;
}

function flipByte(bytes: Buffer, at = Math.floor(bytes.length / 2)): Buffer {
  const copy = Buffer.from(bytes);
  copy[at] ^= 0xff;
  return copy;
}

describe("snapshots in the file system store (fs:/PATH)", () => {
  let source: EmulatorFixture;
  let fx: ServerFixture;
  let backup: ActiveBackup;
  const root = mkdtempSync(join(tmpdir(), "tidemark-fs-snapshots-"));
  const logLines: string[] = [];
  let first: SnapshotView;
  let second: SnapshotView;

  beforeAll(async () => {
    source = await withEmulator();
    await seed(source, 3000);
    fx = await withServer({ ...COMMON, log: (line) => logLines.push(line) });
    backup = await startActiveBackup(fx, source, "fsrs", (line) => logLines.push(line));
    const patched = await fx.api<DeploymentView>(
      "PATCH",
      `/api/v1/deployments/${backup.id}/snapshot-settings`,
      {
        store: `fs:${root}`,
      },
    );
    expect(patched.status, JSON.stringify(patched.body)).toBe(200);
  }, 60_000);

  afterAll(async () => {
    await backup?.agent.stop();
    await fx?.close();
    await source?.close();
    rmSync(root, { recursive: true, force: true });
    if (process.env.TIDEMARK_TEST_LOG) process.stderr.write(`${logLines.join("\n")}\n`);
  });

  it("writes a mongodump directory whose data files hash to the manifest and the deployment's dbHash", async () => {
    first = await take(fx, backup);
    const manifest = manifestOf(first);
    expect(first.storeKind).toBe("fs");
    expect(manifest.storeKind).toBe("fs");
    expect(first.store).toBe(`fs:${root}`);
    expect(first.storedBytes).toBeGreaterThan(0);
    await expectEqualToDeployment(source, manifest);

    const dir = join(root, first.id);
    expect(readdirSync(dir).sort()).toEqual(["cms", "shop", "tidemark-manifest.json"]);
    expect(readdirSync(join(dir, "shop")).sort()).toEqual([
      "customers.bson.gz",
      "customers.metadata.json",
      "orders.bson.gz",
      "orders.metadata.json",
    ]);
    // A view is its metadata only, its definition a document of system.views, as mongodump writes them.
    expect(readdirSync(join(dir, "cms")).sort()).toEqual([
      "home_page.metadata.json",
      "pages.bson.gz",
      "pages.metadata.json",
      "system.views.bson.gz",
      "system.views.metadata.json",
    ]);
    const metadata = JSON.parse(readFileSync(join(dir, "shop", "orders.metadata.json"), "utf8")) as {
      collectionName: string;
      uuid: string;
      indexes: Array<{ name: string }>;
    };
    const orders = manifest.collections.find((c) => c.namespace === "shop.orders")!;
    expect(metadata.collectionName).toBe("orders");
    expect(metadata.uuid).toBe(orders.uuid);
    expect(metadata.indexes.map((i) => i.name)).toEqual(expect.arrayContaining(["_id_", "by_customer"]));

    const shopHash = await source.client.db("shop").command({ dbHash: 1 });
    for (const name of ["orders", "customers"]) {
      const bson = gunzipSync(readFileSync(join(dir, "shop", `${name}.bson.gz`)));
      const docs = splitBson(bson);
      const entry = manifest.collections.find((c) => c.namespace === `shop.${name}`)!;
      expect(docs.length).toBe(entry.count);
      expect(bson.length).toBe(entry.bytes);
      const md5 = createHash("md5").update(bson).digest("hex");
      expect(md5, name).toBe(entry.md5);
      expect(md5, name).toBe(shopHash.collections[name]);
    }
    const firstDoc = BSON.deserialize(
      splitBson(gunzipSync(readFileSync(join(dir, "shop", "orders.bson.gz"))))[0],
    );
    expect(String(firstDoc.note)).toContain(MARKER);

    const readBack = await expectReadBack(fx, manifest);
    expect(readBack?.toString("latin1")).toContain(MARKER);
  });

  it("a second snapshot is a full copy, not a delta", async () => {
    await source.client
      .db("shop")
      .collection<AnyDoc>("customers")
      .updateOne({ _id: 7 }, { $set: { name: "changed" } });
    second = await take(fx, backup);
    const manifest = manifestOf(second);
    await expectEqualToDeployment(source, manifest);
    expect(manifest.collections.every((c) => c.runs === undefined)).toBe(true);
    // Nothing is shared with the first: as many bytes stored again.
    expect(second.storedBytes).toBeGreaterThan(0.9 * first.storedBytes);
    expect(existsSync(join(root, second.id, "shop", "orders.bson.gz"))).toBe(true);
    expect(readFileSync(join(root, second.id, "shop", "orders.bson.gz"))).toEqual(
      readFileSync(join(root, first.id, "shop", "orders.bson.gz")),
    );
    expect(readFileSync(join(root, second.id, "shop", "customers.bson.gz"))).not.toEqual(
      readFileSync(join(root, first.id, "shop", "customers.bson.gz")),
    );
    await expectReadBack(fx, manifest);
  });

  it("verify passes, then fails naming the data file with one flipped byte", async () => {
    expect((await verify(fx, first.id)).verification.state).toBe("passed");
    const file = join(root, first.id, "shop", "orders.bson.gz");
    writeFileSync(file, flipByte(readFileSync(file)));
    const failed = await verify(fx, first.id);
    expect(failed.verification.state).toBe("failed");
    expect(firstProblem(failed)).toContain("shop/orders.bson.gz");
    // The other snapshot's copy is its own.
    expect((await verify(fx, second.id)).verification.state).toBe("passed");
  });

  it("delete removes the snapshot's directory; groom removes an interrupted write's .partial-*", async () => {
    expect((await fx.api("DELETE", `/api/v1/snapshots/${first.id}`)).status).toBe(200);
    expect(existsSync(join(root, first.id))).toBe(false);
    expect(readdirSync(root).filter((name) => name.includes(first.id))).toEqual([]);
    const listed = (
      await fx.api<{ snapshots: SnapshotView[] }>("GET", `/api/v1/deployments/${backup.id}/snapshots`)
    ).body.snapshots;
    expect(listed.map((s) => s.id)).toEqual([second.id]);

    // What a crash in the middle of a write leaves.
    const partial = join(root, ".partial-00000000-dead-4bad-8bad-000000000000");
    mkdirSync(join(partial, "shop"), { recursive: true });
    writeFileSync(join(partial, "shop", "orders.bson.gz"), randomBytes(1000));
    const report = await groom(fx);
    expect(report.partialsRemoved).toBe(1);
    expect(existsSync(partial)).toBe(false);
    expect(readdirSync(root)).toEqual([second.id]);
    expect((await verify(fx, second.id)).verification.state).toBe("passed");
  });
});

/**
 * A TCP proxy in front of s3rver: `stop` closes it and cuts every connection, so the endpoint the
 * server knows refuses connections, as a stopped S3 service does; `start` brings it back on the
 * same port with the same objects behind it.
 */
async function startProxy(
  target: string,
): Promise<{ endpoint: string; stop(): Promise<void>; start(): Promise<void> }> {
  const upstream = new URL(target);
  let server: Server | undefined;
  const sockets = new Set<Socket>();
  let port = 0;
  const start = async () => {
    const s = createServer((client) => {
      const remote = connect(Number(upstream.port), upstream.hostname);
      for (const socket of [client, remote]) {
        sockets.add(socket);
        socket.on("close", () => sockets.delete(socket));
        socket.on("error", () => {
          client.destroy();
          remote.destroy();
        });
      }
      client.pipe(remote).pipe(client);
    });
    await new Promise<void>((resolve, reject) => {
      s.once("error", reject);
      s.listen(port, "127.0.0.1", () => resolve());
    });
    const address = s.address();
    port = typeof address === "object" && address ? address.port : port;
    server = s;
  };
  await start();
  return {
    endpoint: `http://127.0.0.1:${port}`,
    start,
    async stop() {
      const s = server;
      server = undefined;
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => (s ? s.close(() => resolve()) : resolve()));
    },
  };
}

describe("snapshots in an S3 store (s3rver over HTTP)", () => {
  const BUCKET = "tidemark-snapshots";
  let s3rver: RunningS3rver;
  let proxy: Awaited<ReturnType<typeof startProxy>>;
  let admin: S3Client;
  let source: EmulatorFixture;
  let fx: ServerFixture;
  let backup: ActiveBackup;
  const logLines: string[] = [];
  let first: SnapshotView;
  let second: SnapshotView;

  /** The block hashes stored under `prefix`, asked of s3rver directly (not through the proxy). */
  async function storedBlocks(prefix: string): Promise<Set<string>> {
    const out = await admin.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: `${prefix}/` }));
    return new Set(
      (out.Contents ?? []).map((o) => {
        const key = o.Key ?? "";
        expect(key).toMatch(new RegExp(`^${prefix}/blocks/[0-9a-f]{2}/[0-9a-f]{64}$`));
        return key.slice(key.lastIndexOf("/") + 1);
      }),
    );
  }

  beforeAll(async () => {
    s3rver = await startS3rver();
    admin = new S3Client({
      endpoint: s3rver.endpoint,
      region: "us-east-1",
      forcePathStyle: true,
      credentials: S3RVER_CREDENTIALS,
    });
    await admin.send(new CreateBucketCommand({ Bucket: BUCKET }));
    proxy = await startProxy(s3rver.endpoint);
    source = await withEmulator();
    await seed(source, 4000);
    // A pause after each block stored, so a base snapshot lasts long enough to cut its store off
    // (read once, at server start).
    process.env.TIDEMARK_FAULT_SNAPSHOT_DELAY_MS = "50";
    try {
      fx = await withServer({
        ...COMMON,
        s3: { endpoint: proxy.endpoint, forcePathStyle: true, ...S3RVER_CREDENTIALS, region: "us-east-1" },
        snapshotStore: `s3://${BUCKET}/snaps`,
        log: (line) => logLines.push(line),
      });
    } finally {
      delete process.env.TIDEMARK_FAULT_SNAPSHOT_DELAY_MS;
    }
    backup = await startActiveBackup(fx, source, "s3rs", (line) => logLines.push(line));
  }, 60_000);

  afterAll(async () => {
    await backup?.agent.stop();
    await fx?.close();
    await source?.close();
    await proxy?.stop();
    admin?.destroy();
    await s3rver?.stop();
    if (process.env.TIDEMARK_TEST_LOG) process.stderr.write(`${logLines.join("\n")}\n`);
  });

  it("stores blocks as objects; after 1% changes the second snapshot stores at most 5%", async () => {
    first = await take(fx, backup);
    expect(first.storeKind).toBe("s3");
    expect(first.store).toBe(`s3://${BUCKET}/snaps`);
    const firstManifest = manifestOf(first);
    await expectEqualToDeployment(source, firstManifest);
    expect(first.storedBytes).toBeGreaterThan(0);
    expect(first.storedBytes).toBeLessThan(first.logicalBytes);
    expect(await storedBlocks("snaps")).toEqual(manifestBlocks(firstManifest));

    await changeOnePercent(source, "edited");
    second = await take(fx, backup);
    const manifest = manifestOf(second);
    const fraction = second.storedBytes / second.logicalBytes;
    expect(fraction, `stored ${second.storedBytes} of ${second.logicalBytes}`).toBeLessThanOrEqual(0.05);
    expect(second.storedBytes).toBeGreaterThan(0);
    expect(manifest.collections.find((c) => c.namespace === "shop.orders")!.runs!.map((r) => r.kind)).toEqual(
      ["base", "delta"],
    );
    await expectEqualToDeployment(source, manifest);
    await expectReadBack(fx, manifest);
    // Every block either snapshot names is an object under the prefix, and nothing else is.
    expect(await storedBlocks("snaps")).toEqual(
      new Set([...manifestBlocks(firstManifest), ...manifestBlocks(manifest)]),
    );
  });

  it("verify passes, then fails naming a block whose object has a flipped byte", async () => {
    expect((await verify(fx, second.id)).verification.state).toBe("passed");
    const manifest = manifestOf(second);
    const hash = manifest.collections.find((c) => c.namespace === "shop.orders")!.runs![0].blocks[3].hash;
    const key = `snaps/${blockKey(hash)}`;
    const original = Buffer.from(
      await (
        await admin.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }))
      ).Body!.transformToByteArray(),
    );
    await admin.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: flipByte(original) }));
    const failed = await verify(fx, second.id);
    expect(failed.verification.state).toBe("failed");
    expect(firstProblem(failed)).toContain(hash.slice(0, 16));
    expect(firstProblem(failed)).toContain("shop.orders");
    // Put right again: the snapshot is whole.
    await admin.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: original }));
    expect((await verify(fx, second.id)).verification.state).toBe("passed");
  });

  it("groom removes only the blocks no snapshot refers to", async () => {
    const before = await storedBlocks("snaps");
    // The second snapshot's chains start with the first's base: deleting the first frees nothing.
    expect((await fx.api("DELETE", `/api/v1/snapshots/${first.id}`)).status).toBe(200);
    expect((await groom(fx)).blocksRemoved).toBe(0);
    expect(await storedBlocks("snaps")).toEqual(before);

    // A fresh snapshot on new bases; once the second is deleted, its blocks are unreferenced.
    const patched = await fx.api("PATCH", `/api/v1/deployments/${backup.id}/snapshot-settings`, {
      schedule: { enabled: false, maxDeltas: 0 },
    });
    expect(patched.status, JSON.stringify(patched.body)).toBe(200);
    await changeOnePercent(source, "again");
    const fresh = await take(fx, backup);
    const manifest = manifestOf(fresh);
    expect(manifest.collections.find((c) => c.namespace === "shop.orders")!.runs!.map((r) => r.kind)).toEqual(
      ["base"],
    );
    expect((await fx.api("DELETE", `/api/v1/snapshots/${second.id}`)).status).toBe(200);
    const report = await groom(fx);
    expect(report.blocksRemoved).toBeGreaterThan(0);
    expect(await storedBlocks("snaps")).toEqual(manifestBlocks(manifest));
    expect((await verify(fx, fresh.id)).verification.state).toBe("passed");
    await expectEqualToDeployment(source, manifest);
    expect((await groom(fx)).blocksRemoved).toBe(0);
  });

  it("an S3 endpoint failing mid-snapshot fails the snapshot; once it is back, a new one completes", async () => {
    const patched = await fx.api("PATCH", `/api/v1/deployments/${backup.id}/snapshot-settings`, {
      store: `s3://${BUCKET}/faults`,
    });
    expect(patched.status, JSON.stringify(patched.body)).toBe(200);
    const started = await startSnapshot(fx, backup);
    await waitFor(
      "the first blocks in the new store",
      async () => (await storedBlocks("faults")).size >= 2,
      30_000,
      10,
    );
    await proxy.stop();
    let ended: SnapshotView;
    try {
      ended = await snapshotEnd(fx, started.id);
    } finally {
      await proxy.start();
    }
    expect(ended.status).toBe("failed");
    expect(ended.error).toContain(`s3://${BUCKET}/faults`);
    expect(ended.error).toMatch(/cannot reach|S3 service/);
    expect(ended.manifest).toBeNull();
    expect(ended.ts).toBeNull();
    const listed = (
      await fx.api<{ snapshots: SnapshotView[] }>("GET", `/api/v1/deployments/${backup.id}/snapshots`)
    ).body.snapshots;
    expect(listed.find((s) => s.id === started.id)?.status).toBe("failed");
    expect((await fx.api(`POST`, `/api/v1/snapshots/${started.id}/verify`)).status).toBe(409);

    const after = await take(fx, backup);
    expect(after.store).toBe(`s3://${BUCKET}/faults`);
    const manifest = manifestOf(after);
    await expectEqualToDeployment(source, manifest);
    expect((await verify(fx, after.id)).verification.state).toBe("passed");
    // What the failed snapshot stored is reused or, if nothing refers to it, groomed.
    await groom(fx);
    expect(await storedBlocks("faults")).toEqual(manifestBlocks(manifest));
  });
});

describe("encrypted snapshots (master key file)", () => {
  let source: EmulatorFixture;
  let fx: ServerFixture;
  let backup: ActiveBackup;
  let port: number;
  const dataDir = mkdtempSync(join(tmpdir(), "tidemark-encrypted-"));
  const keysDir = mkdtempSync(join(tmpdir(), "tidemark-keys-"));
  const keyFile = (name: string) => {
    const file = join(keysDir, name);
    writeFileSync(file, `${randomBytes(32).toString("hex")}\n`, { mode: 0o600 });
    return file;
  };
  const oldKey = keyFile("old.key");
  const otherKey = keyFile("other.key");
  const newKey = keyFile("new.key");
  const logLines: string[] = [];
  let first: SnapshotView;
  let second: SnapshotView;

  /** (Re)starts the server on the same data directory and port, so the agent finds it again. */
  function start(options: StartServerOptions): Promise<ServerFixture> {
    return withServer({
      ...COMMON,
      dataDir,
      ...(port ? { port } : {}),
      log: (line) => logLines.push(line),
      ...options,
    });
  }

  async function restart(options: StartServerOptions): Promise<void> {
    await fx.close();
    fx = await start(options);
  }

  beforeAll(async () => {
    source = await withEmulator();
    await seed(source, 3000);
    fx = await start({ encryptionKeyFile: oldKey });
    port = fx.server.port;
    // The agent and backup.view() call the first fixture's URL: restarts keep it (same port).
    backup = await startActiveBackup(fx, source, "encrs", (line) => logLines.push(line));
  }, 60_000);

  afterAll(async () => {
    await backup?.agent.stop();
    await fx?.close();
    await source?.close();
    rmSync(dataDir, { recursive: true, force: true });
    rmSync(keysDir, { recursive: true, force: true });
    if (process.env.TIDEMARK_TEST_LOG) process.stderr.write(`${logLines.join("\n")}\n`);
  });

  it("seals every block: no plaintext at rest, reads back, verifies, still deduplicates", async () => {
    first = await take(fx, backup);
    const manifest = manifestOf(first);
    expect(manifest.encrypted).toBe(true);
    expect(first.storeKind).toBe("blockstore");
    await expectEqualToDeployment(source, manifest);
    const firstOrder = await expectReadBack(fx, manifest);
    expect(firstOrder?.toString("latin1")).toContain(MARKER);

    const db = new Database(join(dataDir, "blockstore.sqlite"), { readonly: true, fileMustExist: true });
    try {
      const rows = db.prepare("SELECT hash, data FROM blocks").all() as Array<{ hash: string; data: Buffer }>;
      expect(new Set(rows.map((r) => r.hash))).toEqual(manifestBlocks(manifest));
      for (const { hash, data } of rows) {
        expect(data.subarray(0, 7).toString("latin1"), hash).toBe("TDMKENC");
        expect(data.includes(MARKER), hash).toBe(false);
        expect(data.includes("customer-1"), hash).toBe(false);
      }
    } finally {
      db.close();
    }
    expect((await verify(fx, first.id)).verification.state).toBe("passed");

    await changeOnePercent(source, "edited");
    second = await take(fx, backup);
    const fraction = second.storedBytes / second.logicalBytes;
    expect(fraction, `stored ${second.storedBytes} of ${second.logicalBytes}`).toBeLessThanOrEqual(0.05);
    expect(manifestOf(second).encrypted).toBe(true);
    await expectEqualToDeployment(source, manifestOf(second));
    await expectReadBack(fx, manifestOf(second));
  });

  it("a different master key is refused at start, naming fingerprints; the right key loses nothing", async () => {
    const before = await backup.view();
    await fx.close();
    const refused = await start({ encryptionKeyFile: otherKey }).then(
      (server) => server,
      (error: unknown) => error,
    );
    if (!(refused instanceof Error)) {
      await (refused as ServerFixture).close();
      throw new Error("the server started with the wrong master key");
    }
    expect(refused).toBeInstanceOf(EncryptionError);
    expect((refused as EncryptionError).code).toBe("NO_KEY");
    expect(refused.message).toContain(MasterKey.fromFile(oldKey).fingerprint);
    expect(refused.message).toContain(MasterKey.fromFile(otherKey).fingerprint);

    fx = await start({ encryptionKeyFile: oldKey });
    // The deployment carries on: same generation and T0 (no new initial sync), the agent back.
    await source.client.db("shop").collection<AnyDoc>("customers").insertOne({ _id: 10_000, name: "after" });
    const view = await backup.caughtUp();
    expect(view.state).toBe("active");
    expect(view.generation).toBe(before.generation);
    expect(view.initialSync.t0).toEqual(before.initialSync.t0);
    for (const snapshot of [first, second])
      expect((await verify(fx, snapshot.id)).verification.state).toBe("passed");
    await expectReadBack(fx, manifestOf(first));
  });

  it("master key rotation: the old key as previous, then the new key alone", async () => {
    await restart({ encryptionKeyFile: newKey, previousEncryptionKeyFiles: [oldKey] });
    expect(logLines.some((line) => /data keys re-wrapped under master key/.test(line))).toBe(true);
    expect((await verify(fx, first.id)).verification.state).toBe("passed");

    await restart({ encryptionKeyFile: newKey });
    for (const snapshot of [first, second])
      expect((await verify(fx, snapshot.id)).verification.state).toBe("passed");
    // Same data key, re-wrapped: a snapshot after rotation still deduplicates against the older ones.
    await changeOnePercent(source, "rotated");
    const third = await take(fx, backup);
    expect(third.storedBytes / third.logicalBytes).toBeLessThanOrEqual(0.05);
    await expectReadBack(fx, manifestOf(third));
  });

  it("without a master key an encrypted snapshot cannot be verified, and says which key to give", async () => {
    await restart({});
    expect(logLines.some((line) => /encrypted snapshots exist but no master key is given/.test(line))).toBe(
      true,
    );
    const failed = await verify(fx, first.id);
    expect(failed.verification.state).toBe("failed");
    expect(firstProblem(failed)).toMatch(/encrypted: start the server with its master key/);
  });
});
