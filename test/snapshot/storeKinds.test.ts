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
import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import Database from "better-sqlite3";
import { BSON } from "bson";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { DeploymentView } from "../../src/server/deploymentView.js";
import type { StartServerOptions } from "../../src/server/server.js";
import { EncryptionError, MasterKey } from "../../src/snapshot/encryption/index.js";
import { manifestBlocks } from "../../src/snapshot/manifest.js";
import { blockKey } from "../../src/snapshot/stores/index.js";
import { S3RVER_CREDENTIALS, startS3rverWithBucket, type S3rverBucket } from "../oplogstore/s3rverFixture.js";
import { startActiveBackup, type ActiveBackup } from "../helpers/activeBackup.js";
import { withEmulator, type AnyDoc, type EmulatorFixture } from "../helpers/emulator.js";
import { withServer, type ServerFixture } from "../helpers/server.js";
import {
  changeOnePercent,
  expectManifestEqualsDbHash,
  expectReadBack,
  groomViaApi,
  listSnapshots,
  manifestOf,
  seedCms,
  seedShop,
  snapshotEnd,
  snapshotServerOptions,
  startSnapshot,
  takeCaughtUpSnapshot,
  verifySnapshotViaApi,
  type SnapshotView,
} from "../helpers/snapshots.js";
import { waitFor } from "../helpers/wait.js";

/** In every order's note, so the raw stored bytes can be searched for plaintext. */
const MARKER = "tidemark-plaintext-marker";

const COMMON = snapshotServerOptions();
const CUSTOMERS = 1500;

/** shop.orders (`orders` documents of ~300 bytes), shop.customers, cms.pages and a view on it. */
async function seed(source: EmulatorFixture, orders: number): Promise<void> {
  await seedShop(source.client, {
    orders,
    notePrefix: MARKER,
    withPrice: true,
    customers: CUSTOMERS,
    customer: (i) => ({ _id: i, name: `customer ${i}`, tags: [`t${i % 7}`] }),
    byCustomerIndex: true,
  });
  await seedCms(source.client);
}

/** Changes 1% of the orders and customers, spread evenly. */
function changeOnePercentOf(source: EmulatorFixture, tag: string): Promise<void> {
  return changeOnePercent(source.client, { tag, customers: CUSTOMERS, customerUpdate: { $set: { tag } } });
}

function firstProblem(view: SnapshotView): string {
  return (view.verification.result as { firstProblem?: string } | null)?.firstProblem ?? "";
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
    first = await takeCaughtUpSnapshot(fx, backup);
    const manifest = manifestOf(first);
    expect(first.storeKind).toBe("fs");
    expect(manifest.storeKind).toBe("fs");
    expect(first.store).toBe(`fs:${root}`);
    expect(first.storedBytes).toBeGreaterThan(0);
    await expectManifestEqualsDbHash(source.client, manifest);

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

    const readBack = (await expectReadBack(fx, manifest)).get("shop.orders");
    expect(readBack?.toString("latin1")).toContain(MARKER);
  });

  it("a second snapshot is a full copy, not a delta", async () => {
    await source.client
      .db("shop")
      .collection<AnyDoc>("customers")
      .updateOne({ _id: 7 }, { $set: { name: "changed" } });
    second = await takeCaughtUpSnapshot(fx, backup);
    const manifest = manifestOf(second);
    await expectManifestEqualsDbHash(source.client, manifest);
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
    expect((await verifySnapshotViaApi(fx, first.id)).verification.state).toBe("passed");
    const file = join(root, first.id, "shop", "orders.bson.gz");
    writeFileSync(file, flipByte(readFileSync(file)));
    const failed = await verifySnapshotViaApi(fx, first.id);
    expect(failed.verification.state).toBe("failed");
    expect(firstProblem(failed)).toContain("shop/orders.bson.gz");
    // The other snapshot's copy is its own.
    expect((await verifySnapshotViaApi(fx, second.id)).verification.state).toBe("passed");
  });

  it("delete removes the snapshot's directory; groom removes an interrupted write's .partial-*", async () => {
    expect((await fx.api("DELETE", `/api/v1/snapshots/${first.id}`)).status).toBe(200);
    expect(existsSync(join(root, first.id))).toBe(false);
    expect(readdirSync(root).filter((name) => name.includes(first.id))).toEqual([]);
    const listed = await listSnapshots(fx, backup.id);
    expect(listed.map((s) => s.id)).toEqual([second.id]);

    // What a crash in the middle of a write leaves.
    const partial = join(root, ".partial-00000000-dead-4bad-8bad-000000000000");
    mkdirSync(join(partial, "shop"), { recursive: true });
    writeFileSync(join(partial, "shop", "orders.bson.gz"), randomBytes(1000));
    const report = await groomViaApi(fx);
    expect(report.partialsRemoved).toBe(1);
    expect(existsSync(partial)).toBe(false);
    expect(readdirSync(root)).toEqual([second.id]);
    expect((await verifySnapshotViaApi(fx, second.id)).verification.state).toBe("passed");
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
  let s3: S3rverBucket;
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
    s3 = await startS3rverWithBucket(BUCKET);
    admin = s3.admin;
    proxy = await startProxy(s3.s3rver.endpoint);
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
    await s3?.stop();
    if (process.env.TIDEMARK_TEST_LOG) process.stderr.write(`${logLines.join("\n")}\n`);
  });

  it("stores blocks as objects; after 1% changes the second snapshot stores at most 5%", async () => {
    first = await takeCaughtUpSnapshot(fx, backup);
    expect(first.storeKind).toBe("s3");
    expect(first.store).toBe(`s3://${BUCKET}/snaps`);
    const firstManifest = manifestOf(first);
    await expectManifestEqualsDbHash(source.client, firstManifest);
    expect(first.storedBytes).toBeGreaterThan(0);
    expect(first.storedBytes).toBeLessThan(first.logicalBytes);
    expect(await storedBlocks("snaps")).toEqual(manifestBlocks(firstManifest));

    await changeOnePercentOf(source, "edited");
    second = await takeCaughtUpSnapshot(fx, backup);
    const manifest = manifestOf(second);
    const fraction = second.storedBytes / second.logicalBytes;
    expect(fraction, `stored ${second.storedBytes} of ${second.logicalBytes}`).toBeLessThanOrEqual(0.05);
    expect(second.storedBytes).toBeGreaterThan(0);
    expect(manifest.collections.find((c) => c.namespace === "shop.orders")!.runs!.map((r) => r.kind)).toEqual(
      ["base", "delta"],
    );
    await expectManifestEqualsDbHash(source.client, manifest);
    await expectReadBack(fx, manifest);
    // Every block either snapshot names is an object under the prefix, and nothing else is.
    expect(await storedBlocks("snaps")).toEqual(
      new Set([...manifestBlocks(firstManifest), ...manifestBlocks(manifest)]),
    );
  });

  it("verify passes, then fails naming a block whose object has a flipped byte", async () => {
    expect((await verifySnapshotViaApi(fx, second.id)).verification.state).toBe("passed");
    const manifest = manifestOf(second);
    const hash = manifest.collections.find((c) => c.namespace === "shop.orders")!.runs![0].blocks[3].hash;
    const key = `snaps/${blockKey(hash)}`;
    const original = Buffer.from(
      await (
        await admin.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }))
      ).Body!.transformToByteArray(),
    );
    await admin.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: flipByte(original) }));
    const failed = await verifySnapshotViaApi(fx, second.id);
    expect(failed.verification.state).toBe("failed");
    expect(firstProblem(failed)).toContain(hash.slice(0, 16));
    expect(firstProblem(failed)).toContain("shop.orders");
    // Put right again: the snapshot is whole.
    await admin.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: original }));
    expect((await verifySnapshotViaApi(fx, second.id)).verification.state).toBe("passed");
  });

  it("groom removes only the blocks no snapshot refers to", async () => {
    const before = await storedBlocks("snaps");
    // The second snapshot's chains start with the first's base: deleting the first frees nothing.
    expect((await fx.api("DELETE", `/api/v1/snapshots/${first.id}`)).status).toBe(200);
    expect((await groomViaApi(fx)).blocksRemoved).toBe(0);
    expect(await storedBlocks("snaps")).toEqual(before);

    // A fresh snapshot on new bases; once the second is deleted, its blocks are unreferenced.
    const patched = await fx.api("PATCH", `/api/v1/deployments/${backup.id}/snapshot-settings`, {
      schedule: { enabled: false, maxDeltas: 0 },
    });
    expect(patched.status, JSON.stringify(patched.body)).toBe(200);
    await changeOnePercentOf(source, "again");
    const fresh = await takeCaughtUpSnapshot(fx, backup);
    const manifest = manifestOf(fresh);
    expect(manifest.collections.find((c) => c.namespace === "shop.orders")!.runs!.map((r) => r.kind)).toEqual(
      ["base"],
    );
    expect((await fx.api("DELETE", `/api/v1/snapshots/${second.id}`)).status).toBe(200);
    const report = await groomViaApi(fx);
    expect(report.blocksRemoved).toBeGreaterThan(0);
    expect(await storedBlocks("snaps")).toEqual(manifestBlocks(manifest));
    expect((await verifySnapshotViaApi(fx, fresh.id)).verification.state).toBe("passed");
    await expectManifestEqualsDbHash(source.client, manifest);
    expect((await groomViaApi(fx)).blocksRemoved).toBe(0);
  });

  it("an S3 endpoint failing mid-snapshot fails the snapshot; once it is back, a new one completes", async () => {
    const patched = await fx.api("PATCH", `/api/v1/deployments/${backup.id}/snapshot-settings`, {
      store: `s3://${BUCKET}/faults`,
    });
    expect(patched.status, JSON.stringify(patched.body)).toBe(200);
    await backup.caughtUp();
    const started = await startSnapshot(fx, backup.id);
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
    const listed = await listSnapshots(fx, backup.id);
    expect(listed.find((s) => s.id === started.id)?.status).toBe("failed");
    expect((await fx.api(`POST`, `/api/v1/snapshots/${started.id}/verify`)).status).toBe(409);

    const after = await takeCaughtUpSnapshot(fx, backup);
    expect(after.store).toBe(`s3://${BUCKET}/faults`);
    const manifest = manifestOf(after);
    await expectManifestEqualsDbHash(source.client, manifest);
    expect((await verifySnapshotViaApi(fx, after.id)).verification.state).toBe("passed");
    // What the failed snapshot stored is reused or, if nothing refers to it, groomed.
    await groomViaApi(fx);
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
    first = await takeCaughtUpSnapshot(fx, backup);
    const manifest = manifestOf(first);
    expect(manifest.encrypted).toBe(true);
    expect(first.storeKind).toBe("blockstore");
    await expectManifestEqualsDbHash(source.client, manifest);
    const firstOrder = (await expectReadBack(fx, manifest)).get("shop.orders");
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
    expect((await verifySnapshotViaApi(fx, first.id)).verification.state).toBe("passed");

    await changeOnePercentOf(source, "edited");
    second = await takeCaughtUpSnapshot(fx, backup);
    const fraction = second.storedBytes / second.logicalBytes;
    expect(fraction, `stored ${second.storedBytes} of ${second.logicalBytes}`).toBeLessThanOrEqual(0.05);
    expect(manifestOf(second).encrypted).toBe(true);
    await expectManifestEqualsDbHash(source.client, manifestOf(second));
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
      expect((await verifySnapshotViaApi(fx, snapshot.id)).verification.state).toBe("passed");
    await expectReadBack(fx, manifestOf(first));
  });

  it("master key rotation: the old key as previous, then the new key alone", async () => {
    await restart({ encryptionKeyFile: newKey, previousEncryptionKeyFiles: [oldKey] });
    expect(logLines.some((line) => /data keys re-wrapped under master key/.test(line))).toBe(true);
    expect((await verifySnapshotViaApi(fx, first.id)).verification.state).toBe("passed");

    await restart({ encryptionKeyFile: newKey });
    for (const snapshot of [first, second])
      expect((await verifySnapshotViaApi(fx, snapshot.id)).verification.state).toBe("passed");
    // Same data key, re-wrapped: a snapshot after rotation still deduplicates against the older ones.
    await changeOnePercentOf(source, "rotated");
    const third = await takeCaughtUpSnapshot(fx, backup);
    expect(third.storedBytes / third.logicalBytes).toBeLessThanOrEqual(0.05);
    await expectReadBack(fx, manifestOf(third));
  });

  it("without a master key an encrypted snapshot cannot be verified, and says which key to give", async () => {
    await restart({});
    expect(logLines.some((line) => /encrypted snapshots exist but no master key is given/.test(line))).toBe(
      true,
    );
    const failed = await verifySnapshotViaApi(fx, first.id);
    expect(failed.verification.state).toBe("failed");
    expect(firstProblem(failed)).toMatch(/encrypted: start the server with its master key/);
  });
});
