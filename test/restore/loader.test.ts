import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { createServer } from "node:net";
import {
  Binary,
  BSONRegExp,
  BSONSymbol,
  Code,
  Decimal128,
  Double,
  EJSON,
  Int32,
  Long,
  MaxKey,
  MinKey,
  ObjectId,
  serialize,
  Timestamp,
  type Document,
} from "bson";
import type { IndexSpecification, MongoClient } from "mongodb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { deserializeExact } from "../../src/headdb/exactBson.js";
import { Writer } from "../../src/emulator/writer.js";
import {
  createNamespaceRenamer,
  indexSpecsToBuild,
  loadCollections,
  redactUri,
  TargetConnectionError,
  TargetNamespacesExistError,
  RestoreInterruptedError,
  type LoaderCollection,
  type LoadProgress,
} from "../../src/restore/loader/index.js";
import { withEmulator, type AnyDoc, type EmulatorFixture } from "../helpers/emulator.js";
import { rawDocument, rawElement, rawInt32 } from "../helpers/rawBson.js";

/*
 * The restore loader against real emulators: a source emulator with varied data is described the
 * way a snapshot manifest describes it (canonical EJSON options and indexes, dbHash MD5s) and its
 * documents are read back raw in _id order; the loader writes them into other emulators, and the
 * target's dbHash, options and indexes must equal the source's.
 */

const EXACT_READ = {
  promoteValues: false,
  promoteLongs: false,
  promoteBuffers: false,
  bsonRegExp: true,
} as const;

interface CorpusCase {
  file: string;
  description: string;
  canonical_bson: string;
}
const corpus = JSON.parse(
  readFileSync(new URL("../fixtures/bson-corpus/id-values.json", import.meta.url), "utf8"),
) as { cases: CorpusCase[] };

/**
 * A raw document: `_id` (int32) followed by the elements of another raw document (or, if that
 * one has its own `_id`, with it as the sub-document `doc`).
 */
function withIntId(id: number, elementsOf: Buffer): Buffer {
  if ("_id" in deserializeExact(elementsOf))
    return withIntId(id, rawDocument(rawElement(0x03, "doc", elementsOf)));
  const idElement = Buffer.alloc(1 + 4 + 4);
  idElement[0] = 0x10;
  idElement.write("_id\0", 1, "latin1");
  idElement.writeInt32LE(id, 5);
  const body = Buffer.concat([idElement, elementsOf.subarray(4, elementsOf.length - 1)]);
  const doc = Buffer.alloc(4 + body.length + 1);
  doc.writeInt32LE(doc.length, 0);
  body.copy(doc, 4);
  return doc;
}

/** Puts raw documents into an emulator collection as they are (no driver in between). */
async function insertRaw(fx: EmulatorFixture, ns: string, docs: Buffer[]): Promise<void> {
  const [db, name] = [ns.slice(0, ns.indexOf(".")), ns.slice(ns.indexOf(".") + 1)];
  const { deployment } = fx.emulator;
  if (!deployment.catalog.getCollection(db, name)) await fx.client.db(db).createCollection(name);
  const collection = deployment.catalog.getCollection(db, name)!;
  const writer = new Writer(deployment.oplog);
  for (const doc of docs) writer.insert(collection, doc);
}

function canonical(value: unknown): Record<string, unknown> {
  return EJSON.serialize(value, { relaxed: false }) as Record<string, unknown>;
}

async function collectionInfos(client: MongoClient, db: string): Promise<Document[]> {
  const reply = await client.db(db).command({ listCollections: 1 }, EXACT_READ);
  return (reply.cursor.firstBatch as Document[]).filter((info) => info.name !== "system.views");
}

async function indexSpecs(client: MongoClient, ns: string): Promise<Document[]> {
  const [db, name] = [ns.slice(0, ns.indexOf(".")), ns.slice(ns.indexOf(".") + 1)];
  const reply = await client.db(db).command({ listIndexes: name }, EXACT_READ);
  return reply.cursor.firstBatch as Document[];
}

/** The documents a collection stores, as hex of their exact bytes, in `_id` order. */
async function storedBytes(client: MongoClient, db: string, collection: string): Promise<string[]> {
  const stored = await client
    .db(db)
    .collection(collection)
    .find({}, { raw: true, sort: { _id: 1 } })
    .toArray();
  return stored.map((doc) => Buffer.from(doc as unknown as Uint8Array).toString("hex"));
}

async function dbHashes(client: MongoClient, db: string): Promise<Record<string, string>> {
  const reply = await client.db(db).command({ dbHash: 1 });
  return reply.collections as Record<string, string>;
}

/** The source's collections as a snapshot manifest would describe them, documents read raw. */
async function describeSource(client: MongoClient, dbs: string[]): Promise<LoaderCollection[]> {
  const out: LoaderCollection[] = [];
  for (const db of dbs) {
    const hashes = await dbHashes(client, db);
    for (const info of await collectionInfos(client, db)) {
      const namespace = `${db}.${info.name as string}`;
      const type: LoaderCollection["type"] =
        info.type === "view" ? "view" : (info.options as Document).timeseries ? "timeseries" : "collection";
      const entry: LoaderCollection = {
        namespace,
        type,
        options: canonical(info.options),
        indexes: type === "view" ? [] : (await indexSpecs(client, namespace)).map(canonical),
        md5: type === "view" ? null : hashes[info.name as string],
      };
      if (type !== "view") {
        entry.count = await client
          .db(db)
          .collection<AnyDoc>(info.name as string)
          .countDocuments();
        entry.documents = () =>
          client
            .db(db)
            .collection<AnyDoc>(info.name as string)
            .find(
              {},
              { raw: true, sort: { _id: 1 }, batchSize: 1000 },
            ) as unknown as AsyncIterable<Uint8Array>;
      }
      out.push(entry);
    }
  }
  return out;
}

/** Tricky values through the driver's exact types: doubles, ints, longs, decimals, binaries... */
function trickyDocuments(): Document[] {
  return [
    {
      _id: new Int32(1),
      z: 1,
      a: new Double(-0),
      m: new Double(1),
      i: new Int32(1),
      l: Long.fromString("9007199254740993"),
      dec: Decimal128.fromString("-0.00"),
      nan: new Double(NaN),
      inf: new Double(-Infinity),
      date: new Date(-1),
      ts: new Timestamp({ t: 7, i: 9 }),
    },
    {
      _id: new Double(2.5),
      bins: [0, 1, 2, 3, 4, 5, 6, 7, 8, 0x80].map(
        (subtype) => new Binary(Buffer.from([1, 2, 3, subtype]), subtype),
      ),
      emptyBin: new Binary(Buffer.alloc(0), 0),
      re: new BSONRegExp("^a.b$", "imsux"),
      code: new Code("function () { return x; }"),
      scoped: new Code("x + y", { x: new Int32(1), y: { nested: new Double(2) } }),
      sym: new BSONSymbol("sym"),
      min: new MinKey(),
      max: new MaxKey(),
    },
    {
      _id: "string-id",
      nested: [[new Int32(1), [new Double(2), [Long.fromInt(3), []]]], {}, [{ b: 1, a: 2 }]],
      order: { zeta: 1, alpha: 2, "with.dot": 3, $dollar: 4, "": 5 },
      arrayOfDocs: [{ _id: 1 }, { y: null }],
      unicode: "héllo ✓ \u0000 inside",
    },
    { _id: new ObjectId("0123456789abcdef01234567"), big: "x".repeat(100_000) },
    { _id: { compound: new Int32(1), key: [1, 2] }, v: true },
    { _id: new Date(0), v: false },
    { _id: new MinKey(), v: "min" },
    { _id: new MaxKey(), v: "max" },
  ];
}

let source: EmulatorFixture;
let target: EmulatorFixture;
let secured: EmulatorFixture;
let described: LoaderCollection[];

const DATA_DBS = ["shop", "analytics", "corpus", "bulk"];

beforeAll(async () => {
  [source, target, secured] = await Promise.all([
    withEmulator(),
    withEmulator(),
    withEmulator({ user: "restorer", password: "p@ss:w0rd" }),
  ]);
  const shop = source.client.db("shop");
  await shop.createCollection("orders", {
    validator: { total: { $gte: new Double(0) } },
    validationLevel: "strict",
    validationAction: "error",
  });
  await shop.collection<AnyDoc>("orders").insertMany(
    Array.from({ length: 300 }, (_, i) => ({
      _id: new Int32(i),
      sku: `sku-${i % 40}`,
      total: i % 2 ? new Double(i) : new Int32(i),
      at: new Date(Date.UTC(2026, 0, 1) + i * 3600_000),
      status: i % 3 ? "open" : "shipped",
    })),
  );
  // A document its validator refuses (written with bypass): the restore must bypass too.
  await shop
    .collection<AnyDoc>("orders")
    .insertOne({ _id: new Int32(1000), total: new Int32(-5) }, { bypassDocumentValidation: true });
  await shop.collection<AnyDoc>("orders").createIndex({ sku: 1, at: -1 }, { unique: false, name: "sku_at" });
  await shop
    .collection<AnyDoc>("orders")
    .createIndex(
      { status: 1 },
      { name: "open_only", partialFilterExpression: { status: "open", at: { $gte: new Date(0) } } },
    );
  await shop
    .collection<AnyDoc>("orders")
    .createIndex({ at: 1 }, { name: "ttl", expireAfterSeconds: 86_400 * 365 * 50 });
  await shop.createCollection("log", { capped: true, size: 65_536, max: 50 });
  await shop
    .collection<AnyDoc>("log")
    .insertMany(Array.from({ length: 80 }, (_, i) => ({ _id: new Int32(i), line: `line ${i}` })));
  await shop.createCollection("people", { collation: { locale: "fr", strength: 2 } });
  await shop.collection<AnyDoc>("people").insertMany([
    { _id: "b", name: "Émile", email: "e@x.org" },
    { _id: "a", name: "zoé", email: "z@x.org" },
  ]);
  await shop.collection<AnyDoc>("people").createIndex({ email: 1 }, { unique: true, name: "email_unique" });
  await shop.command({
    create: "open_orders",
    viewOn: "orders",
    pipeline: [{ $match: { status: "open" } }, { $project: { sku: 1 } }],
  });
  await shop.command({ create: "open_skus", viewOn: "open_orders", pipeline: [{ $project: { _id: 0 } }] });
  await source.client.db("analytics").collection<AnyDoc>("tricky").insertMany(trickyDocuments());
  await source.client
    .db("analytics")
    .collection<AnyDoc>("tricky")
    .createIndex(
      { "order.zeta": new Double(1), "nested.0": new Int32(-1) } as unknown as IndexSpecification,
      {
        name: "typed_keys",
      },
    );
  // Every corpus value, stored as its exact bytes.
  await insertRaw(
    source,
    "corpus.values",
    corpus.cases.map((c, i) => withIntId(i, Buffer.from(c.canonical_bson, "hex"))),
  );
  for (let c = 0; c < 5; c++) {
    await source.client
      .db("bulk")
      .collection<AnyDoc>(`c${c}`)
      .insertMany(
        Array.from({ length: 2000 }, (_, i) => ({
          _id: new Int32(i),
          c,
          payload: "p".repeat(50 + (i % 200)),
        })),
      );
  }
  described = await describeSource(source.client, DATA_DBS);
}, 60_000);

afterAll(async () => {
  await Promise.all([source?.close(), target?.close(), secured?.close()]);
});

async function targetNamespaces(client: MongoClient): Promise<string[]> {
  const { databases } = await client.db("admin").admin().listDatabases({ nameOnly: true });
  const out: string[] = [];
  for (const { name } of databases) {
    if (["admin", "local", "config"].includes(name)) continue;
    for (const info of await client.db(name).listCollections({}, { nameOnly: true }).toArray())
      out.push(`${name}.${info.name}`);
  }
  return out.sort();
}

describe("pure helpers", () => {
  it("redacts the password of a URI, whatever it holds", () => {
    expect(redactUri("mongodb://u:p%40ss@h:1/?x=1")).toBe("mongodb://u:***@h:1/?x=1");
    expect(redactUri("mongodb+srv://u:pw@cluster.example.net/db")).toBe(
      "mongodb+srv://u:***@cluster.example.net/db",
    );
    expect(redactUri("mongodb://u@h:1")).toBe("mongodb://u@h:1");
    expect(redactUri("mongodb://h:1,h:2/?replicaSet=rs0")).toBe("mongodb://h:1,h:2/?replicaSet=rs0");
    // Options that carry secrets are masked too.
    expect(
      redactUri(
        "mongodb://h:1/?tls=true&tlsCertificateKeyFilePassword=s3cret&authMechanism=MONGODB-AWS&authMechanismProperties=AWS_SESSION_TOKEN:tok",
      ),
    ).toBe(
      "mongodb://h:1/?tls=true&tlsCertificateKeyFilePassword=***&authMechanism=MONGODB-AWS&authMechanismProperties=***",
    );
  });

  it("builds index specs without v, ns and _id_, keeping number types", () => {
    const specs = indexSpecsToBuild([
      canonical({ v: new Int32(2), key: { _id: new Int32(1) }, name: "_id_" }),
      canonical({
        v: new Int32(2),
        key: { a: new Double(1), b: new Int32(-1) },
        name: "ab",
        ns: "x.y",
        unique: true,
      }),
      canonical({
        v: new Int32(1),
        key: { at: new Int32(1) },
        name: "ttl",
        expireAfterSeconds: new Int32(60),
      }),
    ]);
    expect(specs.map((spec) => EJSON.stringify(spec, { relaxed: false }))).toEqual([
      '{"key":{"a":{"$numberDouble":"1.0"},"b":{"$numberInt":"-1"}},"name":"ab","unique":true}',
      '{"key":{"at":{"$numberInt":"1"}},"name":"ttl","expireAfterSeconds":{"$numberInt":"60"}}',
    ]);
  });
});

describe("loadCollections", () => {
  it("restores several databases byte for byte with their options, views and indexes", async () => {
    const progress: LoadProgress[] = [];
    const result = await loadCollections({
      uri: target.emulator.uri,
      collections: described,
      parallel: 3,
      batchBytes: 64 * 1024,
      onProgress: (p) => progress.push(p),
    });
    expect(result.dropped).toEqual([]);
    expect(result.verified).toBe(true);
    const collections = described.filter((c) => c.type !== "view");
    expect(result.verification.map((v) => v.namespace).sort()).toEqual(
      collections.map((c) => c.namespace).sort(),
    );
    for (const v of result.verification)
      expect(v, v.namespace).toMatchObject({ match: true, actual: v.expected });

    for (const db of DATA_DBS) {
      expect(await dbHashes(target.client, db), db).toEqual(await dbHashes(source.client, db));
      const sourceInfos = (await collectionInfos(source.client, db)).map((i) => [
        i.name,
        i.type,
        canonical(i.options),
      ]);
      const targetInfos = (await collectionInfos(target.client, db)).map((i) => [
        i.name,
        i.type,
        canonical(i.options),
      ]);
      expect(targetInfos, db).toEqual(sourceInfos);
    }
    for (const c of collections) {
      const want = (await indexSpecs(source.client, c.namespace)).map(canonical);
      expect((await indexSpecs(target.client, c.namespace)).map(canonical), c.namespace).toEqual(want);
    }
    // The views work on the restored data.
    expect(await target.client.db("shop").collection<AnyDoc>("open_skus").countDocuments()).toBe(
      await source.client.db("shop").collection<AnyDoc>("open_skus").countDocuments(),
    );
    // The capped collection keeps its documents (the emulator does not enforce `max`, so the
    // source holds all 80) and the validator its rule.
    expect(await target.client.db("shop").collection<AnyDoc>("log").countDocuments()).toBe(
      await source.client.db("shop").collection<AnyDoc>("log").countDocuments(),
    );
    await expect(
      target.client.db("shop").collection<AnyDoc>("orders").insertOne({ total: -1 }),
    ).rejects.toThrow(/validation/);

    // Progress: per collection, increasing, ending with a done report of every document.
    for (const c of collections) {
      const reports = progress.filter((p) => p.namespace === c.namespace);
      expect(reports.at(-1), c.namespace).toMatchObject({
        done: true,
        documents: c.count,
        totalDocuments: c.count,
      });
      const docs = reports.map((p) => p.documents);
      expect(docs).toEqual([...docs].sort((a, b) => a - b));
    }
    const byNs = Object.fromEntries(result.collections.map((c) => [c.namespace, c]));
    expect(byNs["shop.orders"]).toMatchObject({
      status: "restored",
      documents: 301,
      indexes: ["sku_at", "open_only", "ttl"],
    });
    expect(byNs["shop.open_orders"]).toMatchObject({ status: "restored", type: "view", documents: 0 });
    expect(byNs["analytics.tricky"].bytes).toBeGreaterThan(100_000);
  });

  it("refuses existing namespaces without drop before writing anything, and replaces them with drop", async () => {
    const fx = await withEmulator();
    try {
      await fx.client.db("shop").collection<AnyDoc>("orders").insertOne({ _id: "old", stale: true });
      await fx.client.db("analytics").createCollection("tricky", { capped: true, size: 4096 });
      const before = await targetNamespaces(fx.client);
      const writes = () =>
        fx.client
          .db("local")
          .collection<AnyDoc>("oplog.rs")
          .countDocuments({ op: { $ne: "n" } });
      const oplogBefore = await writes();

      const attempt = loadCollections({ uri: fx.emulator.uri, collections: described });
      await expect(attempt).rejects.toThrow(TargetNamespacesExistError);
      await expect(attempt).rejects.toThrow(/shop\.orders, analytics\.tricky.*drop/);
      expect(await targetNamespaces(fx.client)).toEqual(before);
      expect(await writes()).toBe(oplogBefore);
      expect(await fx.client.db("shop").collection<AnyDoc>("orders").find().toArray()).toEqual([
        { _id: "old", stale: true },
      ]);

      const result = await loadCollections({ uri: fx.emulator.uri, collections: described, drop: true });
      expect(result.dropped.sort()).toEqual(["analytics.tricky", "shop.orders"]);
      expect(result.verified).toBe(true);
      expect(await fx.client.db("shop").collection<AnyDoc>("orders").countDocuments({ _id: "old" })).toBe(0);
      expect(await dbHashes(fx.client, "analytics")).toEqual(await dbHashes(source.client, "analytics"));
      const [info] = await collectionInfos(fx.client, "analytics");
      expect(info.options).toEqual({});
    } finally {
      await fx.close();
    }
  });

  it("says clearly that an unreachable target cannot be reached, without the password", async () => {
    const port = await new Promise<number>((resolve) => {
      const server = createServer();
      server.listen(0, "127.0.0.1", () => {
        const { port } = server.address() as { port: number };
        server.close(() => resolve(port));
      });
    });
    const attempt = loadCollections({
      uri: `mongodb://admin:hunter2@127.0.0.1:${port}/?directConnection=true`,
      collections: described,
      serverSelectionTimeoutMS: 500,
    });
    const error = await attempt.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(TargetConnectionError);
    expect((error as TargetConnectionError).reason).toBe("unreachable");
    expect((error as Error).message).toMatch(
      new RegExp(`^cannot reach the target mongodb://admin:\\*\\*\\*@127\\.0\\.0\\.1:${port}`),
    );
    expect((error as Error).message).not.toContain("hunter2");
  });

  it("reports refused credentials as an authentication error without the password, and works with the right ones", async () => {
    const wrong = `mongodb://restorer:not-the-pw@127.0.0.1:${secured.emulator.port}/?replicaSet=rs0`;
    const error = await loadCollections({ uri: wrong, collections: described }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(TargetConnectionError);
    expect((error as TargetConnectionError).reason).toBe("authentication");
    expect((error as Error).message).toMatch(/refused the credentials \(authentication failed\)/);
    expect((error as Error).message).toContain("restorer:***@");
    expect((error as Error).message).not.toContain("not-the-pw");

    const right = `mongodb://restorer:${encodeURIComponent("p@ss:w0rd")}@127.0.0.1:${secured.emulator.port}/?replicaSet=rs0`;
    const result = await loadCollections({ uri: right, collections: described, include: ["shop.people"] });
    expect(result.verification).toEqual([expect.objectContaining({ namespace: "shop.people", match: true })]);
  });

  it("loads 5 collections in parallel with only the batches in flight in memory", async () => {
    const fx = await withEmulator();
    try {
      const bulk = described.filter((c) => c.namespace.startsWith("bulk."));
      expect(bulk).toHaveLength(5);
      let activeReaders = 0;
      let maxReaders = 0;
      const pulled = new Map<string, number>();
      const loaded = new Map<string, number>();
      let maxAhead = 0;
      const instrumented = bulk.map((c) => ({
        ...c,
        documents: async function* () {
          activeReaders++;
          maxReaders = Math.max(maxReaders, activeReaders);
          try {
            for await (const doc of c.documents!()) {
              pulled.set(c.namespace, (pulled.get(c.namespace) ?? 0) + 1);
              const ahead = [...pulled.keys()].reduce(
                (sum, ns) => sum + pulled.get(ns)! - (loaded.get(ns) ?? 0),
                0,
              );
              maxAhead = Math.max(maxAhead, ahead);
              yield doc;
            }
          } finally {
            activeReaders--;
          }
        },
      }));
      const parallel = 3;
      const batchCount = 100;
      const result = await loadCollections({
        uri: fx.emulator.uri,
        collections: instrumented,
        parallel,
        batchCount,
        onProgress: (p) => loaded.set(p.namespace, p.documents),
      });
      expect(result.verified).toBe(true);
      expect(result.verification).toHaveLength(5);
      expect(maxReaders).toBeGreaterThan(1);
      expect(maxReaders).toBeLessThanOrEqual(parallel);
      // Written or in flight (parallel batches), being filled (one per reader), plus the one pulled.
      expect(maxAhead).toBeLessThanOrEqual((parallel + parallel) * batchCount + parallel);
      expect(await dbHashes(fx.client, "bulk")).toEqual(await dbHashes(source.client, "bulk"));
    } finally {
      await fx.close();
    }
  });

  it("renames namespaces and applies include/exclude filters", async () => {
    const fx = await withEmulator();
    try {
      const result = await loadCollections({
        uri: fx.emulator.uri,
        collections: described,
        include: ["shop.*", "analytics.*"],
        exclude: ["shop.log", "*.open_skus"],
        rename: createNamespaceRenamer([
          { from: "shop.orders", to: "store.orders_2026" },
          { from: "shop.$c$", to: "store.$c$" },
        ]),
      });
      expect(result.collections.map((c) => `${c.source}->${c.namespace}`).sort()).toEqual([
        "analytics.tricky->analytics.tricky",
        "shop.open_orders->store.open_orders",
        "shop.orders->store.orders_2026",
        "shop.people->store.people",
      ]);
      expect(result.verified).toBe(true);
      expect(await targetNamespaces(fx.client)).toEqual([
        "analytics.tricky",
        "store.open_orders",
        "store.orders_2026",
        "store.people",
        "store.system.views",
      ]);
      const shop = await dbHashes(source.client, "shop");
      const store = await dbHashes(fx.client, "store");
      expect({ orders_2026: store.orders_2026, people: store.people }).toEqual({
        orders_2026: shop.orders,
        people: shop.people,
      });
      // The view follows its renamed source.
      const [view] = (await collectionInfos(fx.client, "store")).filter((i) => i.type === "view");
      expect(view.options.viewOn).toBe("orders_2026");
      expect(await fx.client.db("store").collection<AnyDoc>("open_orders").countDocuments()).toBe(200);
    } finally {
      await fx.close();
    }
  });

  it("skips a time series collection the target cannot create, saying so", async () => {
    const fx = await withEmulator();
    try {
      const lines: string[] = [];
      const result = await loadCollections({
        uri: fx.emulator.uri,
        log: (line) => lines.push(line),
        collections: [
          {
            namespace: "metrics.cpu",
            type: "timeseries",
            options: canonical({ timeseries: { timeField: "t", metaField: "host", granularity: "seconds" } }),
            indexes: [],
            md5: "0123456789abcdef0123456789abcdef",
            documents: async function* () {
              yield serialize({ _id: 1, t: new Date(), host: "a" });
            },
          },
          described.find((c) => c.namespace === "shop.people")!,
        ],
      });
      expect(result.collections[0]).toMatchObject({
        namespace: "metrics.cpu",
        status: "skipped",
        documents: 0,
      });
      expect(result.collections[0].message).toMatch(/metrics\.cpu: the target does not support time series/);
      expect(lines).toEqual([result.collections[0].message]);
      expect(result.verification.map((v) => v.namespace)).toEqual(["shop.people"]);
      expect(await targetNamespaces(fx.client)).toEqual(["shop.people"]);
    } finally {
      await fx.close();
    }
  });

  it("restores byte for byte what JS objects cannot carry: DBPointer, Undefined, repeated and moved names", async () => {
    const fx = await withEmulator();
    try {
      const dbPointer = Buffer.from(
        corpus.cases.find((c) => c.file === "dbpointer.json")!.canonical_bson,
        "hex",
      );
      const odd = [
        withIntId(1, dbPointer),
        rawDocument(rawElement(0x10, "_id", rawInt32(2)), rawElement(0x06, "u")),
        rawDocument(
          rawElement(0x10, "_id", rawInt32(3)),
          rawElement(0x10, "b", rawInt32(1)),
          rawElement(0x10, "1", rawInt32(2)),
        ),
        rawDocument(
          rawElement(0x10, "_id", rawInt32(4)),
          rawElement(0x10, "a", rawInt32(1)),
          rawElement(0x10, "a", rawInt32(2)),
        ),
        rawDocument(
          rawElement(0x10, "_id", rawInt32(5)),
          rawElement(0x03, "sub", rawDocument(rawElement(0x06, "deep"))),
        ),
      ];
      await insertRaw(source, "odd.things", odd);
      const [things] = await describeSource(source.client, ["odd"]);
      const result = await loadCollections({ uri: fx.emulator.uri, collections: [things] });
      expect(result.verified).toBe(true);
      expect(await storedBytes(fx.client, "odd", "things")).toEqual(odd.map((doc) => doc.toString("hex")));
    } finally {
      await fx.close();
    }
  });

  it("sends a batch again once its reply is lost, the documents already in counting as its own", async () => {
    await source.client
      .db("retry")
      .collection<AnyDoc>("docs")
      .insertMany(Array.from({ length: 40 }, (_, i) => ({ _id: new Int32(i), n: `doc ${i}` })));
    const [docs] = await describeSource(source.client, ["retry"]);
    const fx = await withEmulator();
    try {
      // The second batch lands, but its reply never comes: the connection closes instead.
      fx.emulator.faults.dropReplies("insert", 1);
      const result = await loadCollections({
        uri: fx.emulator.uri,
        collections: [docs],
        batchCount: 10,
        parallel: 1,
      });
      expect(result.verified).toBe(true);
      expect(result.collections[0].documents).toBe(40);
      expect(await fx.client.db("retry").collection("docs").countDocuments()).toBe(40);

      // Lost twice running: the restore stops, saying the target went away.
      fx.emulator.faults.dropReplies("insert", 2);
      const error = await loadCollections({
        uri: fx.emulator.uri,
        collections: [docs],
        drop: true,
        batchCount: 10,
        parallel: 1,
      }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(RestoreInterruptedError);
      expect((error as RestoreInterruptedError).code).toBe("TARGET_FAILED");
      expect(((error as RestoreInterruptedError).cause as Error).message).toMatch(
        /^retry\.docs: inserting documents failed: .*(closed|reset|socket)/i,
      );
    } finally {
      await fx.close();
    }
  });

  it("restores every valid document of the BSON corpus byte for byte, the degenerate encodings too", async () => {
    const all = JSON.parse(
      readFileSync(new URL("../fixtures/bson-corpus/all-documents.json", import.meta.url), "utf8"),
    ) as { cases: Array<{ kind: string; bson: string }> };
    const docs = all.cases
      .filter((c) => c.kind !== "decodeError")
      .map((c, i) => withIntId(i, Buffer.from(c.bson, "hex")));
    expect(docs.length).toBe(732);
    const md5 = createHash("md5");
    for (const doc of docs) md5.update(doc);
    const fx = await withEmulator();
    try {
      const result = await loadCollections({
        uri: fx.emulator.uri,
        collections: [
          {
            namespace: "corpus.all",
            type: "collection",
            options: {},
            indexes: [{ v: { $numberInt: "2" }, key: { _id: { $numberInt: "1" } }, name: "_id_" }],
            md5: md5.digest("hex"),
            documents: async function* () {
              yield* docs;
            },
          },
        ],
      });
      expect(result.verified).toBe(true);
      expect(await storedBytes(fx.client, "corpus", "all")).toEqual(docs.map((doc) => doc.toString("hex")));
    } finally {
      await fx.close();
    }
  });

  it("stops at a document the target refuses, naming the collection and _id, and closes the source", async () => {
    const fx = await withEmulator();
    try {
      // Document 2 comes twice: the target's unique _id refuses the second.
      const docs = Array.from({ length: 50 }, (_, i) =>
        Buffer.from(serialize({ _id: new Int32(i < 3 ? i : i - 1), n: i })),
      );
      let read = 0;
      let closed = false;
      const refused: LoaderCollection = {
        namespace: "odd.refused",
        type: "collection",
        options: {},
        indexes: [{ v: { $numberInt: "2" }, key: { _id: { $numberInt: "1" } }, name: "_id_" }],
        md5: null,
        documents: async function* () {
          try {
            for (const document of docs) {
              read++;
              yield document;
            }
          } finally {
            closed = true;
          }
        },
      };
      const error = await loadCollections({
        uri: fx.emulator.uri,
        collections: [refused],
        batchCount: 1,
        parallel: 1,
      }).then(
        () => undefined,
        (e: unknown) => e,
      );
      // Stopped after the collection was created: the report says it is not complete.
      expect(error).toBeInstanceOf(RestoreInterruptedError);
      expect((error as RestoreInterruptedError).incomplete).toEqual(["odd.refused"]);
      expect((error as RestoreInterruptedError).code).toBe("TARGET_FAILED");
      const cause = (error as RestoreInterruptedError).cause as Error;
      expect(cause.message).toMatch(
        /^odd\.refused: inserting documents failed: 1 document\(s\) were refused \(first failing _id \{"\$numberInt":"2"\}\): .*duplicate key/,
      );
      expect(read).toBeLessThan(docs.length);
      expect(closed).toBe(true);
    } finally {
      await fx.close();
    }
  });
});
