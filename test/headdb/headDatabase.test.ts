/**
 * The head database on its own: the write-transaction discipline, the catalog (names by UUID,
 * detached records), documents, the missing set, the resume state across a reopen, importing the
 * agent's catalog documents, and dbHash against the emulator's `dbHash` command for the same
 * documents.
 */
import { deserialize, Int32, Long, serialize, Timestamp, UUID, type Document } from "bson";
import type { MongoClient } from "mongodb";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { encodeIdKey } from "../../src/bson/keyEncoding.js";
import { HeadDbError } from "../../src/headdb/errors.js";
import { withEmulator, type EmulatorFixture } from "../helpers/emulator.js";
import { tempHead, type TempHead } from "./helpers.js";

const raw = (doc: Document) => Buffer.from(serialize(doc));
const uuid1 = new UUID("11111111-1111-4111-8111-111111111111");
const uuid2 = new UUID("22222222-2222-4222-8222-222222222222");

let temp: TempHead;
afterEach(async () => {
  await temp?.dispose();
});

describe("write transactions", () => {
  it("refuse changes outside write()", () => {
    temp = tempHead();
    const { head } = temp;
    expect(() => head.documents.put(uuid1, raw({ _id: 1 }))).toThrow(HeadDbError);
    expect(() => head.state.setSliceCursor("s", 1)).toThrow(/NOT_IN_WRITE_TRANSACTION/);
    expect(() => head.createCollection({ uuid: uuid1, db: "a", name: "b" })).toThrow(
      /inside HeadDatabase.write/,
    );
  });

  it("keep nothing of a write that throws", () => {
    temp = tempHead();
    const { head } = temp;
    expect(() =>
      head.write(() => {
        head.createCollection({ uuid: uuid1, db: "a", name: "b" });
        head.insertDocuments(uuid1, [raw({ _id: 1 })]);
        head.state.setSliceCursor("documents/a.b", 3);
        throw new Error("crash");
      }),
    ).toThrow("crash");
    expect(head.catalog.collections()).toEqual([]);
    expect(head.documents.count(uuid1)).toBe(0);
    expect(head.state.sliceCursor("documents/a.b")).toBeUndefined();
  });

  it("forget catalog records read or written by a write that throws (the record cache)", () => {
    temp = tempHead();
    const { head } = temp;
    head.write(() => head.createCollection({ uuid: uuid1, db: "a", name: "b" }));
    expect(head.catalog.collection(uuid1)?.name).toBe("b");
    expect(head.catalog.collection(uuid2)).toBeUndefined();
    expect(() =>
      head.write(() => {
        head.renameCollection(uuid1, "a", "c");
        head.createCollection({ uuid: uuid2, db: "a", name: "d" });
        // Read back inside the transaction: these are what a cache would keep.
        expect(head.catalog.collection(uuid1)?.name).toBe("c");
        expect(head.catalog.collection(uuid2)?.name).toBe("d");
        throw new Error("crash");
      }),
    ).toThrow("crash");
    expect(head.catalog.collection(uuid1)?.name).toBe("b");
    expect(head.catalog.collection(uuid2)).toBeUndefined();
    // And a committed change is seen at once.
    head.write(() => head.renameCollection(uuid1, "a", "e"));
    expect(head.catalog.collection(uuid1)?.name).toBe("e");
  });
});

describe("catalog", () => {
  it("finds collections by UUID and by name; a rename moves the name", () => {
    temp = tempHead();
    const { head } = temp;
    head.write(() => {
      head.createCollection({
        uuid: uuid1,
        db: "shop",
        name: "orders",
        options: { capped: true, size: 100 },
      });
      head.renameCollection(uuid1, "shop", "archive");
    });
    expect(head.catalog.lookup("shop", "orders")).toBeUndefined();
    expect(head.catalog.collectionByName("shop", "archive")).toMatchObject({ db: "shop", name: "archive" });
    expect(head.catalog.collection(uuid1)!.options).toEqual({ capped: true, size: new Int32(100) });
  });

  it("a collection that takes a name held by another leaves that one detached until it gets a name again", () => {
    temp = tempHead();
    const { head } = temp;
    head.write(() => {
      head.createCollection({ uuid: uuid1, db: "shop", name: "orders" });
      head.insertDocuments(uuid1, [raw({ _id: 1 })]);
      head.createCollection({ uuid: uuid2, db: "shop", name: "orders" });
    });
    expect(head.catalog.collectionByName("shop", "orders")!.uuid.equals(uuid2)).toBe(true);
    expect(head.catalog.detached().map((r) => r.uuid.toHexString())).toEqual([uuid1.toHexString()]);
    expect(head.documents.count(uuid1)).toBe(1);
    head.write(() => {
      head.dropCollection(uuid2);
      head.renameCollection(uuid1, "shop", "orders");
    });
    expect(head.catalog.detached()).toEqual([]);
    expect(head.catalog.collectionByName("shop", "orders")!.uuid.equals(uuid1)).toBe(true);
  });

  it("lists databases and namespaces in byte order", () => {
    temp = tempHead();
    const { head } = temp;
    head.write(() => {
      head.createCollection({ uuid: uuid1, db: "b", name: "z" });
      head.createCollection({ uuid: uuid2, db: "b", name: "Z" });
      head.createCollection({ uuid: new UUID(), db: "a", name: "x" });
      head.catalog.putView({ db: "b", name: "m", options: { viewOn: "z", pipeline: [] } });
    });
    expect(head.catalog.databases()).toEqual(["a", "b"]);
    expect(head.catalog.namespaces("b").map((n) => `${n.name}:${n.type}`)).toEqual([
      "Z:collection",
      "m:view",
      "z:collection",
    ]);
    expect(Object.keys(head.dbHash("b").collections)).toEqual(["Z", "z"]);
  });

  it("imports the agent's catalog documents (listCollections + listIndexes)", () => {
    temp = tempHead();
    const { head } = temp;
    const indexes = [
      { v: new Int32(2), key: { _id: new Int32(1) }, name: "_id_" },
      { v: new Int32(2), key: { n: new Int32(-1) }, name: "n_-1", expireAfterSeconds: Long.fromNumber(60) },
    ];
    head.write(() => {
      head.importCatalogEntry("shop", {
        name: "orders",
        type: "collection",
        options: { validator: { n: 1 } },
        uuid: uuid1,
        idIndex: indexes[0],
        indexes,
      });
      head.importCatalogEntry("shop", {
        name: "big",
        type: "view",
        options: { viewOn: "orders", pipeline: [] },
      });
    });
    const record = head.catalog.collectionByName("shop", "orders")!;
    expect(record.indexes).toEqual(indexes);
    expect(record.options).toEqual({ validator: { n: new Int32(1) } });
    expect(head.catalog.lookup("shop", "big")?.type).toBe("view");
  });
});

describe("documents and the missing set", () => {
  it("1, 1.0 and NumberLong(1) are one document; a scan is in _id order", () => {
    temp = tempHead();
    const { head } = temp;
    head.write(() => {
      head.createCollection({ uuid: uuid1, db: "a", name: "b" });
      head.insertDocuments(uuid1, [raw({ _id: "s" }), raw({ _id: 2 }), raw({ _id: new Int32(1), v: "int" })]);
      head.insertDocuments(uuid1, [raw({ _id: Long.fromNumber(1), v: "long" }), raw({ _id: 1.5 })]);
    });
    expect([...head.documents.scan(uuid1)].map(({ raw: doc }) => deserialize(doc))).toEqual([
      { _id: 1, v: "long" },
      { _id: 1.5 },
      { _id: 2 },
      { _id: "s" },
    ]);
  });

  it("resolveMissing inserts fetched documents still missing and forgets ids not found", () => {
    temp = tempHead();
    const { head } = temp;
    head.write(() => {
      head.createCollection({ uuid: uuid1, db: "a", name: "b" });
      for (const id of [1, 2, 3]) head.missing.add(uuid1, encodeIdKey(id), raw({ _id: id }));
    });
    const result = head.write(() =>
      head.resolveMissing(
        uuid1,
        [raw({ _id: 1, v: "fetched" }), raw({ _id: 9, v: "not missing" })],
        [raw({ _id: 2 })],
      ),
    );
    expect(result).toEqual({ inserted: 1, forgotten: 1 });
    expect([...head.missing.list()].map((m) => deserialize(m.idDocument))).toEqual([{ _id: 3 }]);
    expect([...head.documents.scan(uuid1)].map(({ raw: doc }) => deserialize(doc))).toEqual([
      { _id: 1, v: "fetched" },
    ]);
  });
});

describe("resume state", () => {
  it("survives closing and reopening the environment", async () => {
    temp = tempHead();
    const optime = { ts: new Timestamp({ t: 1700000000, i: 7 }), t: Long.fromNumber(3) };
    temp.head.write(() => {
      temp.head.state.setAppliedOptime(optime);
      temp.head.state.setPhaseState(raw({ phase: "fetching_missing_documents" }));
      temp.head.state.setSliceCursor("oplog", 41);
      temp.head.state.setSliceCursor("documents/shop.orders", 2);
    });
    const head = await temp.reopen();
    expect(head.state.appliedOptime()).toEqual(optime);
    expect(deserialize(head.state.phaseState()!)).toEqual({ phase: "fetching_missing_documents" });
    expect(head.state.sliceCursor("oplog")).toBe(41);
    expect([...head.state.sliceCursors()]).toEqual([
      ["documents/shop.orders", 2],
      ["oplog", 41],
    ]);
  });
});

describe("dbHash equals the emulator's dbHash command for the same documents", () => {
  let fixture: EmulatorFixture;
  let client: MongoClient;
  beforeAll(async () => {
    fixture = await withEmulator();
    client = fixture.client;
  });
  afterAll(async () => {
    await fixture.close();
  });

  it("with _ids of many types, inserted in another order", async () => {
    const db = client.db("hashed");
    const docs: Document[] = [
      { _id: 3, a: 1 },
      { _id: "x", nested: { deep: [1, 2, { z: null }] } },
      { _id: { k: 1 }, when: new Date(5) },
      { _id: 1.5, big: Long.fromString("9007199254740993") },
      { _id: new Timestamp({ t: 1, i: 2 }) },
      { _id: true },
      { _id: null, n: new Int32(4) },
    ];
    await db.collection("one").insertMany(docs as Array<{ _id: never }>);
    await db.collection("two").insertOne({ _id: 1 } as { _id: never });
    await db.createCollection("empty");
    temp = tempHead();
    const { head } = temp;
    for (const name of ["one", "two", "empty"]) {
      const [info] = await db.listCollections({ name }).toArray();
      const uuid = (info as Document).info.uuid as UUID;
      const cloned = (await db.collection(name).find({}, { raw: true }).toArray()) as unknown as Buffer[];
      head.write(() => {
        head.createCollection({ uuid, db: "hashed", name });
        head.insertDocuments(uuid, [...cloned].reverse());
      });
    }
    const expected = await db.command({ dbHash: 1 });
    const actual = head.dbHash("hashed");
    expect(actual.collections).toEqual(expected.collections);
    expect(actual.md5).toBe(expected.md5);
    expect(head.dbHash("hashed", ["two"]).md5).toBe(
      (await db.command({ dbHash: 1, collections: ["two"] })).md5,
    );
  });
});
