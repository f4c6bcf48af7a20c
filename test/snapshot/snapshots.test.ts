/**
 * Snapshots end to end through the HTTP API: the emulator with data, the server with its daemon
 * and the in-process agent. Each snapshot read back must give, per collection, the MD5 the
 * emulator's dbHash gives at the snapshot's T; incremental snapshots must store little more than
 * the documents that changed; a new base after the chain grows reads the same data.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { SnapshotManifest } from "../../src/snapshot/manifest.js";
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

describe("snapshots: blockstore, incremental, compaction, groom", () => {
  let source: EmulatorFixture;
  let fx: ServerFixture;
  let backup: ActiveBackup;
  const scratch = mkdtempSync(join(tmpdir(), "tidemark-snapshots-"));
  const logLines: string[] = [];

  beforeAll(async () => {
    source = await withEmulator();
    fx = await withServer(snapshotServerOptions({ log: (line) => logLines.push(line) }));
    await seedShop(source.client, {
      orders: 12_000,
      notePrefix: "order",
      withPrice: true,
      customers: 8000,
      customer: (i) => ({
        _id: i,
        name: `customer ${i}`,
        since: new Date(1_600_000_000_000 + i * 1000),
        tags: [`t${i % 7}`, `t${i % 11}`],
      }),
      byCustomerIndex: true,
    });
    await seedCms(source.client);
    backup = await startActiveBackup(fx, source, "rs", (line) => logLines.push(line));
  }, 180_000);

  afterAll(async () => {
    await backup?.agent.stop();
    await fx?.close();
    await source?.close();
    rmSync(scratch, { recursive: true, force: true });
    if (process.env.TIDEMARK_TEST_LOG) process.stderr.write(`${logLines.join("\n")}\n`);
  });

  const take = () => takeCaughtUpSnapshot(fx, backup);
  const expectEqualToDeployment = (manifest: SnapshotManifest) =>
    expectManifestEqualsDbHash(source.client, manifest);

  let first: SnapshotView;

  it("takes a snapshot whose per-collection MD5s equal the deployment's dbHash at T, and reads back", async () => {
    first = await take();
    const manifest = manifestOf(first);
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
    await expectReadBack(fx, manifest);
    const listed = await listSnapshots(fx, "rs");
    expect(listed.map((s) => s.id)).toEqual([first.id]);
    expect(listed[0]).toMatchObject({
      deploymentId: backup.id,
      status: "complete",
      ts: first.ts,
      logicalBytes: first.logicalBytes,
      storedBytes: first.storedBytes,
    });
    expect(listed[0].collections.length).toBe(manifest.collections.length);
  });

  it("after 1% of the documents change, spread evenly, the next snapshot stores at most 5% of its bytes", async () => {
    await changeOnePercent(source.client, {
      tag: "edited",
      customers: 8000,
      customerUpdate: { $inc: { visits: 1 } },
    });
    const second = await take();
    const manifest = manifestOf(second);
    const fraction = second.storedBytes / second.logicalBytes;
    expect(fraction, `stored ${second.storedBytes} of ${second.logicalBytes}`).toBeLessThanOrEqual(0.05);
    expect(manifest.collections.find((c) => c.namespace === "shop.orders")!.runs!.map((r) => r.kind)).toEqual(
      ["base", "delta"],
    );
    // Unchanged collections keep their chain as it was: nothing new written for them.
    const pages = manifest.collections.find((c) => c.namespace === "cms.pages")!;
    expect(pages.runs!.length).toBe(1);
    await expectEqualToDeployment(manifest);
    await expectReadBack(fx, manifest);
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
    await expectEqualToDeployment(manifestOf(third));
    await source.client.db("cms").collection("drafts").drop();
    await source.client.db("cms").collection<AnyDoc>("drafts").insertOne({ _id: 3, again: true });
    await source.client.db("cms").collection("pages").rename("site_pages");
    const fourth = await take();
    const manifest = manifestOf(fourth);
    await expectEqualToDeployment(manifest);
    for (const snapshot of [third, fourth]) await expectReadBack(fx, manifestOf(snapshot));
    const customers = manifest.collections.find((c) => c.namespace === "shop.customers")!;
    expect(customers.runs!.some((r) => r.deletions > 0)).toBe(true);
    // The renamed collection keeps its UUID and its chain.
    const renamed = manifest.collections.find((c) => c.namespace === "cms.site_pages")!;
    const before = manifestOf(first).collections.find((c) => c.namespace === "cms.pages")!;
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
      const manifest = manifestOf(latest);
      kinds.push(
        manifest.collections.find((c) => c.namespace === "shop.customers")!.runs!.map((r) => r.kind),
      );
      await expectEqualToDeployment(manifest);
      await expectReadBack(fx, manifest);
    }
    // The chain never has more than maxDeltas deltas: at some point it starts again from a base.
    expect(kinds.every((k) => k.length <= 3)).toBe(true);
    expect(kinds.some((k) => k.length === 1)).toBe(true);
  });

  it("verify passes; groom after deleting snapshots reclaims only blocks no snapshot uses", async () => {
    const all = await listSnapshots(fx, "rs");
    const newest = all[all.length - 1];
    const verified = await verifySnapshotViaApi(fx, newest.id);
    expect(verified.verification.state).toBe("passed");

    // Delete all but the newest, and groom while a new snapshot is being written.
    for (const snapshot of all.slice(0, -1))
      expect((await fx.api("DELETE", `/api/v1/snapshots/${snapshot.id}`)).status).toBe(200);
    await source.client
      .db("shop")
      .collection("orders")
      .updateMany({ n: { $lt: 300 } }, { $set: { late: true } });
    await backup.caughtUp();
    const started = await startSnapshot(fx, "rs");
    const groomed = await groomViaApi(fx);
    expect(groomed.blocksRemoved).toBeGreaterThan(0);
    expect(groomed.bytesReclaimed).toBeGreaterThan(0);
    const during = await snapshotEnd(fx, started.id);
    expect(during.status).toBe("complete");
    // Both remaining snapshots read back whole after groom.
    for (const snapshot of [newest, during]) {
      const view = (await fx.api<SnapshotView>("GET", `/api/v1/snapshots/${snapshot.id}?manifest=true`)).body;
      await expectReadBack(fx, manifestOf(view));
    }
    // A second groom finds nothing more to remove.
    const again = await fx.api<{ blocksRemoved: number }>("POST", "/api/v1/groom");
    expect(again.body.blocksRemoved).toBe(0);
  });
});
