/**
 * Snapshots end to end through the HTTP API: the emulator with data, the server with its daemon
 * and the in-process agent. Each snapshot read back must give, per collection, the MD5 the
 * emulator's dbHash gives at the snapshot's T; incremental snapshots must store little more than
 * the documents that changed; a new base after the chain grows reads the same data.
 */
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Int32, ObjectId } from "mongodb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseManifest, type SnapshotManifest } from "../../src/snapshot/manifest.js";
import { readCollection } from "../../src/snapshot/reader.js";
import type { snapshotView } from "../../src/server/routes/snapshots.js";
import { startActiveBackup, type ActiveBackup } from "../helpers/activeBackup.js";
import { withEmulator, type AnyDoc, type EmulatorFixture } from "../helpers/emulator.js";
import { withServer, type ServerFixture } from "../helpers/server.js";
import { waitFor } from "../helpers/wait.js";

type SnapshotView = ReturnType<typeof snapshotView> & { manifest?: unknown };

describe("snapshots: blockstore, incremental, compaction, groom", () => {
  let source: EmulatorFixture;
  let fx: ServerFixture;
  let backup: ActiveBackup;
  const scratch = mkdtempSync(join(tmpdir(), "tidemark-snapshots-"));
  const logLines: string[] = [];

  beforeAll(async () => {
    source = await withEmulator();
    fx = await withServer({
      sliceMb: 0.1,
      oplogFlushSeconds: 0.2,
      // Small blocks, so that a few MB of documents make many blocks.
      snapshotBlockBytes: 64 * 1024,
      snapshotSchedule: { enabled: false },
      log: (line) => logLines.push(line),
    });
    const shop = source.client.db("shop");
    const orders = Array.from({ length: 12_000 }, (_, i) => ({
      _id: new ObjectId(),
      n: i,
      customer: `customer-${i % 500}`,
      lines: [{ sku: `sku-${i % 13}`, qty: new Int32(1 + (i % 4)), price: (i % 97) + 0.5 }],
      note: `order ${i}: ${createHash("sha256").update(String(i)).digest("hex")}`,
    }));
    for (let k = 0; k < orders.length; k += 2000)
      await shop.collection<AnyDoc>("orders").insertMany(orders.slice(k, k + 2000));
    await shop.collection<AnyDoc>("customers").insertMany(
      Array.from({ length: 8000 }, (_, i) => ({
        _id: i,
        name: `customer ${i}`,
        since: new Date(1_600_000_000_000 + i * 1000),
        tags: [`t${i % 7}`, `t${i % 11}`],
      })),
    );
    await shop.collection("orders").createIndex({ customer: 1, n: -1 }, { name: "by_customer" });
    const cms = source.client.db("cms");
    await cms.collection<AnyDoc>("pages").insertOne({ _id: "home", title: "Home" });
    await cms.createCollection("home_page", { viewOn: "pages", pipeline: [{ $match: { _id: "home" } }] });
    backup = await startActiveBackup(fx, source, "rs", (line) => logLines.push(line));
  }, 180_000);

  afterAll(async () => {
    await backup?.agent.stop();
    await fx?.close();
    await source?.close();
    rmSync(scratch, { recursive: true, force: true });
    if (process.env.TIDEMARK_TEST_LOG) process.stderr.write(`${logLines.join("\n")}\n`);
  });

  async function take(): Promise<SnapshotView> {
    await backup.caughtUp();
    const started = await fx.api<SnapshotView>("POST", `/api/v1/deployments/rs/snapshots`, {});
    expect(started.status, JSON.stringify(started.body)).toBe(202);
    expect(started.body.status).toBe("writing");
    const done = await waitFor(
      "the snapshot to end",
      async () => {
        const view = (await fx.api<SnapshotView>("GET", `/api/v1/snapshots/${started.body.id}?manifest=true`))
          .body;
        return view.status !== "writing" ? view : undefined;
      },
      60_000,
    );
    expect(done.status, done.error ?? "").toBe("complete");
    return done;
  }

  /** The emulator's dbHash of every database the manifest names, collection by collection. */
  async function expectEqualToDeployment(manifest: SnapshotManifest): Promise<void> {
    const dbs = [...new Set(manifest.collections.map((c) => c.db))];
    for (const db of dbs) {
      const hash = await source.client.db(db).command({ dbHash: 1 });
      const inManifest = Object.fromEntries(
        manifest.collections.filter((c) => c.db === db && c.md5 !== null).map((c) => [c.name, c.md5]),
      );
      expect(inManifest, db).toEqual(hash.collections);
      expect(manifest.databases.find((d) => d.name === db)?.md5, db).toBe(hash.md5);
    }
  }

  /** Reads every collection back from the store and checks it against the manifest's MD5. */
  async function expectReadBack(manifest: SnapshotManifest): Promise<void> {
    const store = await fx.server.context.snapshots!.stores.byLocation(manifest.store);
    for (const collection of manifest.collections) {
      if (collection.type === "view") continue;
      const md5 = createHash("md5");
      let count = 0;
      for await (const doc of readCollection(manifest, collection, store.source)) {
        md5.update(doc);
        count++;
      }
      expect({ namespace: collection.namespace, count, md5: md5.digest("hex") }).toEqual({
        namespace: collection.namespace,
        count: collection.count,
        md5: collection.md5,
      });
    }
  }

  let first: SnapshotView;

  it("takes a snapshot whose per-collection MD5s equal the deployment's dbHash at T, and reads back", async () => {
    first = await take();
    const manifest = parseManifest(first.manifest, first.id);
    expect(first.ts).toEqual(manifest.ts);
    expect(first.storeKind).toBe("blockstore");
    expect(first.logicalBytes).toBeGreaterThan(2_000_000);
    // A first snapshot stores everything, compressed.
    expect(first.storedBytes).toBeGreaterThan(0);
    expect(first.storedBytes).toBeLessThan(first.logicalBytes);
    const orders = manifest.collections.find((c) => c.namespace === "shop.orders")!;
    expect(orders.count).toBe(12_000);
    expect(orders.runs!.map((r) => r.kind)).toEqual(["base"]);
    expect(orders.indexes.map((i) => i.name)).toEqual(expect.arrayContaining(["_id_", "by_customer"]));
    const view = manifest.collections.find((c) => c.namespace === "cms.home_page")!;
    expect(view.type).toBe("view");
    expect(view.options).toMatchObject({ viewOn: "pages" });
    await expectEqualToDeployment(manifest);
    await expectReadBack(manifest);
    const listed = (await fx.api<{ snapshots: SnapshotView[] }>("GET", "/api/v1/deployments/rs/snapshots"))
      .body;
    expect(listed.snapshots.map((s) => s.id)).toEqual([first.id]);
    expect(listed.snapshots[0]).toMatchObject({
      deploymentId: backup.id,
      status: "complete",
      ts: first.ts,
      logicalBytes: first.logicalBytes,
      storedBytes: first.storedBytes,
    });
    expect(listed.snapshots[0].collections.length).toBe(manifest.collections.length);
  });

  it("after 1% of the documents change, spread evenly, the next snapshot stores at most 5% of its bytes", async () => {
    const shop = source.client.db("shop");
    const orderIds = (
      await shop
        .collection("orders")
        .find({}, { projection: { _id: 1 } })
        .sort({ _id: 1 })
        .toArray()
    ).map((d) => d._id);
    for (let k = 0; k < orderIds.length; k += 100)
      await shop.collection("orders").updateOne({ _id: orderIds[k] }, { $set: { note: `edited ${k}` } });
    for (let k = 0; k < 8000; k += 100)
      await shop.collection<AnyDoc>("customers").updateOne({ _id: k }, { $inc: { visits: 1 } });
    const second = await take();
    const manifest = parseManifest(second.manifest, second.id);
    const fraction = second.storedBytes / second.logicalBytes;
    expect(fraction, `stored ${second.storedBytes} of ${second.logicalBytes}`).toBeLessThanOrEqual(0.05);
    expect(manifest.collections.find((c) => c.namespace === "shop.orders")!.runs!.map((r) => r.kind)).toEqual(
      ["base", "delta"],
    );
    // Unchanged collections keep their chain as it was: nothing new written for them.
    const pages = manifest.collections.find((c) => c.namespace === "cms.pages")!;
    expect(pages.runs!.length).toBe(1);
    await expectEqualToDeployment(manifest);
    await expectReadBack(manifest);
  });

  it("deletes, inserts, a dropped and a renamed collection: deltas with deletion markers read back exactly", async () => {
    const shop = source.client.db("shop");
    await shop.collection<AnyDoc>("customers").deleteMany({ _id: { $lt: 50 } });
    await shop.collection<AnyDoc>("customers").insertMany([
      { _id: 100_000, name: "new" },
      { _id: -1, name: "first" },
    ]);
    await source.client
      .db("cms")
      .collection<AnyDoc>("drafts")
      .insertMany([{ _id: 1 }, { _id: 2 }]);
    const third = await take();
    await expectEqualToDeployment(parseManifest(third.manifest, third.id));
    await source.client.db("cms").collection("drafts").drop();
    await source.client.db("cms").collection<AnyDoc>("drafts").insertOne({ _id: 3, again: true });
    await source.client.db("cms").collection("pages").rename("site_pages");
    const fourth = await take();
    const manifest = parseManifest(fourth.manifest, fourth.id);
    await expectEqualToDeployment(manifest);
    for (const snapshot of [third, fourth])
      await expectReadBack(parseManifest(snapshot.manifest, snapshot.id));
    const customers = manifest.collections.find((c) => c.namespace === "shop.customers")!;
    expect(customers.runs!.some((r) => r.deletions > 0)).toBe(true);
    // The renamed collection keeps its UUID and its chain.
    const renamed = manifest.collections.find((c) => c.namespace === "cms.site_pages")!;
    const before = parseManifest(first.manifest, first.id).collections.find(
      (c) => c.namespace === "cms.pages",
    )!;
    expect(renamed.uuid).toBe(before.uuid);
  });

  it("writes a new base once the chain is long, and reads the same data", async () => {
    const patched = await fx.api("PATCH", "/api/v1/deployments/rs/snapshot-settings", {
      schedule: { enabled: false, maxDeltas: 2 },
    });
    expect(patched.status, JSON.stringify(patched.body)).toBe(200);
    const shop = source.client.db("shop");
    let latest: SnapshotView | undefined;
    const kinds: string[][] = [];
    for (let round = 0; round < 3; round++) {
      await shop
        .collection<AnyDoc>("customers")
        .updateMany({ _id: { $mod: [50, round] } }, { $set: { round } });
      latest = await take();
      const manifest = parseManifest(latest.manifest, latest.id);
      kinds.push(
        manifest.collections.find((c) => c.namespace === "shop.customers")!.runs!.map((r) => r.kind),
      );
      await expectEqualToDeployment(manifest);
      await expectReadBack(manifest);
    }
    // The chain never has more than maxDeltas deltas: at some point it starts again from a base.
    expect(kinds.every((k) => k.length <= 3)).toBe(true);
    expect(kinds.some((k) => k.length === 1)).toBe(true);
  });

  it("verify passes; groom after deleting snapshots reclaims only blocks no snapshot uses", async () => {
    const list = async () =>
      (await fx.api<{ snapshots: SnapshotView[] }>("GET", "/api/v1/deployments/rs/snapshots")).body.snapshots;
    const all = await list();
    const newest = all[all.length - 1];
    const verify = await fx.api<SnapshotView>("POST", `/api/v1/snapshots/${newest.id}/verify`);
    expect(verify.status).toBe(202);
    const verified = await waitFor("verification", async () => {
      const view = (await fx.api<SnapshotView>("GET", `/api/v1/snapshots/${newest.id}`)).body;
      return view.verification.state !== "verifying" ? view : undefined;
    });
    expect(verified.verification.state).toBe("passed");

    // Delete all but the newest, and groom while a new snapshot is being written.
    for (const snapshot of all.slice(0, -1))
      expect((await fx.api("DELETE", `/api/v1/snapshots/${snapshot.id}`)).status).toBe(200);
    await source.client
      .db("shop")
      .collection("orders")
      .updateMany({ n: { $lt: 300 } }, { $set: { late: true } });
    await backup.caughtUp();
    const started = await fx.api<SnapshotView>("POST", `/api/v1/deployments/rs/snapshots`, {});
    expect(started.status).toBe(202);
    const groomed = await fx.api<{ blocksRemoved: number; bytesReclaimed: number; errors: string[] }>(
      "POST",
      "/api/v1/groom",
    );
    expect(groomed.status).toBe(200);
    expect(groomed.body.errors).toEqual([]);
    expect(groomed.body.blocksRemoved).toBeGreaterThan(0);
    expect(groomed.body.bytesReclaimed).toBeGreaterThan(0);
    const during = await waitFor("the snapshot taken during groom", async () => {
      const view = (await fx.api<SnapshotView>("GET", `/api/v1/snapshots/${started.body.id}?manifest=true`))
        .body;
      return view.status !== "writing" ? view : undefined;
    });
    expect(during.status).toBe("complete");
    // Both remaining snapshots read back whole after groom.
    for (const snapshot of [newest, during]) {
      const view = (await fx.api<SnapshotView>("GET", `/api/v1/snapshots/${snapshot.id}?manifest=true`)).body;
      await expectReadBack(parseManifest(view.manifest, view.id));
    }
    // A second groom finds nothing more to remove.
    const again = await fx.api<{ blocksRemoved: number }>("POST", "/api/v1/groom");
    expect(again.body.blocksRemoved).toBe(0);
  });
});
