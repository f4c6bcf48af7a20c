/**
 * local.oplog.rs as MongoDB 7.0 writes it, checked through the official driver only.
 *
 * Every entry kind is compared field by field (names, top-level order, BSON types) with real
 * entries from `test/fixtures/oplog/real-entries.json` (MongoDB 5.0.5 and newer servers, see the
 * fixtures README). Where 7.0 differs from those servers the test says so and cites the source:
 *  - inserts carry `o2: {_id}` (the document key) since 5.3: jstest "Tests that write oplog entries
 *    contain the correct document key on sharded and non-sharded collection" (requires_fcv_53,
 *    mongodb/mongo) asserts it for plain and transactional inserts;
 *  - `stmtId` moved into DurableReplOperation (before `ts`) in 6.0: `src/mongo/db/repl/
 *    oplog_entry.idl`; the recent-server retryable inserts in the fixtures show that order;
 *  - collMod's `o2` is `{collectionOptions_old, indexOptions_old}` and a rename that drops its
 *    target has `o2: {numRecords}`: OpObserverImpl::onCollMod / preRenameCollection
 *    (`src/mongo/db/op_observer/op_observer_impl.cpp`, 7.0 era with OplogWriter);
 *  - views are documents of `<db>.system.views`: jstest `view_catalog_oplog_entries.js` (one
 *    insert, one update on system.views) and the change-stream filter
 *    `buildViewDefinitionEventFilter` (view events come from CRUD on system.views);
 *  - a rename across databases copies through `tmpXXXXX.renameCollection`: renameBetweenDBs in
 *    `src/mongo/db/catalog/rename_collection.cpp`.
 * MongoDB manual: "Replica Set Oplog" (https://www.mongodb.com/docs/v7.0/core/replica-set-oplog/),
 * "Retryable Writes", "Tailable Cursors" and "Capped Collections".
 */
import {
  Binary,
  Decimal128,
  Double,
  Int32,
  Long,
  MaxKey,
  MinKey,
  MongoClient,
  ObjectId,
  Timestamp,
  type Document,
} from "mongodb";
import { deserialize, EJSON, serialize } from "bson";
import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { withEmulator, type AnyDoc, type EmulatorFixture } from "../helpers/emulator.js";
import {
  bsonType,
  decode,
  entriesAfter,
  fieldsOf,
  newestTs,
  oplogAfter,
  rawField,
  realEntry,
  shapeOf,
} from "../helpers/oplog.js";

const COMMON_TAIL = ["ts:Timestamp", "t:Long", "v:Long", "wall:Date"];
const NULL_OPTIME = { ts: new Timestamp({ t: 0, i: 0 }), t: Long.fromNumber(-1) };

function bytes(doc: Document): Buffer {
  return Buffer.from(serialize(doc));
}

/** Field list of a real 5.0 entry with `o2` inserted after `o` (inserts gained it in 5.3). */
function withO2AfterO(fields: string[]): string[] {
  const at = fields.findIndex((f) => f.startsWith("o:"));
  return [...fields.slice(0, at + 1), "o2:Object", ...fields.slice(at + 1)];
}

async function uuidOf(client: MongoClient, db: string, name: string): Promise<Binary> {
  const [info] = await client.db(db).listCollections({ name }).toArray();
  return (info as Document).info.uuid as Binary;
}

function sameUuid(a: unknown, b: unknown): boolean {
  return Buffer.from((a as Binary).buffer).equals(Buffer.from((b as Binary).buffer));
}

describe("local.oplog.rs entries, field by field against real MongoDB entries", () => {
  let fx: EmulatorFixture;
  /** Plain (non-retryable) writes: the driver sends no txnNumber. */
  let plain: MongoClient;
  beforeAll(async () => {
    fx = await withEmulator();
    plain = new MongoClient(fx.emulator.uri, { retryWrites: false, serverSelectionTimeoutMS: 5000 });
    await plain.connect();
  });
  afterAll(async () => {
    await plain?.close();
    await fx?.close();
  });

  it("insert: the whole document byte for byte, o2 {_id}, fields in 7.0 order", async () => {
    const coll = plain.db("kinds").collection<AnyDoc>("inserts");
    await coll.insertOne({ _id: new ObjectId(), warmup: true }); // creates the collection
    const before = await newestTs(plain);
    const doc = {
      _id: new ObjectId(),
      int: new Int32(7),
      long: Long.fromNumber(8),
      double: new Double(1),
      decimal: Decimal128.fromString("1.50"),
      text: "héllo",
      date: new Date(1_700_000_000_000),
      bin: new Binary(Buffer.from("bytes"), 0),
      nested: { list: [1, { deep: null }], empty: {} },
      min: new MinKey(),
      max: new MaxKey(),
      flag: false,
    };
    await coll.insertOne(doc);
    const raw = (await oplogAfter(plain, before, { ns: "kinds.inserts" }))[0];
    const entry = decode(raw);
    const real = realEntry("insert");

    expect(fieldsOf(entry)).toEqual(withO2AfterO(fieldsOf(real)));
    expect(entry).toMatchObject({ op: "i", ns: "kinds.inserts" });
    expect(sameUuid(entry.ui, await uuidOf(plain, "kinds", "inserts"))).toBe(true);
    expect(rawField(raw, "o")!.equals(bytes(doc))).toBe(true);
    expect(rawField(raw, "o2")!.equals(bytes({ _id: doc._id }))).toBe(true);
    expect(entry.lsid).toBeUndefined();
    expect(entry.v).toEqual(Long.fromNumber(2));
  });

  it("insert: _id moves to the front, or is generated, and keeps its exact type in o2", async () => {
    const coll = plain.db("kinds").collection<AnyDoc>("inserts");
    const before = await newestTs(plain);
    await coll.insertOne({ a: 1, _id: new Int32(5), b: "x" });
    await coll.insertOne({ _id: Long.fromNumber(6), c: 1 });
    const raws = await oplogAfter(plain, before, { ns: "kinds.inserts" });
    expect(rawField(raws[0], "o")!.equals(bytes({ _id: new Int32(5), a: 1, b: "x" }))).toBe(true);
    expect(bsonType(decode(raws[1]).o2._id)).toBe("Long");
  });

  it("update with $set of one field of a big document logs {$v: 2, diff: {u: {field: value}}}", async () => {
    const coll = plain.db("kinds").collection<AnyDoc>("updates");
    const big: Document = { _id: 1 };
    for (let i = 0; i < 50; i++) big[`f${i}`] = `value ${i} ${"x".repeat(40)}`;
    await coll.insertOne(big);
    const before = await newestTs(plain);
    await coll.updateOne({ _id: 1 }, { $set: { f10: "changed" } });
    const [raw] = await oplogAfter(plain, before, { ns: "kinds.updates" });
    const entry = decode(raw);
    const real = realEntry("update $v:2 (u section)");

    expect(fieldsOf(entry)).toEqual(fieldsOf(real));
    expect(entry.op).toBe("u");
    expect(rawField(raw, "o2")!.equals(bytes({ _id: 1 }))).toBe(true);
    // The real entry's o is {$v: Int32 2, diff: {u: {<field>: <value>}}}.
    expect(shapeOf(real.o).slice(0, 3)).toEqual(["$v:Int32", "diff:Object", "diff.u:Object"]);
    expect(rawField(raw, "o")!.equals(bytes({ $v: new Int32(2), diff: { u: { f10: "changed" } } }))).toBe(
      true,
    );
  });

  it("$unset and a new field log diff sections d and i, in the server's section order", async () => {
    const coll = plain.db("kinds").collection<AnyDoc>("updates");
    await coll.insertOne({ _id: 2, a: 1, b: 2, c: 3 });
    const before = await newestTs(plain);
    await coll.updateOne({ _id: 2 }, { $unset: { b: "" }, $set: { a: 10, z: 26 } });
    const [raw] = await oplogAfter(plain, before, { ns: "kinds.updates" });
    // Sections d, u, i (document_diff_serialization.cpp; see the conformance README).
    const expected = { $v: new Int32(2), diff: { d: { b: false }, u: { a: 10 }, i: { z: 26 } } };
    expect(rawField(raw, "o")!.equals(bytes(expected))).toBe(true);
    expect(shapeOf(realEntry("update $v:2 (u and i sections)").o)).toContain("diff.i:Object");
  });

  describe("updates and replacements from jstests/replsets/oplog_format.js (real server o and o2)", () => {
    const file = JSON.parse(
      readFileSync(new URL("../fixtures/update-diff/cases.json", import.meta.url), "utf8"),
    ) as { cases: Document[] };
    const cases = file.cases.filter((c) => c.kind === "server-oplog" || c.kind === "replacement");

    /** The shell strings of the test (`{$inc: {a: 1}}`) as documents, numbers as doubles like the shell. */
    function shellDocument(text: string): Document {
      const json = text.replace(/'/g, '"').replace(/([{,]\s*)([$\w.]+)\s*:/g, '$1"$2":');
      const toDoubles = (value: unknown): unknown => {
        if (typeof value === "number") return new Double(value);
        if (Array.isArray(value)) return value.map(toDoubles);
        if (value && typeof value === "object")
          return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, toDoubles(v)]));
        return value;
      };
      return toDoubles(JSON.parse(json)) as Document;
    }

    it("has the 14 update and 4 replacement cases", () => {
      expect(cases.map((c) => c.kind).sort()).toEqual([
        ...Array(4).fill("replacement"),
        ...Array(14).fill("server-oplog"),
      ]);
    });

    /** The entry each case's update wrote, shared by its two checks. */
    const logged = new Map<number, Buffer>();

    for (const [index, testCase] of cases.entries()) {
      const title = `${testCase.source.test}: ${testCase.update}`;
      it(`${title} — same o and o2 as the server (numbers compared by value)`, async () => {
        const coll = plain.db("oplogformat").collection<AnyDoc>(`case${index}`);
        const pre = deserialize(Buffer.from(testCase.preImageBson, "base64"), { promoteValues: false });
        await coll.insertOne(pre);
        const before = await newestTs(plain);
        const update = shellDocument(testCase.update);
        if (testCase.kind === "replacement") await coll.replaceOne({ _id: pre._id }, update);
        else await coll.updateOne({ _id: pre._id }, update);
        const [raw] = await oplogAfter(plain, before, { ns: coll.namespace });
        expect(raw, "an update entry").toBeDefined();
        logged.set(index, raw);
        expect(decode(raw).op).toBe("u");
        const byValue = (bson: Buffer) => EJSON.stringify(deserialize(bson), { relaxed: true });
        expect(byValue(rawField(raw, "o")!)).toBe(byValue(Buffer.from(testCase.oBson, "base64")));
        expect(rawField(raw, "o2")!.equals(bytes({ _id: pre._id }))).toBe(true);
      });
      it(`${title} — byte-equal o, BSON number types included`, () => {
        const raw = logged.get(index);
        expect(raw, "the update entry of the previous check").toBeDefined();
        expect(decode(rawField(raw!, "o")!)).toEqual(decode(Buffer.from(testCase.oBson, "base64")));
        expect(rawField(raw!, "o")!.toString("base64")).toBe(testCase.oBson);
      });
    }
  });

  it("replacement: the whole new document, no $v, o2 {_id}", async () => {
    const coll = plain.db("kinds").collection<AnyDoc>("replacements");
    await coll.insertOne({ _id: "r1", a: 1 });
    const before = await newestTs(plain);
    await coll.replaceOne({ _id: "r1" }, { b: new Int32(2), c: [Long.fromNumber(3)] });
    const [raw] = await oplogAfter(plain, before, { ns: "kinds.replacements" });
    const entry = decode(raw);
    const real = realEntry("replacement");
    expect(fieldsOf(entry)).toEqual(fieldsOf(real));
    expect(entry.op).toBe("u");
    expect(rawField(raw, "o")!.equals(bytes({ _id: "r1", b: new Int32(2), c: [Long.fromNumber(3)] }))).toBe(
      true,
    );
    expect(rawField(raw, "o2")!.equals(bytes({ _id: "r1" }))).toBe(true);
    expect(entry.o.$v).toBeUndefined();
  });

  it("delete: o is {_id} with the _id's type, no o2", async () => {
    const coll = plain.db("kinds").collection<AnyDoc>("deletes");
    await coll.insertOne({ _id: new Double(1.5), a: 1 });
    const before = await newestTs(plain);
    await coll.deleteOne({ a: 1 });
    const [raw] = await oplogAfter(plain, before, { ns: "kinds.deletes" });
    const entry = decode(raw);
    expect(fieldsOf(entry)).toEqual(fieldsOf(realEntry("delete")));
    expect(entry.op).toBe("d");
    expect(rawField(raw, "o")!.equals(bytes({ _id: new Double(1.5) }))).toBe(true);
  });

  describe("commands on <db>.$cmd", () => {
    it("implicit create: {create, idIndex} with the new collection's UUID", async () => {
      const before = await newestTs(plain);
      await plain.db("ddl").collection<AnyDoc>("implicit").insertOne({ x: 1 });
      const [create, insert] = await entriesAfter(plain, before);
      const real = realEntry("implicit create");
      expect(fieldsOf(create)).toEqual(fieldsOf(real));
      expect(create).toMatchObject({ op: "c", ns: "ddl.$cmd" });
      expect(shapeOf(create.o)).toEqual(shapeOf(real.o));
      expect(create.o).toEqual({
        create: "implicit",
        idIndex: { v: new Int32(2), key: { _id: new Int32(1) }, name: "_id_" },
      });
      expect(sameUuid(create.ui, await uuidOf(plain, "ddl", "implicit"))).toBe(true);
      expect(sameUuid(insert.ui, create.ui)).toBe(true);
    });

    it("create with options: kept as given, idIndex last (real validator entry)", async () => {
      const real = realEntry("create with validator");
      const before = await newestTs(plain);
      await plain.db("ddl").createCollection("validated", { validator: real.o.validator });
      const [raw] = await oplogAfter(plain, before, { ns: "ddl.$cmd" });
      const entry = decode(raw);
      expect(fieldsOf(entry)).toEqual(fieldsOf(real));
      expect(rawField(raw, "o")!.equals(bytes({ ...real.o, create: "validated" }))).toBe(true);
    });

    it("capped create: {create, capped, size, max, idIndex}", async () => {
      const before = await newestTs(plain);
      await plain.db("ddl").createCollection("capped", { capped: true, size: 4096, max: 10 });
      const [entry] = await entriesAfter(plain, before);
      expect(shapeOf(entry.o)).toEqual([
        "create:String",
        "capped:Boolean",
        "size:Int32",
        "max:Int32",
        "idIndex:Object",
        "idIndex.v:Int32",
        "idIndex.key:Object",
        "idIndex.key._id:Int32",
        "idIndex.name:String",
      ]);
      expect(entry.o).toMatchObject({
        create: "capped",
        capped: true,
        size: new Int32(4096),
        max: new Int32(10),
      });
    });

    it("views are documents of <db>.system.views: create, collMod and drop are CRUD on it", async () => {
      const db = plain.db("views");
      await db.collection<AnyDoc>("base").insertOne({ x: 1 });
      const before = await newestTs(plain);
      await db.createCollection("v1", { viewOn: "base", pipeline: [{ $match: { x: 1 } }] });
      await db.createCollection("v2", { viewOn: "base", pipeline: [] });
      const created = await entriesAfter(plain, before);
      expect(created.map((e) => `${e.op} ${e.ns}`)).toEqual([
        "c views.$cmd",
        "i views.system.views",
        "i views.system.views",
      ]);
      expect(created[0].o.create).toBe("system.views");
      expect(created.some((e) => e.op === "c" && e.o.viewOn !== undefined)).toBe(false);
      const insert = created[1];
      expect(fieldsOf(insert)).toEqual(withO2AfterO(fieldsOf(realEntry("insert"))));
      expect(insert.o).toEqual({
        _id: "views.v1",
        viewOn: "base",
        pipeline: [{ $match: { x: new Int32(1) } }],
      });
      expect(insert.o2).toEqual({ _id: "views.v1" });
      expect(sameUuid(insert.ui, await uuidOf(plain, "views", "system.views"))).toBe(true);
      expect(await db.collection<AnyDoc>("v1").countDocuments()).toBe(1);

      const beforeMod = await newestTs(plain);
      await db.command({ collMod: "v1", viewOn: "base", pipeline: [{ $match: { x: 2 } }] });
      await db.collection<AnyDoc>("v2").drop();
      const [modified, dropped] = await entriesAfter(plain, beforeMod);
      expect(modified).toMatchObject({ op: "u", ns: "views.system.views", o2: { _id: "views.v1" } });
      expect(modified.o).toEqual({
        _id: "views.v1",
        viewOn: "base",
        pipeline: [{ $match: { x: new Int32(2) } }],
      });
      expect(dropped).toMatchObject({ op: "d", ns: "views.system.views", o: { _id: "views.v2" } });
    });

    it("drop: {drop} with o2 {numRecords} and the dropped collection's UUID", async () => {
      const coll = plain.db("ddl").collection<AnyDoc>("todrop");
      await coll.insertMany([{ a: 1 }, { a: 2 }, { a: 3 }]);
      const uuid = await uuidOf(plain, "ddl", "todrop");
      const before = await newestTs(plain);
      await coll.drop();
      const [entry] = await entriesAfter(plain, before);
      const real = realEntry("drop");
      expect(fieldsOf(entry)).toEqual(fieldsOf(real));
      expect(shapeOf(entry.o2)).toEqual(shapeOf(real.o2));
      expect(entry.o).toEqual({ drop: "todrop" });
      expect(entry.o2).toEqual({ numRecords: new Int32(3) });
      expect(sameUuid(entry.ui, uuid)).toBe(true);
    });

    it("dropDatabase: a drop per collection, then {dropDatabase: 1} without ui", async () => {
      const db = plain.db("gone");
      await db.collection<AnyDoc>("a").insertOne({ x: 1 });
      await db.collection<AnyDoc>("b").insertMany([{ x: 1 }, { x: 2 }]);
      const before = await newestTs(plain);
      await db.dropDatabase();
      const entries = await entriesAfter(plain, before);
      expect(entries.map((e) => e.o)).toEqual([{ drop: "a" }, { drop: "b" }, { dropDatabase: new Int32(1) }]);
      expect(entries.map((e) => e.o2)).toEqual([
        { numRecords: new Int32(1) },
        { numRecords: new Int32(2) },
        undefined,
      ]);
      const last = entries[2];
      // The real dropDatabase entry (mongo-tools) has the same fields; its 4.4 order puts wall before v.
      expect(shapeOf(last.o)).toEqual(shapeOf(realEntry("dropDatabase").o));
      expect(fieldsOf(last)).toEqual(["op:String", "ns:String", "o:Object", ...COMMON_TAIL]);
      expect(last.ns).toBe("gone.$cmd");
    });

    it("renameCollection within a database: one entry; dropTarget names the dropped UUID, o2 counts it", async () => {
      const db = plain.db("ren");
      await db.collection<AnyDoc>("src").insertMany([{ a: 1 }, { a: 2 }]);
      await db.collection<AnyDoc>("victim").insertMany([{ v: 1 }, { v: 2 }, { v: 3 }]);
      const srcUuid = await uuidOf(plain, "ren", "src");
      const victimUuid = await uuidOf(plain, "ren", "victim");
      let before = await newestTs(plain);
      await db.collection<AnyDoc>("src").rename("dst");
      let [entry] = await entriesAfter(plain, before);
      expect(fieldsOf(entry)).toEqual(["op:String", "ns:String", "ui:Binary(4)", "o:Object", ...COMMON_TAIL]);
      expect(entry.ns).toBe("ren.$cmd");
      expect(entry.o).toEqual({ renameCollection: "ren.src", to: "ren.dst", stayTemp: false });
      expect(sameUuid(entry.ui, srcUuid)).toBe(true);
      expect(sameUuid(await uuidOf(plain, "ren", "dst"), srcUuid)).toBe(true);

      before = await newestTs(plain);
      await db.collection<AnyDoc>("dst").rename("victim", { dropTarget: true });
      [entry] = await entriesAfter(plain, before);
      expect(shapeOf(entry.o)).toEqual([
        "renameCollection:String",
        "to:String",
        "stayTemp:Boolean",
        "dropTarget:Binary(4)",
      ]);
      expect(sameUuid(entry.o.dropTarget, victimUuid)).toBe(true);
      expect(entry.o2).toEqual({ numRecords: new Int32(3) });
      expect(await db.collection<AnyDoc>("victim").countDocuments()).toBe(2);
    });

    it("renameCollection across databases: copy through tmpXXXXX.renameCollection, rename, drop the source", async () => {
      const from = plain.db("rfrom");
      await from.createCollection("data", { validator: { a: { $exists: true } } });
      await from.collection<AnyDoc>("data").createIndex({ a: 1 }, { name: "a_1" });
      await from.collection<AnyDoc>("data").insertMany([
        { _id: 1, a: 1 },
        { _id: 2, a: 2 },
      ]);
      await plain.db("rto").collection<AnyDoc>("target").insertOne({ old: true });
      const sourceUuid = await uuidOf(plain, "rfrom", "data");
      const targetUuid = await uuidOf(plain, "rto", "target");
      const before = await newestTs(plain);
      await plain.db("admin").command({ renameCollection: "rfrom.data", to: "rto.target", dropTarget: true });
      const entries = await entriesAfter(plain, before);
      expect(entries.map((e) => `${e.op} ${e.ns} ${Object.keys(e.o)[0]}`)).toEqual([
        "c rto.$cmd create",
        "c rto.$cmd createIndexes",
        `i ${entries[2].ns} _id`,
        `i ${entries[2].ns} _id`,
        "c rto.$cmd renameCollection",
        "c rfrom.$cmd drop",
      ]);
      const [create, index, , , rename, drop] = entries;
      const tmp = create.o.create as string;
      expect(tmp).toMatch(/^tmp[0-9A-Za-z]{5}\.renameCollection$/);
      expect(create.o).toEqual({
        create: tmp,
        validator: { a: { $exists: true } },
        idIndex: { v: new Int32(2), key: { _id: new Int32(1) }, name: "_id_" },
      });
      expect(sameUuid(create.ui, sourceUuid)).toBe(false);
      expect(index.o).toEqual({ createIndexes: tmp, v: new Int32(2), key: { a: new Int32(1) }, name: "a_1" });
      expect(entries[2].ns).toBe(`rto.${tmp}`);
      expect(entries[2].o2).toEqual({ _id: new Int32(1) });
      expect(rename.o).toMatchObject({ renameCollection: `rto.${tmp}`, to: "rto.target", stayTemp: false });
      expect(sameUuid(rename.ui, create.ui)).toBe(true);
      expect(sameUuid(rename.o.dropTarget, targetUuid)).toBe(true);
      expect(rename.o2).toEqual({ numRecords: new Int32(1) });
      expect(drop.o).toEqual({ drop: "data" });
      expect(drop.o2).toEqual({ numRecords: new Int32(2) });
      expect(sameUuid(drop.ui, sourceUuid)).toBe(true);
      expect(sameUuid(await uuidOf(plain, "rto", "target"), create.ui)).toBe(true);
      expect(await plain.db("rto").collection<AnyDoc>("target").countDocuments()).toBe(2);
      expect(
        (await plain.db("rto").collection<AnyDoc>("target").listIndexes().toArray()).map((i) => i.name),
      ).toEqual(["_id_", "a_1"]);
    });

    it("createIndexes: one entry per index on an empty collection, like the real one", async () => {
      await plain.db("idx").createCollection("empty");
      const before = await newestTs(plain);
      // Through the command, so the key keeps the double 1.0 of the real (shell-made) entry.
      await plain.db("idx").command({
        createIndexes: "empty",
        indexes: [
          { key: { f: new Double(1) }, name: "f_1" },
          { key: { g: -1 }, name: "g_-1", unique: true },
        ],
      });
      const entries = await entriesAfter(plain, before);
      const real = realEntry("createIndexes");
      expect(entries).toHaveLength(2);
      expect(shapeOf(entries[0].o)).toEqual(shapeOf(real.o));
      expect(entries[0].o).toEqual({
        createIndexes: "empty",
        v: new Int32(2),
        key: { f: new Double(1) },
        name: "f_1",
      });
      expect(entries[1].o).toEqual({
        createIndexes: "empty",
        v: new Int32(2),
        key: { g: new Int32(-1) },
        name: "g_-1",
        unique: true,
      });
      expect(fieldsOf(entries[0])).toEqual([
        "op:String",
        "ns:String",
        "ui:Binary(4)",
        "o:Object",
        ...COMMON_TAIL,
      ]);
    });

    it("createIndexes on a non-empty collection: a two-phase build, startIndexBuild then commitIndexBuild", async () => {
      const coll = plain.db("idx").collection<AnyDoc>("full");
      await coll.insertMany([{ f: 1 }, { f: 2 }]);
      const uuid = await uuidOf(plain, "idx", "full");
      const before = await newestTs(plain);
      await plain
        .db("idx")
        .command({ createIndexes: "full", indexes: [{ key: { f: new Double(1) }, name: "f_1" }] });
      const [start, commit, ...rest] = await entriesAfter(plain, before);
      expect(rest).toEqual([]);
      expect(shapeOf(start.o)).toEqual(shapeOf(realEntry("startIndexBuild").o));
      expect(shapeOf(commit.o)).toEqual(shapeOf(realEntry("commitIndexBuild").o));
      expect(start.o.startIndexBuild).toBe("full");
      expect(commit.o.commitIndexBuild).toBe("full");
      expect(sameUuid(start.o.indexBuildUUID, commit.o.indexBuildUUID)).toBe(true);
      expect(start.o.indexes).toEqual([{ v: new Int32(2), key: { f: new Double(1) }, name: "f_1" }]);
      expect(sameUuid(start.ui, uuid) && sameUuid(commit.ui, uuid)).toBe(true);
    });

    it("collMod of a TTL index and dropIndexes: o, and o2 = old options / the dropped spec", async () => {
      const coll = plain.db("idx").collection<AnyDoc>("ttl");
      await plain.db("idx").createCollection("ttl");
      const uuid = await uuidOf(plain, "idx", "ttl");
      await plain.db("idx").command({
        createIndexes: "ttl",
        indexes: [{ key: { f: new Double(1) }, name: "f_1", expireAfterSeconds: new Double(1000) }],
      });
      const [created] = await oplogAfter(plain, undefined, { "o.createIndexes": "ttl" });
      const realCreate = realEntry("createIndexes with expireAfterSeconds");
      expect(rawField(created, "o")!.equals(bytes({ ...realCreate.o, createIndexes: "ttl" }))).toBe(true);
      let before = await newestTs(plain);
      await plain.db("idx").command({ collMod: "ttl", index: { name: "f_1", expireAfterSeconds: 3600 } });
      const [mod] = await entriesAfter(plain, before);
      const real = realEntry("collMod index expireAfterSeconds");
      expect(shapeOf(mod.o)).toEqual(shapeOf(real.o));
      expect(mod.o).toEqual({
        collMod: "ttl",
        index: { name: "f_1", expireAfterSeconds: Long.fromNumber(3600) },
      });
      // 7.0's onCollMod: {collectionOptions_old: <old options with uuid>, indexOptions_old: {...}}
      expect(shapeOf(mod.o2)).toEqual([
        "collectionOptions_old:Object",
        "collectionOptions_old.uuid:Binary(4)",
        "indexOptions_old:Object",
        "indexOptions_old.expireAfterSeconds:Long",
      ]);
      expect(sameUuid(mod.o2.collectionOptions_old.uuid, uuid)).toBe(true);
      expect(mod.o2.indexOptions_old).toEqual({ expireAfterSeconds: Long.fromNumber(1000) });

      before = await newestTs(plain);
      await plain.db("idx").command({ collMod: "ttl", index: { name: "f_1", hidden: true } });
      const [hidden] = await entriesAfter(plain, before);
      expect(hidden.o).toEqual({ collMod: "ttl", index: { name: "f_1", hidden: true } });
      expect(hidden.o2.indexOptions_old).toEqual({ hidden: false });
      const realUnique = realEntry("collMod index prepareUnique");
      expect(shapeOf(hidden.o2).map((s) => s.replace("hidden", "prepareUnique"))).toEqual(
        shapeOf(realUnique.o2),
      );

      const spec = (await coll.listIndexes().toArray()).find((i) => i.name === "f_1");
      before = await newestTs(plain);
      await coll.dropIndex("f_1");
      const [drop] = await entriesAfter(plain, before);
      const realDrop = realEntry("dropIndexes");
      expect(fieldsOf(drop)).toEqual([
        "op:String",
        "ns:String",
        "ui:Binary(4)",
        "o:Object",
        "o2:Object",
        ...COMMON_TAIL,
      ]);
      expect(shapeOf(drop.o)).toEqual(shapeOf(realDrop.o));
      expect(drop.o).toEqual({ dropIndexes: "ttl", index: "f_1" });
      expect(drop.o2).toEqual({
        v: new Int32(2),
        key: { f: new Double(1) },
        name: "f_1",
        expireAfterSeconds: Long.fromNumber(3600),
        hidden: true,
      });
      expect(deserialize(serialize(drop.o2))).toEqual(deserialize(serialize(spec!)));
    });

    it("collMod of index options: the option moves to the end of the spec; hidden: false removes it", async () => {
      // mongod's catalog entry rewrites the spec without the option and appends it again, only
      // when true for hidden/unique/prepareUnique (IndexMetaData::updateHiddenSetting and
      // updateTTLSetting in bson_collection_catalog_entry.cpp).
      const coll = plain.db("idx").collection<AnyDoc>("moved");
      await coll.createIndex({ g: 1 }, { name: "g_1", expireAfterSeconds: 100 });
      await plain.db("idx").command({ collMod: "moved", index: { name: "g_1", hidden: true } });
      await plain.db("idx").command({ collMod: "moved", index: { name: "g_1", expireAfterSeconds: 200 } });
      let spec = (await coll.listIndexes().toArray()).find((i) => i.name === "g_1")!;
      expect(Object.keys(spec)).toEqual(["v", "key", "name", "hidden", "expireAfterSeconds"]);
      await plain.db("idx").command({ collMod: "moved", index: { name: "g_1", hidden: false } });
      spec = (await coll.listIndexes().toArray()).find((i) => i.name === "g_1")!;
      expect(Object.keys(spec)).toEqual(["v", "key", "name", "expireAfterSeconds"]);
    });

    it("collMod of collection options: o2.collectionOptions_old holds all the old options and the uuid", async () => {
      const db = plain.db("ddl");
      await db.createCollection("modded", { validator: { a: 1 }, validationLevel: "strict" });
      const uuid = await uuidOf(plain, "ddl", "modded");
      const before = await newestTs(plain);
      await db.command({ collMod: "modded", validator: { b: 1 } });
      const [entry] = await entriesAfter(plain, before);
      expect(entry.o).toEqual({ collMod: "modded", validator: { b: new Int32(1) } });
      expect(Object.keys(entry.o2.collectionOptions_old)).toEqual(["uuid", "validator", "validationLevel"]);
      expect(sameUuid(entry.o2.collectionOptions_old.uuid, uuid)).toBe(true);
      expect(entry.o2.collectionOptions_old.validator).toEqual({ a: new Int32(1) });
    });
  });

  describe("retryable writes (the driver's default against a replica set)", () => {
    it("stamp lsid {id, uid}, txnNumber, stmtId and a prevOpTime chain, in the recent server's order", async () => {
      const coll = fx.client.db("retry").collection<AnyDoc>("c");
      await coll.insertOne({ _id: 0 });
      const before = await newestTs(fx.client);
      await coll.insertMany([
        { _id: 1, a: 1 },
        { _id: 2, a: 2 },
      ]);
      const [first, second] = await entriesAfter(fx.client, before);
      const real = [realEntry("retryable insert, stmtId 0"), realEntry("retryable insert, stmtId 1")];
      expect(fieldsOf(first)).toEqual(fieldsOf(real[0]));
      expect(fieldsOf(second)).toEqual(fieldsOf(real[1]));
      expect(shapeOf(first.lsid)).toEqual(shapeOf(real[0].lsid));
      // uid = SHA-256 of the user ("" without authentication), as in the real unauthenticated entry.
      expect(Buffer.from(first.lsid.uid.buffer).equals(Buffer.from(real[0].lsid.uid.buffer))).toBe(true);
      expect(first.lsid).toEqual(second.lsid);
      expect(bsonType(first.txnNumber)).toBe("Long");
      expect(first.txnNumber).toEqual(second.txnNumber);
      expect([first.stmtId, second.stmtId]).toEqual([new Int32(0), new Int32(1)]);
      expect(first.prevOpTime).toEqual(NULL_OPTIME);
      // The chain links each statement to the previous one, as in the real pair.
      expect(real[0].prevOpTime).toEqual(NULL_OPTIME);
      expect(real[1].prevOpTime).toEqual({ ts: real[0].ts, t: real[0].t });
      expect(second.prevOpTime).toEqual({ ts: first.ts, t: first.t });
      expect(first.o2).toEqual({ _id: new Int32(1) });
    });

    it("a new command takes the next txnNumber and starts a new chain; stmtId is the statement's index", async () => {
      const coll = fx.client.db("retry").collection<AnyDoc>("c");
      const before = await newestTs(fx.client);
      await coll.updateOne({ _id: 1 }, { $set: { a: 10 } });
      // One update command with two statements; the first matches nothing, so the entry is stmtId 1.
      await coll.bulkWrite(
        [
          { updateOne: { filter: { _id: "none" }, update: { $set: { a: 0 } } } },
          { updateOne: { filter: { _id: 2 }, update: { $set: { a: 20 } } } },
        ],
        { ordered: true },
      );
      await coll.deleteOne({ _id: 0 });
      const [update, bulk, remove] = await entriesAfter(fx.client, before);
      expect([update.op, bulk.op, remove.op]).toEqual(["u", "u", "d"]);
      expect(bulk.txnNumber.toNumber()).toBe(update.txnNumber.toNumber() + 1);
      expect(remove.txnNumber.toNumber()).toBe(bulk.txnNumber.toNumber() + 1);
      expect([update.stmtId, bulk.stmtId, remove.stmtId]).toEqual([new Int32(0), new Int32(1), new Int32(0)]);
      for (const entry of [update, bulk, remove]) expect(entry.prevOpTime).toEqual(NULL_OPTIME);
      expect(fieldsOf(remove)).toEqual([
        "lsid:Object",
        "txnNumber:Long",
        "op:String",
        "ns:String",
        "ui:Binary(4)",
        "o:Object",
        "stmtId:Int32",
        ...COMMON_TAIL,
        "prevOpTime:Object",
      ]);
    });

    it("the implicit create of a retryable insert carries no session fields", async () => {
      const before = await newestTs(fx.client);
      await fx.client.db("retry").collection<AnyDoc>("fresh").insertOne({ x: 1 });
      const [create, insert] = await entriesAfter(fx.client, before);
      expect(create.op).toBe("c");
      expect(create.lsid).toBeUndefined();
      expect(create.txnNumber).toBeUndefined();
      expect(insert.lsid).toBeDefined();
    });
  });

  it("every entry: ts strictly increasing Timestamp, t int64, v int64 2, wall Date, ui UUID", async () => {
    const raws = await oplogAfter(plain);
    expect(raws.length).toBeGreaterThan(50);
    let previous: Timestamp | undefined;
    for (const raw of raws) {
      const entry = decode(raw);
      expect(bsonType(entry.ts)).toBe("Timestamp");
      if (previous) expect((entry.ts as Timestamp).greaterThan(previous)).toBe(true);
      previous = entry.ts as Timestamp;
      expect(entry.t).toEqual(Long.fromNumber(1));
      expect(entry.v).toEqual(Long.fromNumber(2));
      expect(entry.wall).toBeInstanceOf(Date);
      expect(Math.abs((entry.wall as Date).getTime() - Date.now())).toBeLessThan(120_000);
      if (entry.ui !== undefined) expect(bsonType(entry.ui)).toBe("Binary(4)");
      expect(["i", "u", "d", "c", "n"]).toContain(entry.op);
    }
  });
});

describe("the periodic no-op writer", () => {
  it("writes {op: n, ns: '', o: {msg: 'periodic noop'}} when idle, shaped like the real one", async () => {
    const fx = await withEmulator({ noopIntervalSeconds: 1 });
    try {
      const deadline = Date.now() + 5000;
      let noop: Document | undefined;
      while (!noop && Date.now() < deadline) {
        [noop] = (await oplogAfter(fx.client, undefined, { op: "n" })).map(decode);
        if (!noop) await new Promise((resolve) => setTimeout(resolve, 200));
      }
      expect(noop).toBeDefined();
      const real = realEntry("periodic noop");
      expect(fieldsOf(noop!)).toEqual(fieldsOf(real));
      expect(noop!.ns).toBe("");
      expect(noop!.o).toEqual(real.o);
    } finally {
      await fx.close();
    }
  });
});

describe("oplog rollover (oplogSizeMb: 1)", () => {
  let fx: EmulatorFixture;
  beforeAll(async () => {
    fx = await withEmulator({ oplogSizeMb: 1 }, { retryWrites: false });
  });
  afterAll(async () => fx?.close());

  const MAX = 1024 * 1024;
  async function writeMegabytes(mb: number, tag: string): Promise<void> {
    const coll = fx.client.db("roll").collection<AnyDoc>("big");
    const filler = "x".repeat(4000);
    const batches = Math.ceil((mb * MAX) / (4000 * 50));
    for (let b = 0; b < batches; b++) {
      await coll.insertMany(Array.from({ length: 50 }, (_, i) => ({ tag, b, i, filler })));
    }
  }

  it("drops the oldest entries, stays within its size and keeps ts increasing", async () => {
    await fx.client.db("roll").collection<AnyDoc>("big").insertOne({ first: true });
    const [first] = (await oplogAfter(fx.client)).map(decode);
    await writeMegabytes(1.5, "a");
    const raws = await oplogAfter(fx.client);
    const entries = raws.map(decode);
    expect(entries[0].ts.greaterThan(first.ts)).toBe(true);
    expect(await fx.client.db("local").collection<AnyDoc>("oplog.rs").countDocuments({ ts: first.ts })).toBe(
      0,
    );
    const total = raws.reduce((sum, raw) => sum + raw.length, 0);
    expect(total).toBeLessThanOrEqual(MAX);
    expect(total).toBeGreaterThan(MAX * 0.9);
    const stats = await fx.client.db("local").command({ collStats: "oplog.rs" });
    expect(stats.capped).toBe(true);
    expect(stats.size).toBeLessThanOrEqual(stats.maxSize);
    for (let i = 1; i < entries.length; i++) expect(entries[i].ts.greaterThan(entries[i - 1].ts)).toBe(true);
  });

  it("a tailable cursor whose position was deleted fails with CappedPositionLost (136)", async () => {
    const cursor = fx.client
      .db("local")
      .collection<AnyDoc>("oplog.rs")
      .find({}, { tailable: true, awaitData: true, batchSize: 2 });
    await cursor.next();
    await cursor.next(); // the first batch is consumed; the cursor sits on its second entry
    await writeMegabytes(1.2, "b");
    await expect(cursor.next()).rejects.toMatchObject({ code: 136, codeName: "CappedPositionLost" });
    await cursor.close().catch(() => {});
  });
});

describe("tailing local.oplog.rs with a tailable awaitData cursor", () => {
  let fx: EmulatorFixture;
  beforeAll(async () => {
    fx = await withEmulator();
  });
  afterAll(async () => fx?.close());

  it("receives an entry within a second of a write made on another client", async () => {
    await fx.client.db("tail").collection<AnyDoc>("c").insertOne({ warm: true });
    const start = await newestTs(fx.client);
    const cursor = fx.client
      .db("local")
      .collection<AnyDoc>("oplog.rs")
      .find(
        { ts: { $gt: start }, op: { $ne: "n" } },
        { tailable: true, awaitData: true, maxAwaitTimeMS: 5000 },
      );
    const received = cursor.next();
    await new Promise((resolve) => setTimeout(resolve, 200));
    const writer = new MongoClient(fx.emulator.uri);
    try {
      await writer.connect();
      await writer.db("tail").collection<AnyDoc>("c").insertOne({ _id: "live", n: 1 });
      const written = Date.now();
      const entry = await received;
      expect(Date.now() - written).toBeLessThan(1000);
      expect(entry).toMatchObject({ op: "i", ns: "tail.c", o: { _id: "live", n: 1 } });
      expect((entry!.ts as Timestamp).greaterThan(start)).toBe(true);
    } finally {
      await writer.close();
      await cursor.close();
    }
  });
});
