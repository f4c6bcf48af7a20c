/**
 * `tidemark export --snapshot ID (--out DIR | --archive FILE) [--gzip]` and `tidemark import
 * PATH --to URI` end to end, through the built CLI: a snapshot of one emulator exported in the four
 * mongodump forms (files equal to the snapshot's documents, metadata.json in mongodump's shape,
 * archives whose CRCs verify), each imported into a second emulator equal to the source by dbHash;
 * the real mongo-tools / PBM dumps imported with their document counts; bad input refused clearly.
 */
import { createHash } from "node:crypto";
import { createReadStream, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { gunzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openArchive } from "../../src/restore/archive/index.js";
import type { SnapshotManifest } from "../../src/snapshot/manifest.js";
import { startActiveBackup, type ActiveBackup } from "../helpers/activeBackup.js";
import { killAll, root, runCliToEnd } from "../helpers/cli.js";
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

const FIXTURES = path.join(root, "test/fixtures/mongodump-archive");

interface ImportJson {
  verified: boolean;
  verification: Array<{ namespace: string; match: boolean }>;
  collections: Array<{ namespace: string; status: string; documents: number; message?: string }>;
  skipped: Array<{ namespace: string; reason: string }>;
  unverified: Array<{ namespace: string; reason: string }>;
}

/** Per data namespace (`db.coll`), the document count of an archive, read with its CRCs verified. */
async function archiveCounts(file: string): Promise<Map<string, number>> {
  const reader = await openArchive(createReadStream(file) as AsyncIterable<Buffer>);
  for await (const _event of reader) {
    // every event: the reader checks each namespace's CRC at its EOF block
  }
  expect(reader.complete).toBe(true);
  return new Map(reader.results.map((r) => [`${r.db}.${r.collection}`, r.documents]));
}

/** Splits concatenated BSON. */
function splitBson(bytes: Buffer): Buffer[] {
  const docs: Buffer[] = [];
  for (let at = 0; at < bytes.length;) {
    const length = bytes.readInt32LE(at);
    docs.push(bytes.subarray(at, at + length));
    at += length;
  }
  return docs;
}

describe("tidemark export / import", () => {
  let source: EmulatorFixture;
  let target: EmulatorFixture;
  let fx: ServerFixture;
  let backup: ActiveBackup;
  let snapshot: SnapshotView;
  let manifest: SnapshotManifest;
  let env: Record<string, string>;
  let dir: string;

  const cli = (...args: string[]) => runCliToEnd(args, env);
  const hashes = async (fixture: EmulatorFixture, db: string) => {
    const reply = await fixture.client.db(db).command({ dbHash: 1 });
    const { "system.views": _views, ...collections } = reply.collections as Record<string, string>;
    return collections;
  };
  const expectTargetEqualsSource = async () => {
    for (const db of ["shop", "cms"]) expect(await hashes(target, db), db).toEqual(await hashes(source, db));
    expect(await target.client.db("cms").collection("home_page").find().toArray()).toEqual([
      { _id: "home", title: "Home" },
    ]);
    const indexNames = async (fixture: EmulatorFixture) =>
      (await fixture.client.db("shop").collection("orders").listIndexes().toArray())
        .map((i) => i.name)
        .sort();
    expect(await indexNames(target)).toEqual(await indexNames(source));
  };

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "tidemark-export-"));
    source = await withEmulator();
    target = await withEmulator();
    fx = await withServer(snapshotServerOptions(SMALL_SNAPSHOT_BLOCKS));
    env = { TIDEMARK_URL: fx.server.url, TIDEMARK_API_KEY: ADMIN_KEY };
    await seedShop(source.client, {
      orders: 1500,
      notePrefix: "order",
      withPrice: true,
      customers: 200,
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
    manifest = manifestOf(snapshot);
  }, 120_000);

  afterAll(async () => {
    killAll();
    await backup?.agent.stop();
    await fx?.close();
    await target?.close();
    await source?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  for (const gzip of [false, true]) {
    const suffix = gzip ? ".gz" : "";
    it(`exports a mongodump directory${gzip ? " (--gzip)" : ""} equal to the snapshot, and imports it`, async () => {
      const out = path.join(dir, `dump${gzip ? "-gz" : ""}`);
      const run = await cli(
        "export",
        "--snapshot",
        snapshot.id,
        "--out",
        out,
        ...(gzip ? ["--gzip"] : []),
        "--json",
      );
      expect(run.code, run.stderr).toBe(0);
      expect(JSON.parse(run.stdout)).toMatchObject({ format: "directory", gzip, path: out });
      expect(readdirSync(dir).filter((name) => name.startsWith("."))).toEqual([]); // no partial left
      expect(JSON.parse(readFileSync(path.join(out, "prelude.json"), "utf8"))).toHaveProperty(
        "ServerVersion",
      );
      const read = (file: string) => {
        const bytes = readFileSync(path.join(out, file));
        return gzip ? gunzipSync(bytes) : bytes;
      };
      for (const c of manifest.collections) {
        const meta = JSON.parse(read(`${c.db}/${c.name}.metadata.json${suffix}`).toString("utf8")) as Record<
          string,
          unknown
        >;
        expect(Object.keys(meta)).toEqual(
          [
            ...(Object.keys(c.options).length > 0 ? ["options"] : []),
            "indexes",
            ...(c.uuid ? ["uuid"] : []),
          ].concat(["collectionName", "type"]),
        );
        expect(meta).toMatchObject({ collectionName: c.name, type: c.type });
        if (c.type === "view") {
          expect(existsSync(path.join(out, c.db, `${c.name}.bson${suffix}`))).toBe(false);
          expect(meta.options).toMatchObject({ viewOn: "pages" });
          continue;
        }
        const data = read(`${c.db}/${c.name}.bson${suffix}`);
        expect(splitBson(data).length, c.namespace).toBe(c.count);
        expect(createHash("md5").update(data).digest("hex"), c.namespace).toBe(c.md5);
      }
      const orders = JSON.parse(read(`shop/orders.metadata.json${suffix}`).toString("utf8")) as {
        indexes: Array<{ name: string }>;
      };
      expect(orders.indexes.map((i) => i.name).sort()).toEqual(["_id_", "by_customer"]);

      const imported = await cli("import", out, "--to", target.emulator.uri, "--drop", "--json");
      expect(imported.code, imported.stderr).toBe(0);
      const result = JSON.parse(imported.stdout) as ImportJson;
      expect(result.verified).toBe(true);
      expect(result.verification.map((v) => v.namespace).sort()).toEqual(
        ["cms.pages", "shop.customers", "shop.events", "shop.orders"].sort(),
      );
      await expectTargetEqualsSource();
    });

    it(`exports a mongodump archive${gzip ? " (--gzip)" : ""} whose CRCs verify, and imports it`, async () => {
      const file = path.join(dir, `snapshot${gzip ? "-gz" : ""}.archive`);
      const run = await cli(
        "export",
        "--snapshot",
        snapshot.id,
        "--archive",
        file,
        ...(gzip ? ["--gzip"] : []),
      );
      expect(run.code, run.stderr).toBe(0);
      expect(run.stdout).toMatch(/mongodump archive/);
      expect(
        readFileSync(file)
          .subarray(0, 2)
          .equals(Buffer.from([0x1f, 0x8b])),
      ).toBe(gzip);
      const reader = await openArchive(createReadStream(file) as AsyncIterable<Buffer>);
      expect(reader.gzip).toBe(gzip);
      expect(reader.namespaces.map((n) => `${n.db}.${n.collection}`).sort()).toEqual(
        manifest.collections.map((c) => c.namespace).sort(),
      );
      expect(reader.namespaces.find((n) => n.collection === "home_page")?.kind).toBe("view");
      const ended: string[] = [];
      let last = "";
      for await (const event of reader) {
        const ns = `${event.db}.${event.collection}`;
        if (event.kind === "document")
          expect(ended).not.toContain(ns); // namespaces one after another
        else ended.push(ns);
        if (ns !== last) expect(ended.includes(last) || last === "").toBe(true);
        last = ns;
      }
      expect(reader.complete).toBe(true);
      const counts = new Map(reader.results.map((r) => [`${r.db}.${r.collection}`, r.documents]));
      for (const c of manifest.collections.filter((m) => m.type === "collection"))
        expect(counts.get(c.namespace), c.namespace).toBe(c.count);

      const imported = await cli("import", file, "--to", target.emulator.uri, "--drop", "--json");
      expect(imported.code, imported.stderr).toBe(0);
      expect((JSON.parse(imported.stdout) as ImportJson).verified).toBe(true);
      await expectTargetEqualsSource();
    });
  }

  it("imports the real mongo-tools and PBM archives with their document counts", async () => {
    const archives = [
      "test.bar.archive",
      "dump-w-oplog.archive",
      "timeseries-dump.archive",
      "pbm_disttxn_50__2022-02-07T14.05.59Z_rs1.dump.archive",
      "pbm_disttxn_4x__2022-02-09T12.42.32Z_rs2.dump.archive",
    ];
    for (const name of archives) {
      const file = path.join(FIXTURES, name);
      const expected = await archiveCounts(file);
      const run = await cli("import", file, "--to", target.emulator.uri, "--drop", "--json");
      expect(run.code, `${name}: ${run.stderr}`).not.toBe(2);
      const result = JSON.parse(run.stdout) as ImportJson;
      const restored = result.collections.filter((c) => c.status === "restored" && c.namespace);
      if (name !== "timeseries-dump.archive") expect(restored.length, name).toBeGreaterThan(0);
      // Collections dumped in _id order are verified by dbHash; others by count (PBM's users are not).
      expect(run.code, `${name}: ${run.stderr}`).toBe(0);
      expect(result.verified, name).toBe(true);
      if (name.startsWith("pbm_disttxn_4x")) {
        expect(result.unverified.map((u) => u.namespace)).toEqual(["admin.pbmRUsers"]);
        expect(run.stderr).toMatch(/admin\.pbmRUsers: not verified by dbHash, the dump is not in _id order/);
      }
      if (name.startsWith("pbm_")) expect(result.verification.map((v) => v.namespace)).toContain("trx.test");
      for (const c of restored) {
        if (c.namespace.includes(".system.")) continue;
        const [db, ...rest] = c.namespace.split(".");
        const coll = rest.join(".");
        expect(c.documents, `${name} ${c.namespace}`).toBe(expected.get(c.namespace));
        expect(await target.client.db(db).collection(coll).countDocuments(), `${name} ${c.namespace}`).toBe(
          expected.get(c.namespace),
        );
      }
      // Not imported, each said: the oplog, admin.system.*.
      const skipped = result.skipped.map((s) => s.namespace);
      if (expected.has("admin.system.version")) expect(skipped, name).toContain("admin.system.version");
      if (name === "dump-w-oplog.archive") {
        expect(skipped).toContain("oplog");
        expect(run.stderr).toMatch(/oplog: skipped/);
        expect(result.collections.find((c) => c.namespace === "test.foo")?.documents).toBe(25);
      }
      if (name === "test.bar.archive") {
        expect(result.verified).toBe(true);
        expect(await target.client.db("test").collection("bar").countDocuments()).toBe(1);
      }
      if (name === "timeseries-dump.archive") {
        const ts = result.collections.find((c) => c.namespace === "timeseries_test.foo_ts");
        expect(ts?.status).toBe("skipped");
        expect(run.stderr).toMatch(
          /timeseries_test\.foo_ts: the target (cannot create|does not support) time series/,
        );
      }
    }
  }, 120_000);

  it("imports the real mongo-tools dump directory (time series skipped by the emulator)", async () => {
    const run = await cli(
      "import",
      path.join(FIXTURES, "ts_dump"),
      "--to",
      target.emulator.uri,
      "--drop",
      "--json",
    );
    expect(run.code, run.stderr).not.toBe(2);
    const result = JSON.parse(run.stdout) as ImportJson;
    expect(result.collections.map((c) => c.namespace)).toEqual(["timeseries_test.foo_ts"]);
    expect(result.collections[0].status).toBe("skipped");
    expect(run.stderr).toMatch(/time series/);
    expect(result.skipped.map((s) => s.namespace).sort()).toEqual([
      "admin.system.version",
      "admin.system.views",
    ]);
  });

  it("bad input: a missing path, not a dump, an existing destination", async () => {
    const missing = await cli("import", path.join(dir, "nowhere"), "--to", target.emulator.uri);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/nowhere does not exist/);

    const notArchive = path.join(dir, "notes.txt");
    writeFileSync(notArchive, "hello, not an archive\n");
    const bad = await cli("import", notArchive, "--to", target.emulator.uri);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/not a mongodump archive/);
    expect(bad.stderr).toMatch(/hint:/);

    const badFormat = await cli(
      "import",
      path.join(FIXTURES, "bad-format.archive"),
      "--to",
      target.emulator.uri,
    );
    expect(badFormat.code).toBe(2);
    expect(badFormat.stderr).toMatch(/metadata/);

    const empty = path.join(dir, "empty-dir");
    mkdirSync(empty);
    const noDump = await cli("import", empty, "--to", target.emulator.uri);
    expect(noDump.code).toBe(2);
    expect(noDump.stderr).toMatch(/no mongodump collections/);

    const occupied = path.join(dir, "occupied");
    mkdirSync(occupied);
    writeFileSync(path.join(occupied, "keep.txt"), "mine");
    const refused = await cli("export", "--snapshot", snapshot.id, "--out", occupied);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/occupied is not empty/);
    expect(readdirSync(occupied)).toEqual(["keep.txt"]);

    const refusedArchive = await cli("export", "--snapshot", snapshot.id, "--archive", notArchive);
    expect(refusedArchive.code).toBe(2);
    expect(refusedArchive.stderr).toMatch(/notes\.txt exists/);
    expect(readFileSync(notArchive, "utf8")).toBe("hello, not an archive\n");

    // An empty directory is fine: it becomes the dump.
    const exported = await cli("export", "--snapshot", snapshot.id, "--out", empty);
    expect(exported.code, exported.stderr).toBe(0);
    expect(readdirSync(empty).sort()).toEqual(["cms", "prelude.json", "shop"]);

    const neither = await cli("export", "--snapshot", snapshot.id);
    expect(neither.code).toBe(2);
    expect(neither.stderr).toMatch(/either --out DIR or --archive FILE/);
  });

  it("a cut-off export leaves nothing that looks complete", async () => {
    const orders = manifest.collections.find((c) => c.namespace === "shop.orders")!;
    const repair = damageStoredBlock(fx.dataDir, orders.runs![0].blocks[1].hash);
    try {
      for (const [flag, name] of [
        ["--out", "damaged-dump"],
        ["--archive", "damaged.archive"],
      ]) {
        const before = readdirSync(dir);
        const run = await cli("export", "--snapshot", snapshot.id, flag, path.join(dir, name));
        expect(run.code, run.stdout).toBe(2);
        expect(run.stderr).toMatch(/shop\.orders/);
        expect(run.stderr).toMatch(/nothing was kept|snapshots verify/);
        expect(readdirSync(dir)).toEqual(before); // neither the export nor a partial one
      }
    } finally {
      repair();
    }
  });

  it("--help has examples and exit codes", async () => {
    for (const command of ["export", "import"]) {
      const help = await cli(command, "--help");
      expect(help.stdout).toMatch(new RegExp(`Examples:\\n\\s+\\$ tidemark ${command} `));
      expect(help.stdout).toMatch(/Exit codes/);
    }
  });
});
