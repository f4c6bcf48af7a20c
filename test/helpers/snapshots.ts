/**
 * Snapshots through the HTTP API, for the end-to-end snapshot tests: the server options they
 * start from, taking a snapshot and waiting for it to end, verifying, listing and grooming, and
 * the checks every snapshot must pass (its manifest against the emulator's dbHash, every
 * collection read back from the store against the manifest's MD5). Also the data the tests seed
 * into the emulator and the changes they make between snapshots.
 *
 * `fx` is anything with the server fixture's `api` (a `ServerFixture`, or `{ api }` for a server
 * the test runs itself).
 */
import { createHash } from "node:crypto";
import { join } from "node:path";
import Database from "better-sqlite3";
import { Int32, ObjectId, type Document, type MongoClient } from "mongodb";
import { expect } from "vitest";
import type { GroomReport } from "../../src/daemon/groom.js";
import type { snapshotView } from "../../src/server/routes/snapshots.js";
import type { StartServerOptions } from "../../src/server/server.js";
import { parseManifest, type SnapshotManifest } from "../../src/snapshot/manifest.js";
import { readCollection } from "../../src/snapshot/reader.js";
import type { ActiveBackup } from "./activeBackup.js";
import type { AnyDoc } from "./emulator.js";
import type { ServerFixture } from "./server.js";
import { waitFor } from "./wait.js";

/** A snapshot as the API shows it; `manifest` is there when asked for (`?manifest=true`). */
export type SnapshotView = ReturnType<typeof snapshotView> & { manifest?: unknown };

/** What the helpers need of a server: its API. */
export type SnapshotApi = Pick<ServerFixture, "api">;

/**
 * Server options for snapshot tests: small slices, a quick oplog flush, 64 KB blocks (so a few MB
 * of documents make many blocks) and no schedule (snapshots only when asked); `overrides` win.
 */
export function snapshotServerOptions(overrides: StartServerOptions = {}): StartServerOptions {
  return {
    sliceMb: 0.1,
    oplogFlushSeconds: 0.2,
    snapshotBlockBytes: 64 * 1024,
    snapshotSchedule: { enabled: false },
    ...overrides,
  };
}

/** Smaller slices and 16 KB blocks, for tests whose few thousand small documents must make several blocks. */
export const SMALL_SNAPSHOT_BLOCKS: StartServerOptions = { sliceMb: 0.05, snapshotBlockBytes: 16 * 1024 };

/** Starts a snapshot of `deployment` (its id or name): 202, and the snapshot is being written. */
export async function startSnapshot(fx: SnapshotApi, deployment: string): Promise<SnapshotView> {
  const started = await fx.api<SnapshotView>("POST", `/api/v1/deployments/${deployment}/snapshots`, {});
  expect(started.status, JSON.stringify(started.body)).toBe(202);
  expect(started.body.status).toBe("writing");
  return started.body;
}

/** Waits until snapshot `id` is no longer being written; returns it with its manifest. */
export async function snapshotEnd(
  fx: SnapshotApi,
  id: string,
  { timeoutMs = 60_000, intervalMs = 20 }: { timeoutMs?: number; intervalMs?: number } = {},
): Promise<SnapshotView> {
  return waitFor(
    `snapshot ${id} to end`,
    async () => {
      const view = (await fx.api<SnapshotView>("GET", `/api/v1/snapshots/${id}?manifest=true`)).body;
      return view.status !== "writing" ? view : undefined;
    },
    timeoutMs,
    intervalMs,
  );
}

/** Takes a snapshot of `deployment` and waits for it: it must be complete. */
export async function takeSnapshot(fx: SnapshotApi, deployment: string): Promise<SnapshotView> {
  const done = await snapshotEnd(fx, (await startSnapshot(fx, deployment)).id);
  expect(done.status, done.error ?? "").toBe("complete");
  return done;
}

/** Once the head database has caught up with the emulator, takes a complete snapshot of the backup. */
export async function takeCaughtUpSnapshot(
  fx: SnapshotApi,
  backup: Pick<ActiveBackup, "id" | "caughtUp">,
): Promise<SnapshotView> {
  await backup.caughtUp();
  return takeSnapshot(fx, backup.id);
}

/** Verifies snapshot `id` through the API (202) and waits for the outcome. */
export async function verifySnapshotViaApi(
  fx: SnapshotApi,
  id: string,
  timeoutMs = 60_000,
): Promise<SnapshotView> {
  const started = await fx.api<SnapshotView>("POST", `/api/v1/snapshots/${id}/verify`);
  expect(started.status, JSON.stringify(started.body)).toBe(202);
  return waitFor(
    `verification of ${id}`,
    async () => {
      const view = (await fx.api<SnapshotView>("GET", `/api/v1/snapshots/${id}`)).body;
      return view.verification.state !== "verifying" ? view : undefined;
    },
    timeoutMs,
    20,
  );
}

/** The snapshots of `deployment` (its id or name), as the API lists them. */
export async function listSnapshots(fx: SnapshotApi, deployment: string): Promise<SnapshotView[]> {
  return (await fx.api<{ snapshots: SnapshotView[] }>("GET", `/api/v1/deployments/${deployment}/snapshots`))
    .body.snapshots;
}

/** Grooms through the API: 200, no store in error. */
export async function groomViaApi(fx: SnapshotApi): Promise<GroomReport> {
  const groomed = await fx.api<GroomReport>("POST", "/api/v1/groom");
  expect(groomed.status, JSON.stringify(groomed.body)).toBe(200);
  expect(groomed.body.errors).toEqual([]);
  return groomed.body;
}

/** The manifest of a snapshot read with `?manifest=true`. */
export function manifestOf(view: SnapshotView): SnapshotManifest {
  return parseManifest(view.manifest, view.id);
}

/**
 * Per database the manifest names, collection by collection: the manifest's MD5s equal the
 * deployment's dbHash now (so nothing may have been written there since the snapshot's T).
 */
export async function expectManifestEqualsDbHash(
  client: MongoClient,
  manifest: SnapshotManifest,
): Promise<void> {
  for (const db of [...new Set(manifest.collections.map((c) => c.db))]) {
    const hash = await client.db(db).command({ dbHash: 1 });
    const inManifest = Object.fromEntries(
      manifest.collections.filter((c) => c.db === db && c.md5 !== null).map((c) => [c.name, c.md5]),
    );
    expect(inManifest, db).toEqual(hash.collections);
    expect(manifest.databases.find((d) => d.name === db)?.md5, db).toBe(hash.md5);
  }
}

/**
 * Reads every collection (views aside) back from the snapshot's store and checks its count and
 * MD5 against the manifest. Returns the first document read of each collection, by namespace.
 */
export async function expectReadBack(
  fx: Pick<ServerFixture, "server">,
  manifest: SnapshotManifest,
): Promise<Map<string, Buffer>> {
  const store = await fx.server.context.snapshots!.stores.byLocation(manifest.store);
  const firstDocs = new Map<string, Buffer>();
  for (const collection of manifest.collections) {
    if (collection.type === "view") continue;
    const md5 = createHash("md5");
    let count = 0;
    for await (const doc of readCollection(manifest, collection, store.source)) {
      if (count === 0) firstDocs.set(collection.namespace, doc);
      md5.update(doc);
      count++;
    }
    expect({ namespace: collection.namespace, count, md5: md5.digest("hex") }).toEqual({
      namespace: collection.namespace,
      count: collection.count,
      md5: collection.md5,
    });
  }
  return firstDocs;
}

/**
 * Flips one byte in the middle of block `hash` in the blockstore of the server on `dataDir` (the
 * SQLite file, beside the running server). Returns what puts the block right again.
 */
export function damageStoredBlock(dataDir: string, hash: string): () => void {
  const file = join(dataDir, "blockstore.sqlite");
  const db = new Database(file, { fileMustExist: true });
  let original: Buffer;
  try {
    original = (
      db.prepare("SELECT CAST(data AS BLOB) AS data FROM blocks WHERE hash = ?").get(hash) as { data: Buffer }
    ).data;
    const damaged = Buffer.from(original);
    damaged[Math.floor(damaged.length / 2)] ^= 0x01;
    expect(db.prepare("UPDATE blocks SET data = ? WHERE hash = ?").run(damaged, hash).changes).toBe(1);
  } finally {
    db.close();
  }
  return () => {
    const again = new Database(file, { fileMustExist: true });
    try {
      again.prepare("UPDATE blocks SET data = ? WHERE hash = ?").run(original, hash);
    } finally {
      again.close();
    }
  };
}

export interface SeedShop {
  /** How many orders: documents of about 300 bytes (a customer, one order line, a note). */
  orders: number;
  /** Each order's note is `${notePrefix} ${i}: <sha256 of i>`. */
  notePrefix: string;
  /** Whether each order line has a price. */
  withPrice: boolean;
  /** How many customers, with `_id`s 0 to `customers - 1`... */
  customers: number;
  /** ...and the document of customer `i`. */
  customer: (i: number) => AnyDoc;
  /** Whether to add the `by_customer` index ({customer: 1, n: -1}) on the orders. */
  byCustomerIndex: boolean;
}

/** shop.orders (inserted 2000 at a time), then shop.customers, then the orders' index if asked. */
export async function seedShop(client: MongoClient, options: SeedShop): Promise<void> {
  const shop = client.db("shop");
  const docs = Array.from({ length: options.orders }, (_, i) => {
    const line = { sku: `sku-${i % 13}`, qty: new Int32(1 + (i % 4)) };
    return {
      _id: new ObjectId(),
      n: i,
      customer: `customer-${i % 500}`,
      lines: [options.withPrice ? { ...line, price: (i % 97) + 0.5 } : line],
      note: `${options.notePrefix} ${i}: ${createHash("sha256").update(String(i)).digest("hex")}`,
    };
  });
  for (let k = 0; k < docs.length; k += 2000)
    await shop.collection<AnyDoc>("orders").insertMany(docs.slice(k, k + 2000));
  await shop
    .collection<AnyDoc>("customers")
    .insertMany(Array.from({ length: options.customers }, (_, i) => options.customer(i)));
  if (options.byCustomerIndex)
    await shop.collection("orders").createIndex({ customer: 1, n: -1 }, { name: "by_customer" });
}

/** cms.pages with a home page, and cms.home_page, a view on it. */
export async function seedCms(client: MongoClient): Promise<void> {
  const cms = client.db("cms");
  await cms.collection<AnyDoc>("pages").insertOne({ _id: "home", title: "Home" });
  await cms.createCollection("home_page", { viewOn: "pages", pipeline: [{ $match: { _id: "home" } }] });
}

/**
 * Changes 1% of the documents, spread evenly: every 100th order (by `_id`) gets the note
 * `${tag} ${k}`, and every 100th of the customers with `_id`s 0 to `customers - 1` gets
 * `customerUpdate`.
 */
export async function changeOnePercent(
  client: MongoClient,
  { tag, customers, customerUpdate }: { tag: string; customers: number; customerUpdate: Document },
): Promise<void> {
  const shop = client.db("shop");
  const ids = (
    await shop
      .collection("orders")
      .find({}, { projection: { _id: 1 } })
      .sort({ _id: 1 })
      .toArray()
  ).map((d) => d._id);
  for (let k = 0; k < ids.length; k += 100)
    await shop.collection("orders").updateOne({ _id: ids[k] }, { $set: { note: `${tag} ${k}` } });
  for (let k = 0; k < customers; k += 100)
    await shop.collection<AnyDoc>("customers").updateOne({ _id: k }, customerUpdate);
}
