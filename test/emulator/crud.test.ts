import { Decimal128, Double, Int32, Long, ObjectId, type Document } from "mongodb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { withEmulator, type AnyDoc, type EmulatorFixture } from "../helpers/emulator.js";

// Behaviours below follow the MongoDB 7.0 manual: "db.collection.insertMany()", "update",
// "delete", "Unique Indexes", "Cursors" (default first batch of 101 documents).
describe("emulator CRUD through the official driver", () => {
  let fx: EmulatorFixture;
  beforeAll(async () => {
    fx = await withEmulator();
  });
  afterAll(async () => fx?.close());
  const db = () => fx.client.db("crud");

  it("inserts and finds documents, keeping BSON types exactly", async () => {
    const coll = db().collection<AnyDoc>("types");
    const doc = {
      _id: new ObjectId(),
      i: new Int32(7),
      d: new Double(1),
      l: Long.fromString("9007199254740993"),
      dec: Decimal128.fromString("12.50"),
      nested: { a: [1, "two", { three: 3 }] },
      when: new Date("2026-01-02T03:04:05Z"),
    };
    await coll.insertOne(doc);
    const back = await coll.findOne({ _id: doc._id }, { promoteValues: false });
    expect(back?.d).toBeInstanceOf(Double);
    expect(back?.i).toBeInstanceOf(Int32);
    expect((back?.l as Long).toString()).toBe("9007199254740993");
    expect((back?.dec as Decimal128).toString()).toBe("12.50");
    expect(back?.nested).toEqual({ a: [new Int32(1), "two", { three: new Int32(3) }] });
  });

  it("moves _id to the front of a document, as mongod does", async () => {
    const coll = db().collection<AnyDoc>("idfirst");
    await coll.insertOne({ a: 1, _id: "x" } as Document);
    const [raw] = await coll.find({}, { raw: true }).toArray();
    expect(Buffer.from(raw as unknown as Uint8Array).toString("latin1", 5, 8)).toBe("_id");
  });

  it("returns getMore batches for a large result", async () => {
    const coll = db().collection<AnyDoc>("batches");
    await coll.insertMany(Array.from({ length: 350 }, (_, i) => ({ _id: i, v: i % 7 })));
    const cursor = coll.find({}, { batchSize: 100 }).sort({ _id: 1 });
    const ids: number[] = [];
    for await (const doc of cursor) ids.push(doc._id as unknown as number);
    expect(ids).toEqual(Array.from({ length: 350 }, (_, i) => i));
    const firstBatch = await db().command({ find: "batches" });
    expect(firstBatch.cursor.firstBatch).toHaveLength(101);
    expect(firstBatch.cursor.id.toString()).not.toBe("0");
    await db().command({ killCursors: "batches", cursors: [firstBatch.cursor.id] });
  });

  it("filters, sorts, skips, limits and projects", async () => {
    const coll = db().collection<AnyDoc>("batches");
    const docs = await coll
      .find({ v: { $in: [1, 2] }, _id: { $gte: 10 } }, { projection: { v: 1 } })
      .sort({ v: -1, _id: 1 })
      .skip(2)
      .limit(5)
      .toArray();
    expect(docs).toEqual([
      { _id: 30, v: 2 },
      { _id: 37, v: 2 },
      { _id: 44, v: 2 },
      { _id: 51, v: 2 },
      { _id: 58, v: 2 },
    ]);
    expect(await coll.countDocuments({ v: 3 })).toBe(50);
    expect(await coll.estimatedDocumentCount()).toBe(350);
    expect((await coll.distinct("v")).sort()).toEqual([0, 1, 2, 3, 4, 5, 6]);
  });

  it("accepts a hint that names an index and refuses one that does not (BadValue 2)", async () => {
    const coll = db().collection<AnyDoc>("batches");
    expect(await coll.find({ v: 1 }).hint({ _id: 1 }).limit(1).toArray()).toHaveLength(1);
    expect(await coll.find({ v: 1 }).hint("_id_").limit(1).toArray()).toHaveLength(1);
    expect(await coll.find({}).hint({ $natural: 1 }).limit(1).toArray()).toHaveLength(1);
    await expect(coll.find({}).hint({ nope: 1 }).toArray()).rejects.toMatchObject({ code: 2 });
  });

  it("treats numerically equal _id values of different types as the same key", async () => {
    const coll = db().collection<AnyDoc>("numericIds");
    await coll.insertOne({ _id: 1 as unknown as ObjectId });
    await expect(coll.insertOne({ _id: new Double(1) as unknown as ObjectId })).rejects.toMatchObject({
      code: 11000,
    });
    expect(await coll.findOne({ _id: Long.fromNumber(1) as unknown as ObjectId })).not.toBeNull();
  });

  it("updates with operators, upserts, multi and arrayFilters", async () => {
    const coll = db().collection<AnyDoc>("updates");
    await coll.insertMany([
      { _id: 1, n: 1, tags: ["a"], grades: [80, 95, 100] },
      { _id: 2, n: 2, tags: [], grades: [70, 99] },
    ]);
    const one = await coll.updateOne({ _id: 1 }, { $inc: { n: 10 }, $push: { tags: "b" } as Document });
    expect(one).toMatchObject({ matchedCount: 1, modifiedCount: 1 });
    expect(await coll.findOne({ _id: 1 })).toMatchObject({ n: 11, tags: ["a", "b"] });

    const many = await coll.updateMany({}, { $set: { flag: true } });
    expect(many).toMatchObject({ matchedCount: 2, modifiedCount: 2 });
    const again = await coll.updateMany({}, { $set: { flag: true } });
    expect(again).toMatchObject({ matchedCount: 2, modifiedCount: 0 });

    await coll.updateMany({}, { $set: { "grades.$[g]": 100 } }, { arrayFilters: [{ g: { $gte: 95 } }] });
    expect((await coll.find().sort({ _id: 1 }).toArray()).map((d) => d.grades)).toEqual([
      [80, 100, 100],
      [70, 100],
    ]);

    const upsert = await coll.updateOne(
      { _id: 3 },
      { $set: { n: 3 }, $setOnInsert: { created: true } },
      { upsert: true },
    );
    expect(upsert.upsertedId).toBe(3);
    expect(await coll.findOne({ _id: 3 })).toEqual({ _id: 3, n: 3, created: true });
    await coll.updateOne({ _id: 3 }, { $set: { n: 4 }, $setOnInsert: { created: false } }, { upsert: true });
    expect(await coll.findOne({ _id: 3 })).toEqual({ _id: 3, n: 4, created: true });

    const replaced = await coll.replaceOne({ _id: 2 }, { whole: "new" });
    expect(replaced.modifiedCount).toBe(1);
    expect(await coll.findOne({ _id: 2 })).toEqual({ _id: 2, whole: "new" });
  });

  it("refuses to change _id (ImmutableField 66)", async () => {
    const coll = db().collection<AnyDoc>("updates");
    await expect(coll.updateOne({ _id: 1 }, { $set: { _id: 99 } })).rejects.toMatchObject({ code: 66 });
  });

  it("deletes one or many", async () => {
    const coll = db().collection<AnyDoc>("deletes");
    await coll.insertMany(Array.from({ length: 10 }, (_, i) => ({ _id: i, even: i % 2 === 0 })));
    expect((await coll.deleteOne({ even: true })).deletedCount).toBe(1);
    expect((await coll.deleteMany({ even: true })).deletedCount).toBe(4);
    expect(await coll.countDocuments()).toBe(5);
  });

  it("enforces unique and compound unique indexes with keyPattern and keyValue", async () => {
    const coll = db().collection<AnyDoc>("unique");
    await coll.createIndex({ email: 1 }, { unique: true });
    await coll.createIndex({ a: 1, b: -1 }, { unique: true, name: "a_b" });
    await coll.insertOne({ _id: 1, email: "x@example.com", a: 1, b: 1 });
    await expect(coll.insertOne({ _id: 2, email: "x@example.com" })).rejects.toMatchObject({
      code: 11000,
      keyPattern: { email: 1 },
      keyValue: { email: "x@example.com" },
    });
    await expect(coll.insertOne({ _id: 3, email: "y@example.com", a: 1, b: 1 })).rejects.toMatchObject({
      code: 11000,
      keyPattern: { a: 1, b: -1 },
    });
    await coll.insertOne({ _id: 4, email: "z@example.com", a: 1, b: 2 });
    await expect(coll.updateOne({ _id: 4 }, { $set: { b: 1 } })).rejects.toMatchObject({ code: 11000 });
    expect(await coll.findOne({ _id: 4 })).toMatchObject({ b: 2 });
    const names = (await coll.listIndexes().toArray()).map((i) => i.name);
    expect(names).toEqual(["_id_", "email_1", "a_b"]);
    await expect(coll.createIndex({ email: 1 }, { unique: true, name: "other" })).rejects.toMatchObject({
      code: 85,
    });
  });

  it("reports every error of an unordered insertMany and stops at the first when ordered", async () => {
    const coll = db().collection<AnyDoc>("ordered");
    await coll.insertOne({ _id: 2 });
    const unordered = await coll
      .insertMany([{ _id: 1 }, { _id: 2 }, { _id: 3 }, { _id: 2 }], { ordered: false })
      .catch((e: { writeErrors: unknown[]; insertedCount: number }) => e);
    expect((unordered as { writeErrors: unknown[] }).writeErrors).toHaveLength(2);
    expect(await coll.countDocuments()).toBe(3);
    await coll.deleteMany({});
    await coll.insertOne({ _id: 2 });
    await expect(coll.insertMany([{ _id: 1 }, { _id: 2 }, { _id: 3 }])).rejects.toMatchObject({
      code: 11000,
    });
    expect((await coll.find().sort({ _id: 1 }).toArray()).map((d) => d._id)).toEqual([1, 2]);
  });

  it("runs findAndModify in all its forms", async () => {
    const coll = db().collection<AnyDoc>("fam");
    await coll.insertMany([
      { _id: 1, q: 5 },
      { _id: 2, q: 1 },
    ]);
    const before = await coll.findOneAndUpdate(
      {},
      { $inc: { q: 1 } },
      { sort: { q: 1 }, returnDocument: "before" },
    );
    expect(before).toEqual({ _id: 2, q: 1 });
    const after = await coll.findOneAndUpdate({ _id: 1 }, { $inc: { q: 1 } }, { returnDocument: "after" });
    expect(after).toEqual({ _id: 1, q: 6 });
    const upserted = await coll.findOneAndReplace(
      { _id: 9 },
      { q: 9 },
      { upsert: true, returnDocument: "after" },
    );
    expect(upserted).toEqual({ _id: 9, q: 9 });
    const removed = await coll.findOneAndDelete({ q: { $gt: 5 } }, { sort: { q: -1 } });
    expect(removed).toEqual({ _id: 9, q: 9 });
  });

  it("aggregates with common stages", async () => {
    const coll = db().collection<AnyDoc>("agg");
    await coll.insertMany(Array.from({ length: 20 }, (_, i) => ({ _id: i, g: i % 3, v: i })));
    const groups = await coll
      .aggregate([
        { $match: { v: { $gte: 3 } } },
        { $group: { _id: "$g", total: { $sum: "$v" } } },
        { $sort: { _id: 1 } },
      ])
      .toArray();
    expect(groups).toEqual([
      { _id: 0, total: 3 + 6 + 9 + 12 + 15 + 18 },
      { _id: 1, total: 4 + 7 + 10 + 13 + 16 + 19 },
      { _id: 2, total: 5 + 8 + 11 + 14 + 17 },
    ]);
  });
});

describe("emulator catalog commands", () => {
  let fx: EmulatorFixture;
  beforeAll(async () => {
    fx = await withEmulator();
  });
  afterAll(async () => fx?.close());

  it("creates collections with options kept verbatim, views, and lists them with UUIDs", async () => {
    const db = fx.client.db("cat");
    await db.createCollection("capped", { capped: true, size: 4096, max: 10 });
    await db.createCollection("validated", {
      validator: { qty: { $gte: 0 } },
      validationAction: "error",
      collation: { locale: "en", strength: 2 },
    });
    await db.createCollection("plain");
    await db.createCollection("view", { viewOn: "plain", pipeline: [{ $match: { x: 1 } }] });
    const infos = (await db.listCollections().toArray()) as Document[];
    const byName = Object.fromEntries(infos.map((i) => [i.name, i]));
    expect(byName.capped.options).toEqual({ capped: true, size: 4096, max: 10 });
    expect(byName.validated.options.collation).toEqual({ locale: "en", strength: 2 });
    expect(byName.plain.info.uuid.sub_type ?? byName.plain.info.uuid.subType).toBe(4);
    expect(byName.view).toMatchObject({
      type: "view",
      options: { viewOn: "plain", pipeline: [{ $match: { x: 1 } }] },
    });
    await expect(db.createCollection("plain")).rejects.toMatchObject({ code: 48 });
  });

  it("enforces validators (121) and reads through views", async () => {
    const db = fx.client.db("cat");
    await expect(db.collection<AnyDoc>("validated").insertOne({ qty: -1 })).rejects.toMatchObject({
      code: 121,
    });
    await db.collection<AnyDoc>("plain").insertMany([{ x: 1 }, { x: 2 }, { x: 1 }]);
    expect(await db.collection<AnyDoc>("view").countDocuments()).toBe(2);
  });

  it("renames across databases, drops, and reports NamespaceNotFound (26)", async () => {
    const db = fx.client.db("cat");
    await db.collection<AnyDoc>("plain").rename("renamed");
    expect(await db.collection<AnyDoc>("renamed").countDocuments()).toBe(3);
    await fx.client.db("admin").command({ renameCollection: "cat.renamed", to: "other.moved" });
    expect(await fx.client.db("other").collection<AnyDoc>("moved").countDocuments()).toBe(3);
    await expect(db.command({ drop: "nothing" })).rejects.toMatchObject({ code: 26 });
    await expect(db.command({ listIndexes: "nothing" })).rejects.toMatchObject({ code: 26 });
    const dbs = (await fx.client.db("admin").admin().listDatabases()).databases.map((d) => d.name);
    expect(dbs).toEqual(expect.arrayContaining(["cat", "local", "other"]));
    await fx.client.db("other").dropDatabase();
    const after = (await fx.client.db("admin").admin().listDatabases()).databases.map((d) => d.name);
    expect(after).not.toContain("other");
  });

  it("reports sizes in collStats and dbStats for progress estimates", async () => {
    const db = fx.client.db("sizes");
    await db
      .collection<AnyDoc>("c")
      .insertMany(Array.from({ length: 100 }, (_, i) => ({ _id: i, pad: "x".repeat(100) })));
    const stats = await db.command({ collStats: "c" });
    expect(stats.count).toBe(100);
    expect(stats.size).toBeGreaterThan(100 * 100);
    expect(stats.avgObjSize).toBe(Math.floor(stats.size / 100));
    const dbStats = await db.command({ dbStats: 1 });
    expect(dbStats).toMatchObject({ collections: 1, objects: 100, dataSize: stats.size });
  });
});
