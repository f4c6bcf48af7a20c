/**
 * `tidemark restore --snapshot ID --to URI` end to end: a snapshot of one emulator, restored by the
 * built CLI into a second emulator (the documents streamed from the server, the target's
 * credentials only on the CLI's side). The target must equal the source collection by collection
 * (dbHash, indexes, options, the view); an existing namespace without --drop stops the restore
 * before it writes anything; renames and filters; a damaged block stops it with a clear error.
 */
import type { CollectionInfo } from "mongodb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startActiveBackup, type ActiveBackup } from "../helpers/activeBackup.js";
import { killAll, runCliToEnd } from "../helpers/cli.js";
import { withEmulator, type AnyDoc, type EmulatorFixture } from "../helpers/emulator.js";
import { ADMIN_KEY, withServer, type ServerFixture } from "../helpers/server.js";
import {
  damageStoredBlock,
  manifestOf,
  seedCms,
  seedShop,
  snapshotServerOptions,
  SMALL_SNAPSHOT_BLOCKS,
  takeCaughtUpSnapshot,
  type SnapshotView,
} from "../helpers/snapshots.js";

describe("tidemark restore --snapshot", () => {
  let source: EmulatorFixture;
  let target: EmulatorFixture;
  let fx: ServerFixture;
  let backup: ActiveBackup;
  let snapshot: SnapshotView;
  let env: Record<string, string>;

  const restore = (...args: string[]) => runCliToEnd(["restore", ...args], env);
  const hashes = async (fixture: EmulatorFixture, db: string) => {
    const reply = await fixture.client.db(db).command({ dbHash: 1 });
    const { "system.views": _views, ...collections } = reply.collections as Record<string, string>;
    return collections;
  };

  beforeAll(async () => {
    source = await withEmulator();
    target = await withEmulator();
    fx = await withServer(snapshotServerOptions(SMALL_SNAPSHOT_BLOCKS));
    env = { TIDEMARK_URL: fx.server.url, TIDEMARK_API_KEY: ADMIN_KEY };
    await seedShop(source.client, {
      orders: 3000,
      notePrefix: "order",
      withPrice: true,
      customers: 400,
      customer: (i) => ({ _id: i, name: `customer ${i}`, since: new Date(1_600_000_000_000 + i) }),
      byCustomerIndex: true,
    });
    await source.client.db("shop").createCollection("events", { capped: true, size: 1 << 20 });
    await source.client
      .db("shop")
      .collection<AnyDoc>("events")
      .insertMany(Array.from({ length: 50 }, (_, i) => ({ _id: i, kind: "visit" })));
    await seedCms(source.client);
    backup = await startActiveBackup(fx, source, "rs");
    snapshot = await takeCaughtUpSnapshot(fx, backup);
  }, 120_000);

  afterAll(async () => {
    killAll();
    await backup?.agent.stop();
    await fx?.close();
    await target?.close();
    await source?.close();
  });

  it("restores every collection, its options, indexes and views, equal to the source", async () => {
    const run = await restore("--snapshot", snapshot.id, "--to", target.emulator.uri, "--json");
    expect(run.code, run.stderr).toBe(0);
    const result = JSON.parse(run.stdout) as {
      verified: boolean;
      verification: Array<{ namespace: string; match: boolean }>;
      collections: Array<{ namespace: string; status: string; documents: number }>;
    };
    expect(result.verified).toBe(true);
    expect(result.verification.map((v) => v.namespace).sort()).toEqual(
      ["cms.pages", "shop.customers", "shop.events", "shop.orders"].sort(),
    );
    expect(result.collections.find((c) => c.namespace === "shop.orders")?.documents).toBe(3000);
    for (const db of ["shop", "cms"]) expect(await hashes(target, db), db).toEqual(await hashes(source, db));
    const indexNames = async (fixture: EmulatorFixture) =>
      (await fixture.client.db("shop").collection("orders").listIndexes().toArray())
        .map((i) => i.name)
        .sort();
    expect(await indexNames(target)).toEqual(await indexNames(source));
    const events = (await target.client
      .db("shop")
      .listCollections({ name: "events" })
      .toArray()) as CollectionInfo[];
    expect(events[0].options).toMatchObject({ capped: true });
    expect(await target.client.db("cms").collection("home_page").find().toArray()).toEqual([
      { _id: "home", title: "Home" },
    ]);
  });

  it("stops before writing anything when a namespace exists, and replaces it with --drop", async () => {
    await target.client.db("shop").collection<AnyDoc>("customers").insertOne({ _id: "extra" });
    const before = await hashes(target, "shop");
    const refused = await restore("--snapshot", snapshot.id, "--to", target.emulator.uri);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/shop\.customers/);
    expect(refused.stderr).toMatch(/--drop/);
    expect(await hashes(target, "shop")).toEqual(before);

    const dropped = await restore("--snapshot", snapshot.id, "--to", target.emulator.uri, "--drop");
    expect(dropped.code, dropped.stderr).toBe(0);
    expect(dropped.stdout).toMatch(/matching the snapshot's dbHash/);
    expect(await hashes(target, "shop")).toEqual(await hashes(source, "shop"));
  });

  it("restores a filtered set under other names", async () => {
    const run = await restore(
      "--snapshot",
      snapshot.id,
      "--to",
      target.emulator.uri,
      "--ns-include",
      "shop.cust*",
      "--ns-from",
      "shop.$coll$",
      "--ns-to",
      "copy.$coll$",
      "--json",
    );
    expect(run.code, run.stderr).toBe(0);
    const names = (await target.client.db("copy").listCollections().toArray()).map((c) => c.name);
    expect(names).toEqual(["customers"]);
    expect((await hashes(target, "copy")).customers).toBe((await hashes(source, "shop")).customers);
  });

  it("bad input and a damaged snapshot are clear errors", async () => {
    const unknown = await restore("--snapshot", "no-such-snapshot", "--to", target.emulator.uri);
    expect(unknown.code).not.toBe(0);
    expect(unknown.stderr).toMatch(/snapshot 'no-such-snapshot' not found/);
    const unreachable = await restore(
      "--snapshot",
      snapshot.id,
      "--to",
      "mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=500",
    );
    expect(unreachable.code).toBe(2);
    expect(unreachable.stderr).toMatch(/cannot reach/);

    const orders = manifestOf(snapshot).collections.find((c) => c.namespace === "shop.orders")!;
    const repair = damageStoredBlock(fx.dataDir, orders.runs![0].blocks[1].hash);
    try {
      const damaged = await restore("--snapshot", snapshot.id, "--to", target.emulator.uri, "--drop");
      expect(damaged.code).toBe(2);
      expect(damaged.stderr).toMatch(/shop\.orders/);
      expect(damaged.stderr).toMatch(/snapshots verify/);
    } finally {
      repair();
    }
  });

  it("--help has an example", async () => {
    const help = await runCliToEnd(["restore", "--help"], env);
    expect(help.stdout).toMatch(/Examples:\n\s+\$ tidemark restore --snapshot/);
  });
});
