import { createHash, randomBytes } from "node:crypto";
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { gunzipSync } from "node:zlib";
import {
  Binary,
  BSON,
  Decimal128,
  Double,
  EJSON,
  Int32,
  Long,
  MaxKey,
  MinKey,
  ObjectId,
  Timestamp,
  UUID,
  type Document,
} from "bson";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  collectionFileStem,
  dataFileName,
  FsSnapshotStore,
  FsStoreError,
  MANIFEST_FILE,
  metadataFileName,
  metadataJson,
  parseMetadataJson,
  queryEscape,
  queryUnescape,
  type FsCollectionInput,
} from "../../src/snapshot/fsStore/index.js";

const FIXTURES = path.join(path.dirname(fileURLToPath(import.meta.url)), "../fixtures/mongodump");
const LONG_NAME =
  "aVeryVeryVeryVeryVeryVeryVeryVeryVeryVeryVeryVeryVeryVeryVeryVeryVeryVeryVeryVeryVeryVeryVeryVeryVery" +
  "VeryVeryVeryVeryVeryVeryVeryVeryVeryVeryVeryVeryVeryVeryVeryVeryVeryVeryVeryLongCollectionNameConsisting" +
  "OfExactlyTwoHundredAndFortySevenCharacters";
const LONG_FIXTURE = `${LONG_NAME.slice(0, 208)}%24xFO0VquRn7cg3QooSZD5sglTddU.metadata.json`;

const md5 = (bytes: Uint8Array) => createHash("md5").update(bytes).digest("hex");
const bson = (doc: Document) => Buffer.from(BSON.serialize(doc));
const idIndex = { v: new Int32(2), key: { _id: new Int32(1) }, name: "_id_" };
const xor = (key: number) => (b: Buffer) => Buffer.from(b.map((x) => x ^ key));

async function collect(gen: AsyncIterable<Buffer>): Promise<Buffer[]> {
  const out: Buffer[] = [];
  for await (const doc of gen) out.push(doc);
  return out;
}

async function* slowly<T>(items: T[]): AsyncGenerator<T> {
  for (const item of items) {
    await new Promise((resolve) => setImmediate(resolve));
    yield item;
  }
}

function richDocuments(): Buffer[] {
  return [
    bson({
      _id: new ObjectId("65a1b2c3d4e5f60718293a4b"),
      name: "nested",
      a: { b: { c: [1, { d: "deep" }, [2, 3]] } },
    }),
    bson({
      _id: new Int32(2),
      bin: new Binary(Buffer.from([0, 1, 2, 255, 254]), 0),
      uuid: new UUID("0b5f3a9e-7c1d-4e2f-8a6b-1c2d3e4f5a6b"),
      dec: Decimal128.fromString("1234.5678"),
      long: Long.fromString("9007199254740993"),
      dbl: new Double(1.0),
      ts: new Timestamp({ t: 1700000000, i: 7 }),
      date: new Date("2024-01-02T03:04:05.678Z"),
      re: /a.b/i,
      min: new MinKey(),
      max: new MaxKey(),
      nul: null,
    }),
    bson({ _id: "unicode", s: "café 🐳 ∑", empty: {}, arr: [] }),
  ];
}

function manyDocuments(n: number): Buffer[] {
  return Array.from({ length: n }, (_, i) =>
    bson({
      _id: new Int32(i),
      payload: "x".repeat(i % 300),
      bytes: new Binary(Buffer.alloc(i % 50, i & 255)),
    }),
  );
}

interface Fixture {
  inputs: FsCollectionInput[];
  docs: Map<string, Buffer[]>;
}

/** Varied collections: escaping, a long name, a view, an empty collection, a timeseries, many documents. */
function variedCollections(): Fixture {
  const docs = new Map<string, Buffer[]>([
    ["shop.orders", richDocuments()],
    ["shop.cafés / ünïcode?&", [bson({ _id: 1, x: "escaped" })]],
    [`shop.${LONG_NAME}`, [bson({ _id: 1, long: true })]],
    ["shop.empty", []],
    ["metrics.weather", [bson({ _id: new ObjectId(), control: { version: 1 }, meta: "m", data: {} })]],
    ["big.many", manyDocuments(6000)],
  ]);
  const inputs: FsCollectionInput[] = [
    {
      db: "shop",
      name: "orders",
      type: "collection",
      uuid: "ffa7054f30dc422696fa9607e150cb53",
      options: { validator: { qty: { $gt: new Int32(0) } } },
      indexes: [
        idIndex,
        { v: new Int32(2), key: { a: new Int32(1) }, name: "a_1", expireAfterSeconds: new Int32(1000) },
      ],
      documents: slowly(docs.get("shop.orders") as Buffer[]),
    },
    {
      db: "shop",
      name: "cafés / ünïcode?&",
      type: "collection",
      options: {},
      indexes: [idIndex],
      documents: docs.get("shop.cafés / ünïcode?&"),
    },
    {
      db: "shop",
      name: LONG_NAME,
      type: "collection",
      options: {},
      indexes: [idIndex],
      documents: docs.get(`shop.${LONG_NAME}`),
    },
    {
      db: "shop",
      name: "bigOrders",
      type: "view",
      options: { viewOn: "orders", pipeline: [{ $match: { qty: { $gt: new Int32(10) } } }] },
      indexes: [],
    },
    { db: "shop", name: "empty", type: "collection", options: {}, indexes: [idIndex], documents: [] },
    {
      db: "metrics",
      name: "weather",
      type: "timeseries",
      options: { timeseries: { timeField: "ts", metaField: "meta", granularity: "seconds" } },
      indexes: [],
      documents: docs.get("metrics.weather"),
    },
    {
      db: "big",
      name: "many",
      type: "collection",
      options: {},
      indexes: [idIndex],
      documents: slowly(docs.get("big.many") as Buffer[]),
    },
  ];
  return { inputs, docs };
}

let root: string;

beforeEach(async () => {
  root = await mkdtemp(path.join(tmpdir(), "tidemark-fsstore-"));
});

afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

describe("mongodump file names", () => {
  it("escapes like Go's url.QueryEscape", () => {
    expect(queryEscape("cafés")).toBe("caf%C3%A9s");
    expect(queryEscape("a b/c")).toBe("a+b%2Fc");
    expect(queryEscape("AZaz09-_.~")).toBe("AZaz09-_.~");
    expect(queryEscape("!'()*$&+,:;=?@%")).toBe("%21%27%28%29%2A%24%26%2B%2C%3A%3B%3D%3F%40%25");
    expect(queryEscape("🐳")).toBe("%F0%9F%90%B3");
    expect(queryEscape("system.buckets.x")).toBe("system.buckets.x");
    for (const name of ["cafés", "a b/c", "x+y", "🐳 and ∑", "%41"])
      expect(queryUnescape(queryEscape(name))).toBe(name);
  });

  it("gives a long name the same file name as the real mongodump fixture", async () => {
    expect(LONG_NAME).toHaveLength(247);
    const files = await readdir(path.join(FIXTURES, "longcollectionname"));
    expect(files).toEqual([LONG_FIXTURE]);
    expect(metadataFileName(LONG_NAME)).toBe(LONG_FIXTURE);
    expect(dataFileName(LONG_NAME)).toBe(LONG_FIXTURE.replace(/\.metadata\.json$/, ".bson.gz"));
    const meta = parseMetadataJson(
      await readFile(path.join(FIXTURES, "longcollectionname", LONG_FIXTURE), "utf8"),
    );
    expect(meta.collectionName).toBe(LONG_NAME);
    // Exactly 238 escaped bytes stay as they are; one more and the name is hashed.
    expect(collectionFileStem("a".repeat(238))).toBe("a".repeat(238));
    expect(collectionFileStem("a".repeat(239))).toMatch(/^a{208}%24[A-Za-z0-9_-]{27}$/);
    expect(collectionFileStem("a".repeat(238), true)).toMatch(/^a{207}%24[A-Za-z0-9_-]{27}$/);
    expect(metadataFileName(LONG_NAME, true)).toHaveLength(255);
    expect(collectionFileStem("é".repeat(40))).toMatch(/^(%C3%A9){34}%C3%%24[A-Za-z0-9_-]{27}$/);
  });

  it("puts a timeseries collection's data in system.buckets.<name>", () => {
    expect(dataFileName("foo_ts", true)).toBe("system.buckets.foo_ts.bson.gz");
    expect(metadataFileName("foo_ts")).toBe("foo_ts.metadata.json");
  });
});

describe("metadata.json", () => {
  it("is byte-identical to a real mongodump metadata file", async () => {
    const real = await readFile(path.join(FIXTURES, "coll1.metadata.json"), "utf8");
    const ours = metadataJson({
      options: {},
      indexes: [
        idIndex,
        { v: new Int32(2), key: { a: new Int32(1) }, name: "a_1", expireAfterSeconds: new Int32(1000) },
      ],
      uuid: "ffa7054f30dc422696fa9607e150cb53",
      collectionName: "coll1",
      type: "collection",
    });
    expect(ours).toBe(real);
  });

  it("is byte-identical for a timeseries collection (options kept, no uuid)", async () => {
    const real = await readFile(path.join(FIXTURES, "foo_ts.metadata.json"), "utf8");
    const parsed = parseMetadataJson(real);
    expect(parsed.type).toBe("timeseries");
    expect(parsed.uuid).toBeUndefined();
    expect(metadataJson(parsed)).toBe(real);
    const ours = metadataJson({
      options: {
        timeseries: {
          timeField: "ts",
          metaField: "meta",
          granularity: "seconds",
          bucketMaxSpanSeconds: new Int32(3600),
        },
      },
      indexes: [
        { v: new Int32(2), key: { "meta.device": new Int32(1) }, name: "meta.device_1" },
        {
          v: new Int32(2),
          key: { ts: new Int32(1), "meta.device": new Int32(1) },
          name: "ts_1_meta.device_1",
        },
      ],
      collectionName: "foo_ts",
      type: "timeseries",
    });
    expect(ours).toBe(real);
  });

  it("has the same top-level shape as mongodump's", async () => {
    const real = JSON.parse(await readFile(path.join(FIXTURES, "coll1.metadata.json"), "utf8")) as Document;
    const ours = JSON.parse(
      metadataJson({
        options: { capped: true, size: new Int32(4096) },
        indexes: [],
        collectionName: "c",
        type: "collection",
      }),
    ) as Document;
    expect(Object.keys(ours)).toEqual(["options", ...Object.keys(real)].filter((k) => k !== "uuid"));
    expect(ours.options).toEqual({ capped: true, size: { $numberInt: "4096" } });
    expect(ours.indexes).toEqual([]);
  });
});

describe("FsSnapshotStore", () => {
  it("round-trips varied collections in the mongodump layout", async () => {
    const store = await FsSnapshotStore.open(path.join(root, "store"));
    expect(store.location).toBe(`file://${path.join(root, "store")}`);
    const { inputs, docs } = variedCollections();
    const extra = { deployment: "dep-1", ts: new Timestamp({ t: 1700000000, i: 3 }), kind: "scheduled" };
    const written = await store.write("snap-1", inputs, extra, { prelude: { ServerVersion: "7.0.16" } });

    expect(await store.list()).toEqual(["snap-1"]);
    expect(await store.partials()).toEqual([]);
    const dir = path.join(root, "store", "snap-1");
    expect(written.location).toBe(`file://${dir}`);

    // The files a mongodump directory has, and nothing else.
    const layout = (await readdir(dir, { recursive: true })).sort();
    expect(layout).toEqual(
      [
        "big",
        "big/many.bson.gz",
        "big/many.metadata.json",
        "metrics",
        "metrics/system.buckets.weather.bson.gz",
        "metrics/weather.metadata.json",
        "prelude.json",
        "shop",
        "shop/bigOrders.metadata.json",
        "shop/caf%C3%A9s+%2F+%C3%BCn%C3%AFcode%3F%26.bson.gz",
        "shop/caf%C3%A9s+%2F+%C3%BCn%C3%AFcode%3F%26.metadata.json",
        "shop/empty.bson.gz",
        "shop/empty.metadata.json",
        "shop/orders.bson.gz",
        "shop/orders.metadata.json",
        `shop/${LONG_FIXTURE}`,
        `shop/${LONG_FIXTURE.replace(/\.metadata\.json$/, ".bson.gz")}`,
        MANIFEST_FILE,
      ].sort(),
    );
    expect(await readFile(path.join(dir, "prelude.json"), "utf8")).toBe(
      '{"ServerVersion":"7.0.16","ToolVersion":""}',
    );

    // The manifest: every file with SHA-256 and size, every collection's count, bytes and MD5.
    const manifest = await store.manifest("snap-1");
    expect(manifest.snapshotId).toBe("snap-1");
    expect(manifest.extra.deployment).toBe("dep-1");
    expect(manifest.extra.ts).toEqual(new Timestamp({ t: 1700000000, i: 3 }));
    expect(manifest.files.map((f) => f.path).sort()).toEqual(
      layout.filter((p) => p.includes(".") && p !== MANIFEST_FILE).sort(),
    );
    let storedBytes = (await stat(path.join(dir, MANIFEST_FILE))).size;
    for (const file of manifest.files) {
      const bytes = await readFile(path.join(dir, file.path));
      expect(file.bytes).toBe(bytes.length);
      expect(file.sha256).toBe(createHash("sha256").update(bytes).digest("hex"));
      expect(file.sealed).toBe(false);
      storedBytes += bytes.length;
    }
    expect(written.storedBytes).toBe(storedBytes);
    expect(written.files).toEqual(manifest.files);

    for (const [namespace, expected] of docs) {
      const entry = manifest.collections.find((c) => c.namespace === namespace);
      expect(entry, namespace).toBeDefined();
      const concatenated = Buffer.concat(expected);
      expect(entry?.count).toBe(expected.length);
      expect(entry?.logicalBytes).toBe(concatenated.length);
      expect(entry?.md5).toBe(md5(concatenated));
      expect(written.collections.find((c) => c.namespace === namespace)).toEqual({
        namespace,
        count: expected.length,
        logicalBytes: concatenated.length,
        md5: md5(concatenated),
      });
      // Plain gunzip gives the exact concatenated BSON, as mongorestore --gzip reads it.
      const gz = await readFile(path.join(dir, entry?.dataFile as string));
      expect(gz.subarray(0, 2)).toEqual(Buffer.from([0x1f, 0x8b]));
      expect(gunzipSync(gz).equals(concatenated)).toBe(true);
      // And the store streams back the same documents, byte for byte.
      const back = await collect(store.documents("snap-1", namespace));
      expect(back.length).toBe(expected.length);
      expect(Buffer.concat(back).equals(concatenated)).toBe(true);
    }
    expect(md5(Buffer.alloc(0))).toBe(manifest.collections.find((c) => c.name === "empty")?.md5);
    const second = BSON.deserialize((await collect(store.documents("snap-1", "shop.orders")))[1], {
      useBigInt64: true,
    });
    expect(second.long).toBe(9007199254740993n);
    expect(Buffer.from((second.bin as Binary).buffer)).toEqual(Buffer.from([0, 1, 2, 255, 254]));
    // A timeseries collection's buckets can be asked for by either name.
    expect(await collect(store.documents("snap-1", "metrics.system.buckets.weather"))).toHaveLength(1);

    // Metadata files are mongodump's, with the real name in collectionName.
    const view = manifest.collections.find((c) => c.namespace === "shop.bigOrders");
    expect(view).toMatchObject({ type: "view", count: 0, md5: null });
    expect(view?.dataFile).toBeUndefined();
    expect(await collect(store.documents("snap-1", "shop.bigOrders"))).toEqual([]);
    const viewMeta = parseMetadataJson(
      await readFile(path.join(dir, "shop/bigOrders.metadata.json"), "utf8"),
    );
    expect(viewMeta).toMatchObject({ collectionName: "bigOrders", type: "view", indexes: [] });
    expect(viewMeta.options.viewOn).toBe("orders");
    const ordersText = await readFile(path.join(dir, "shop/orders.metadata.json"), "utf8");
    expect(ordersText).toBe(
      metadataJson({
        options: inputs[0].options,
        indexes: inputs[0].indexes,
        uuid: inputs[0].uuid,
        collectionName: "orders",
        type: "collection",
      }),
    );
    expect(
      ordersText.startsWith('{"options":{"validator":{"qty":{"$gt":{"$numberInt":"0"}}}},"indexes":['),
    ).toBe(true);
    const emptyMeta = JSON.parse(
      await readFile(path.join(dir, "shop/empty.metadata.json"), "utf8"),
    ) as Document;
    expect(Object.keys(emptyMeta)).toEqual(["indexes", "collectionName", "type"]);
    const longMeta = parseMetadataJson(await readFile(path.join(dir, "shop", LONG_FIXTURE), "utf8"));
    expect(longMeta.collectionName).toBe(LONG_NAME);
    const escapedMeta = parseMetadataJson(
      await readFile(path.join(dir, "shop/caf%C3%A9s+%2F+%C3%BCn%C3%AFcode%3F%26.metadata.json"), "utf8"),
    );
    expect(escapedMeta.collectionName).toBe("cafés / ünïcode?&");

    const verified = await store.verify("snap-1");
    expect(verified.problems).toEqual([]);
    expect(verified.ok).toBe(true);
    expect(verified.firstBadFile).toBeUndefined();
    expect(verified.documentsChecked).toBe([...docs.values()].reduce((n, d) => n + d.length, 0));
  });

  it("MD5 is the MD5 of the concatenated documents, as dbHash computes it", async () => {
    const store = await FsSnapshotStore.open(root);
    const docs = manyDocuments(100);
    const written = await store.write("s", [
      { db: "d", name: "c", type: "collection", options: {}, indexes: [], documents: docs },
    ]);
    const streamed = createHash("md5");
    for (const d of docs) streamed.update(d);
    expect(written.collections[0].md5).toBe(streamed.digest("hex"));
  });

  it("reports one flipped byte in any file, naming that file", async () => {
    const store = await FsSnapshotStore.open(root);
    const { inputs } = variedCollections();
    await store.write("snap", inputs, {}, { prelude: { ServerVersion: "8.0.0" } });
    const dir = path.join(root, "snap");
    const manifest = await store.manifest("snap");
    const files = [...manifest.files.map((f) => f.path), MANIFEST_FILE];
    let checkedDocuments = 0;
    expect(files.length).toBeGreaterThan(10);
    for (const file of files) {
      const original = await readFile(path.join(dir, file));
      const damaged = Buffer.from(original);
      const at = Math.floor(damaged.length / 2);
      damaged[at] ^= 0x04;
      await writeFile(path.join(dir, file), damaged);
      const result = await store.verify("snap");
      expect(result.ok, file).toBe(false);
      expect(result.firstBadFile, file).toBe(file);
      expect(result.problems.map((p) => p.file)).toEqual([file]);
      expect(result.problems[0].kind).toBe(file === MANIFEST_FILE ? "MANIFEST" : "SHA256");
      const owner =
        manifest.collections.find((c) => c.dataFile === file) ??
        (file === MANIFEST_FILE ? manifest.collections[0] : undefined);
      if (owner !== undefined) {
        const error = await collect(store.documents("snap", owner.namespace)).catch((e: unknown) => e);
        expect(FsStoreError.is(error, "CORRUPT"), file).toBe(true);
        expect((error as FsStoreError).file).toBe(file);
        checkedDocuments++;
      }
      await writeFile(path.join(dir, file), original);
    }
    expect(checkedDocuments).toBe(manifest.collections.filter((c) => c.dataFile !== undefined).length + 1);
    expect((await store.verify("snap")).ok).toBe(true);
  });

  it("a reader may stop early", async () => {
    const store = await FsSnapshotStore.open(root);
    await store.write("snap", [
      { db: "d", name: "c", type: "collection", options: {}, indexes: [], documents: manyDocuments(5000) },
    ]);
    for (let round = 0; round < 50; round++) {
      for await (const doc of store.documents("snap", "d.c")) {
        expect(BSON.deserialize(doc)._id).toBe(0);
        break;
      }
    }
    await store.delete("snap");
    expect(await store.list()).toEqual([]);
  });

  it("documents() refuses a damaged data file before yielding anything", async () => {
    const store = await FsSnapshotStore.open(root);
    const { inputs } = variedCollections();
    await store.write("snap", inputs);
    const file = path.join(root, "snap", "big", "many.bson.gz");
    const bytes = await readFile(file);
    bytes[bytes.length - 100] ^= 0xff;
    await writeFile(file, bytes);
    let yielded = 0;
    const error = await (async () => {
      for await (const _doc of store.documents("snap", "big.many")) yielded++;
    })().catch((e: unknown) => e);
    expect(yielded).toBe(0);
    expect(FsStoreError.is(error, "CORRUPT")).toBe(true);
    expect((error as FsStoreError).file).toBe("big/many.bson.gz");
    expect((error as Error).message).toContain("big/many.bson.gz");
    expect((error as Error).message).toContain("SHA-256");
    // Other collections still read.
    expect(await collect(store.documents("snap", "shop.orders"))).toHaveLength(3);
  });

  it("reports missing and unexpected files, and a truncated file by its size", async () => {
    const store = await FsSnapshotStore.open(root);
    await store.write("snap", variedCollections().inputs);
    const dir = path.join(root, "snap");
    await rm(path.join(dir, "shop", "empty.bson.gz"));
    await writeFile(path.join(dir, "shop", "stray.bson"), "x");
    const orders = await readFile(path.join(dir, "shop", "orders.bson.gz"));
    await writeFile(path.join(dir, "shop", "orders.bson.gz"), orders.subarray(0, orders.length - 3));
    const result = await store.verify("snap");
    expect(result.ok).toBe(false);
    expect(result.problems.map((p) => [p.file, p.kind])).toEqual([
      ["shop/orders.bson.gz", "SIZE"],
      ["shop/empty.bson.gz", "MISSING"],
      ["shop/stray.bson", "UNEXPECTED"],
    ]);
    expect(result.firstBadFile).toBe("shop/orders.bson.gz");
  });

  it("verify catches a consistent rewrite whose documents are not BSON", async () => {
    // A file re-gzipped with matching manifest hashes but broken BSON inside: only the parse catches it.
    const store = await FsSnapshotStore.open(root);
    const docs = [bson({ _id: 1, s: "abc" }), bson({ _id: 2 })];
    const broken = Buffer.from(docs[0]);
    broken[4] = 0x77; // an unknown element type
    await store.write("snap", [
      { db: "d", name: "c", type: "collection", options: {}, indexes: [], documents: [broken, docs[1]] },
    ]);
    const result = await store.verify("snap");
    expect(result.ok).toBe(false);
    expect(result.problems).toHaveLength(1);
    expect(result.problems[0]).toMatchObject({ file: "d/c.bson.gz", kind: "CONTENT" });
    expect(result.problems[0].message).toContain("document 1 is not valid BSON");
  });

  it("a write cut off midway is never listed, and groom finds its leftovers", async () => {
    const store = await FsSnapshotStore.open(root);
    await store.write("done", [
      { db: "d", name: "c", type: "collection", options: {}, indexes: [], documents: manyDocuments(5) },
    ]);
    async function* crashing(): AsyncGenerator<Uint8Array> {
      yield* manyDocuments(1000);
      throw new Error("killed");
    }
    const error = await store
      .write(
        "crashed",
        [
          {
            db: "d",
            name: "first",
            type: "collection",
            options: {},
            indexes: [],
            documents: manyDocuments(10),
          },
          { db: "d", name: "second", type: "collection", options: {}, indexes: [], documents: crashing() },
        ],
        {},
        { keepPartialOnError: true },
      )
      .catch((e: unknown) => e);
    expect(FsStoreError.is(error, "SOURCE")).toBe(true);
    expect((error as FsStoreError).file).toBe("d/second.bson.gz");
    expect((error as Error).message).toContain("killed");
    expect((error as Error).message).toContain(".partial-crashed");
    expect(await store.list()).toEqual(["done"]);
    expect(await store.partials()).toEqual(["crashed"]);
    await expect(store.manifest("crashed")).rejects.toMatchObject({ code: "NOT_FOUND" });
    await expect(collect(store.documents("crashed", "d.first"))).rejects.toMatchObject({ code: "NOT_FOUND" });
    // The leftover blocks a rewrite of the same id until groom removes it.
    await expect(store.write("crashed", [])).rejects.toMatchObject({ code: "EXISTS" });
    expect(await store.partials(60_000)).toEqual([]);
    await store.removePartial("crashed");
    expect(await store.partials()).toEqual([]);
    expect((await readdir(root)).sort()).toEqual(["done"]);
    await store.write("crashed", []);
    expect(await store.list()).toEqual(["crashed", "done"]);
  });

  it("by default removes the unfinished copy after a failure", async () => {
    const store = await FsSnapshotStore.open(root);
    const collections = function* (): Generator<FsCollectionInput> {
      yield { db: "d", name: "c", type: "collection", options: {}, indexes: [], documents: manyDocuments(3) };
      throw new Error("catalog went away");
    };
    await expect(store.write("s", collections())).rejects.toMatchObject({ code: "SOURCE" });
    expect(await readdir(root)).toEqual([]);
  });

  it("a full disk is a clear NO_SPACE error naming the file, and leaves no snapshot", async () => {
    const store = await FsSnapshotStore.open(root);
    async function* filling(): AsyncGenerator<Uint8Array> {
      yield* manyDocuments(50);
      throw Object.assign(new Error("ENOSPC: no space left on device, write"), {
        code: "ENOSPC",
        errno: -28,
      });
    }
    const error = await store
      .write("full", [
        { db: "d", name: "ok", type: "collection", options: {}, indexes: [] },
        { db: "d", name: "big one", type: "collection", options: {}, indexes: [], documents: filling() },
      ])
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(FsStoreError);
    const e = error as FsStoreError;
    expect(e.code).toBe("NO_SPACE");
    expect(e.location).toBe(store.location);
    expect(e.file).toBe("d/big+one.bson.gz");
    expect(e.hint).toContain("free space");
    expect(e.message).toContain("disk is full");
    expect(e.message).toContain("d/big+one.bson.gz");
    expect(e.message).toContain("snapshot full");
    expect(await store.list()).toEqual([]);
    expect(await store.partials()).toEqual([]);
    expect(await readdir(root)).toEqual([]);
  });

  it("a seal transform that hits a full disk is NO_SPACE too", async () => {
    const store = await FsSnapshotStore.open(root, {
      seal: () => {
        throw Object.assign(new Error("no space"), { code: "ENOSPC" });
      },
      open: (b) => b,
    });
    await expect(
      store.write("s", [{ db: "d", name: "c", type: "collection", options: {}, indexes: [] }]),
    ).rejects.toMatchObject({
      code: "NO_SPACE",
      file: "d/c.metadata.json.enc",
    });
  });

  it.skipIf(process.getuid?.() === 0)("an unwritable store is a clear IO error", async () => {
    const { chmod } = await import("node:fs/promises");
    const store = await FsSnapshotStore.open(root);
    await chmod(root, 0o555);
    try {
      const error = await store.write("s", []).catch((e: unknown) => e);
      expect(FsStoreError.is(error, "IO")).toBe(true);
      expect((error as FsStoreError).hint).toContain("may read and write");
    } finally {
      await chmod(root, 0o755);
    }
  });

  it("an unwritable target is a clear error (a file where the store wants a directory)", async () => {
    const store = await FsSnapshotStore.open(root);
    await writeFile(path.join(root, ".partial-s"), "in the way");
    await expect(store.write("s", [])).rejects.toMatchObject({ code: "EXISTS", file: ".partial-s" });
    await expect(FsSnapshotStore.open(path.join(root, ".partial-s", "store"))).rejects.toMatchObject({
      code: "IO",
    });
  });

  it("applies the seal/open transform to every stored file but the manifest", async () => {
    const store = await FsSnapshotStore.open(root, {
      seal: xor(0x5a),
      open: xor(0x5a),
      sealFrameBytes: 4096,
    });
    const { inputs, docs } = variedCollections();
    const written = await store.write("sealed", inputs, { encrypted: true });
    const dir = path.join(root, "sealed");
    const manifest = await store.manifest("sealed");
    expect(manifest.files.length).toBeGreaterThan(0);
    for (const file of manifest.files) {
      expect(file.path.endsWith(".enc")).toBe(true);
      expect(file.sealed).toBe(true);
      const stored = await readFile(path.join(dir, file.path));
      expect(stored.subarray(0, 8).toString("latin1")).toBe("TMSEAL01");
      expect(Buffer.byteLength(path.basename(file.path))).toBeLessThanOrEqual(255);
    }
    expect(manifest.files.filter((f) => f.path.includes("%24")).map((f) => f.path)).toEqual([
      `shop/${metadataFileName(LONG_NAME, true)}`,
      `shop/${dataFileName(LONG_NAME, false, true)}`,
    ]);
    expect(written.files.every((f) => f.sealed)).toBe(true);
    const many = manifest.collections.find((c) => c.namespace === "big.many");
    expect(many?.dataFile).toBe("big/many.bson.gz.enc");
    expect(many?.metadataFile).toBe("big/many.metadata.json.enc");
    // More than one frame was sealed: the XOR really ran over everything.
    const stored = await readFile(path.join(dir, "big/many.bson.gz.enc"));
    expect(stored.length).toBeGreaterThan(3 * 4096);
    for (const [namespace, expected] of docs) {
      expect(
        Buffer.concat(await collect(store.documents("sealed", namespace))).equals(Buffer.concat(expected)),
      ).toBe(true);
    }
    expect((await store.verify("sealed")).ok).toBe(true);

    // Without the open transform the files cannot be read (but the manifest can).
    const keyless = await FsSnapshotStore.open(root);
    expect(await keyless.list()).toEqual(["sealed"]);
    expect((await keyless.manifest("sealed")).extra.encrypted).toBe(true);
    await expect(collect(keyless.documents("sealed", "big.many"))).rejects.toMatchObject({ code: "IO" });
    await expect(keyless.verify("sealed")).rejects.toMatchObject({ code: "IO" });
    // With the wrong key the content is garbage: the hash matches, the content check fails.
    const wrong = await FsSnapshotStore.open(root, { open: xor(0x11) });
    await expect(collect(wrong.documents("sealed", "big.many"))).rejects.toMatchObject({ code: "CORRUPT" });
    const result = await wrong.verify("sealed");
    expect(result.ok).toBe(false);
    expect(result.problems.every((p) => p.kind === "CONTENT")).toBe(true);
  });

  it("refuses unsafe snapshot ids and existing ones", async () => {
    const store = await FsSnapshotStore.open(root);
    for (const id of ["", "../x", "a/b", ".partial-x", ".hidden", "a\\b", "a:b", "x".repeat(201), "é"]) {
      await expect(store.write(id, []), id).rejects.toMatchObject({ code: "INVALID_ID" });
      await expect(store.manifest(id), id).rejects.toMatchObject({ code: "INVALID_ID" });
    }
    await store.write("2024-01-02T030405Z.6h", []);
    await expect(store.write("2024-01-02T030405Z.6h", [])).rejects.toMatchObject({ code: "EXISTS" });
    expect(await store.list()).toEqual(["2024-01-02T030405Z.6h"]);
  });

  it("refuses collections it cannot store, keeping nothing", async () => {
    const store = await FsSnapshotStore.open(root);
    const base = { type: "collection" as const, options: {}, indexes: [] };
    const cases: Array<[string, FsCollectionInput[]]> = [
      ["bad db", [{ ...base, db: "a.b", name: "c" }]],
      ["empty name", [{ ...base, db: "d", name: "" }]],
      ["bad uuid", [{ ...base, db: "d", name: "c", uuid: "XYZ" }]],
      [
        "duplicate",
        [
          { ...base, db: "d", name: "c" },
          { ...base, db: "d", name: "c" },
        ],
      ],
      ["view with documents", [{ ...base, db: "d", name: "v", type: "view", documents: [bson({ _id: 1 })] }]],
      ["not BSON", [{ ...base, db: "d", name: "c", documents: [Buffer.from([9, 0, 0, 0, 1, 2, 3, 4, 5])] }]],
      ["bad length", [{ ...base, db: "d", name: "c", documents: [Buffer.from([6, 0, 0, 0, 0])] }]],
      [
        "buckets collide",
        [
          { ...base, db: "d", name: "t", type: "timeseries" },
          { ...base, db: "d", name: "system.buckets.t" },
        ],
      ],
    ];
    for (const [what, collections] of cases) {
      await expect(store.write("s", collections), what).rejects.toMatchObject({ code: "INVALID_INPUT" });
    }
    expect(await readdir(root)).toEqual([]);
  });

  it("deletes snapshots and leftovers; deleting twice does nothing", async () => {
    const store = await FsSnapshotStore.open(root);
    await store.write("a", [
      { db: "d", name: "c", type: "collection", options: {}, indexes: [], documents: manyDocuments(3) },
    ]);
    await store.write("b", []);
    await store.delete("a");
    expect(await store.list()).toEqual(["b"]);
    await store.delete("a");
    await expect(store.manifest("a")).rejects.toMatchObject({ code: "NOT_FOUND" });
    // A delete cut off after its rename leaves .deleting-<id>: partials() reports it, delete finishes it.
    await store.write("c", []);
    const { rename } = await import("node:fs/promises");
    await rename(path.join(root, "c"), path.join(root, ".deleting-c"));
    expect(await store.list()).toEqual(["b"]);
    expect(await store.partials()).toEqual(["c"]);
    await store.delete("c");
    expect((await readdir(root)).sort()).toEqual(["b"]);
  });

  it("streams a large collection to disk while it is read (memory bounded by a buffer)", async () => {
    const store = await FsSnapshotStore.open(root);
    const partialFile = path.join(root, ".partial-big", "d", "c.bson.gz");
    const hash = createHash("md5");
    let onDiskMidway = 0;
    async function* big(): AsyncGenerator<Uint8Array> {
      for (let i = 0; i < 300; i++) {
        if (i === 200) onDiskMidway = (await stat(partialFile)).size;
        const doc = bson({ _id: new Int32(i), pad: new Binary(randomBytes(100_000)) });
        hash.update(doc);
        yield doc;
      }
    }
    const written = await store.write("big", [
      { db: "d", name: "c", type: "collection", options: {}, indexes: [], documents: big() },
    ]);
    // Two thirds through, most of what was read is already compressed and written.
    expect(onDiskMidway).toBeGreaterThan(15_000_000);
    expect(written.collections[0]).toMatchObject({ count: 300, md5: hash.digest("hex") });
    let seen = 0;
    for await (const d of store.documents("big", "d.c")) {
      expect(BSON.deserialize(d)._id).toBe(seen);
      seen++;
    }
    expect(seen).toBe(300);
  });

  it("reads a real metadata.json layout back as written (EJSON canonical round trip)", async () => {
    const store = await FsSnapshotStore.open(root);
    const real = parseMetadataJson(await readFile(path.join(FIXTURES, "coll1.metadata.json"), "utf8"));
    await store.write("s", [
      {
        db: "mongodump_test_db",
        name: real.collectionName,
        type: real.type,
        uuid: real.uuid,
        options: real.options,
        indexes: real.indexes,
      },
    ]);
    expect(await readFile(path.join(root, "s", "mongodump_test_db", "coll1.metadata.json"), "utf8")).toBe(
      await readFile(path.join(FIXTURES, "coll1.metadata.json"), "utf8"),
    );
    expect(EJSON.stringify(real.indexes[1], { relaxed: false })).toContain(
      '"expireAfterSeconds":{"$numberInt":"1000"}',
    );
  });
});
