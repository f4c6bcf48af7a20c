/**
 * Every entry kind the applier handles, with REAL oplog entries: the 22 entries of
 * test/fixtures/oplog/real-entries.json (MongoDB 4.4/5.0/7.x/8.0 captures), two mongo-tools
 * fixture oplogs (test/fixtures/oplog/mongo-tools) and a whole real MongoDB 5.0.5 shard oplog
 * chunk with prepared transactions (test/fixtures/slice). See test/fixtures/README.md.
 */
import { readFileSync } from "node:fs";
import { deserialize, Double, Int32, Long, serialize, UUID, type Document } from "bson";
import { afterEach, describe, expect, it } from "vitest";
import { encodeIdKey } from "../../src/bson/keyEncoding.js";
import { OplogApplier } from "../../src/oplog/apply/applier.js";
import { OplogEntry } from "../../src/oplog/apply/entry.js";
import type { HeadDatabase } from "../../src/headdb/headDatabase.js";
import { splitBson, tempHead, type TempHead } from "../headdb/helpers.js";
import { realEntry } from "../helpers/oplog.js";

const everything = () => true;
const raw = (doc: Document) => Buffer.from(serialize(doc));
const real = (name: string) => raw(realEntry(name));
const exact = (bytes: Uint8Array) => deserialize(bytes, { promoteValues: false });
const fixture = (path: string) => readFileSync(new URL(`../fixtures/${path}`, import.meta.url));

let temp: TempHead | undefined;
/** A fresh head database with an applier that keeps every namespace. */
function freshHead(): { head: HeadDatabase; applier: OplogApplier } {
  temp = tempHead();
  return { head: temp.head, applier: new OplogApplier(temp.head, { include: everything }) };
}
afterEach(async () => {
  await temp?.dispose();
  temp = undefined;
});

function uuidOf(entry: Document): UUID {
  return new UUID((entry.ui as { buffer: Uint8Array }).buffer);
}

describe("CRUD entries", () => {
  it("insert: the document is stored byte for byte; the default filter leaves config out", () => {
    const { head, applier } = freshHead();
    const bytes = real("insert");
    applier.applyBatch([bytes]);
    const entry = realEntry("insert");
    const stored = head.documents.get(uuidOf(entry), encodeIdKey(entry.o._id))!;
    expect(stored.equals(new OplogEntry(bytes).oBytes!)).toBe(true);
    expect(head.catalog.collectionByName("config", "system.sessions")?.uuid.equals(uuidOf(entry))).toBe(true);

    const filtered = tempHead();
    try {
      const result = new OplogApplier(filtered.head).applyBatch([bytes]);
      expect(result.filtered).toBe(1);
      expect(filtered.head.catalog.databases()).toEqual([]);
      expect(filtered.head.state.appliedOptime()?.ts.equals(entry.ts)).toBe(true);
    } finally {
      void filtered.dispose();
    }
  });

  it("$v:2 updates change the stored document as the diff says; without one, the _id is missing", () => {
    const { head, applier } = freshHead();
    const u = realEntry("update $v:2 (u section)");
    const ui = realEntry("update $v:2 (u and i sections)");
    const uuid = uuidOf(u);
    const pre = (id: unknown) => ({
      _id: id,
      lastUse: new Date(0),
      user: { name: "old" },
      extra: new Int32(1),
    });
    head.write(() => {
      head.createCollection({ uuid, db: "config", name: "system.sessions" });
      head.insertDocuments(uuid, [raw(pre(u.o2._id))]);
    });
    applier.applyBatch([real("update $v:2 (u section)"), real("update $v:2 (u and i sections)")]);
    const updated = exact(head.documents.get(uuid, encodeIdKey(u.o2._id))!);
    expect(Object.keys(updated)).toEqual(["_id", "lastUse", "user", "extra"]);
    expect(updated.lastUse).toEqual(u.o.diff.u.lastUse);
    expect(updated.extra).toEqual(new Int32(1));
    // The second document was not there: its _id (exact type) is now in the missing set.
    const missing = [...head.missing.list(uuid)];
    expect(missing).toHaveLength(1);
    expect(exact(missing[0].idDocument)).toEqual({ _id: ui.o2._id });
    // Fetched from the source, it is inserted and leaves the set.
    head.write(() => head.resolveMissing(uuid, [raw(pre(ui.o2._id))]));
    expect(head.missing.count()).toBe(0);
    expect(exact(head.documents.get(uuid, encodeIdKey(ui.o2._id))!).user).toEqual({ name: "old" });
  });

  it("the `i` section moves an existing field to the end (diff applier rules)", () => {
    const { head, applier } = freshHead();
    const ui = realEntry("update $v:2 (u and i sections)");
    const uuid = uuidOf(ui);
    head.write(() => {
      head.createCollection({ uuid, db: "config", name: "system.sessions" });
      head.insertDocuments(uuid, [
        raw({ _id: ui.o2._id, user: { name: "old" }, lastUse: new Date(0), z: 1 }),
      ]);
    });
    applier.applyBatch([real("update $v:2 (u and i sections)")]);
    const doc = exact(head.documents.get(uuid, encodeIdKey(ui.o2._id))!);
    expect(Object.keys(doc)).toEqual(["_id", "lastUse", "z", "user"]);
    expect(doc.user).toEqual({ name: "bcp@admin" });
  });

  it("replacement: stored whole, whether or not the document was there", () => {
    const { head, applier } = freshHead();
    const entry = realEntry("replacement");
    applier.applyBatch([real("replacement")]);
    const stored = head.documents.get(uuidOf(entry), encodeIdKey("vectorClockState"))!;
    expect(stored.equals(new OplogEntry(real("replacement")).oBytes!)).toBe(true);
  });

  it("delete: removes the document; deleting it again is a no-op", () => {
    const { head, applier } = freshHead();
    const entry = realEntry("delete");
    const uuid = uuidOf(entry);
    head.write(() => {
      head.createCollection({ uuid, db: "config", name: "transaction_coordinators" });
      head.insertDocuments(uuid, [raw({ _id: entry.o._id, state: "done" })]);
    });
    applier.applyBatch([real("delete")]);
    expect(head.documents.count(uuid)).toBe(0);
    const again = realEntry("delete");
    again.ts = new (again.ts.constructor as typeof import("bson").Timestamp)({ t: again.ts.t + 1, i: 1 });
    applier.applyBatch([raw(again)]);
    expect(head.documents.count(uuid)).toBe(0);
  });

  it("periodic noop: only the applied optime moves", () => {
    const { head, applier } = freshHead();
    const result = applier.applyBatch([real("periodic noop")]);
    expect(result.applied).toBe(1);
    expect(head.catalog.databases()).toEqual([]);
    expect(head.state.appliedOptime()).toEqual({
      ts: realEntry("periodic noop").ts,
      t: Long.fromNumber(176),
    });
  });
});

describe("DDL entries", () => {
  it("implicit create, a retryable insert (5.0), then drop", () => {
    const { head, applier } = freshHead();
    const create = realEntry("implicit create");
    applier.applyBatch([real("implicit create"), real("retryable insert (5.0 field order)")]);
    const record = head.catalog.collectionByName("admin", "pbmRRoles")!;
    expect(record.uuid.equals(uuidOf(create))).toBe(true);
    expect(record.options).toEqual({});
    expect(record.indexes).toEqual([create.o.idIndex]);
    expect(head.documents.count(record.uuid)).toBe(1);
    applier.applyBatch([real("drop")]);
    expect(head.catalog.collection(record.uuid)).toBeUndefined();
    expect(head.catalog.databases()).toEqual([]);
    expect(head.documents.count(record.uuid)).toBe(0);
  });

  it("create with a validator keeps the options exactly; retryable inserts chained by prevOpTime apply one by one", () => {
    const { head, applier } = freshHead();
    const create = realEntry("create with validator");
    applier.applyBatch([
      real("create with validator"),
      real("retryable insert, stmtId 0"),
      real("retryable insert, stmtId 1"),
    ]);
    const record = head.catalog.collectionByName("mongodump_test_db", "coll1")!;
    const { create: _name, idIndex, ...options } = create.o;
    expect(serialize(record.options)).toEqual(serialize(options));
    expect(record.indexes).toEqual([idIndex]);
    expect(head.documents.count(record.uuid)).toBe(2);
  });

  it("startIndexBuild holds the build; commitIndexBuild makes its indexes ready", () => {
    const { head, applier } = freshHead();
    const start = realEntry("startIndexBuild");
    applier.applyBatch([real("startIndexBuild")]);
    let record = head.catalog.collection(uuidOf(start))!;
    expect(record.indexes.map((i) => i.name)).toEqual(["_id_"]);
    expect(record.indexBuilds).toHaveLength(1);
    expect(record.indexBuilds[0].indexes).toEqual(start.o.indexes);
    applier.applyBatch([real("commitIndexBuild")]);
    record = head.catalog.collection(uuidOf(start))!;
    expect(record.indexBuilds).toEqual([]);
    expect(record.indexes).toEqual([
      { v: new Int32(2), key: { _id: new Int32(1) }, name: "_id_" },
      ...realEntry("commitIndexBuild").o.indexes,
    ]);
  });

  it("createIndexes, dropIndexes, a TTL index and its collMod, then dropDatabase", () => {
    const { head, applier } = freshHead();
    const create = realEntry("createIndexes");
    const uuid = uuidOf(create);
    applier.applyBatch([real("startIndexBuild"), real("commitIndexBuild"), real("createIndexes")]);
    // Two incarnations of test2.foo: the one created last holds the name.
    expect(head.catalog.collectionByName("test2", "foo")!.uuid.equals(uuid)).toBe(true);
    expect(head.catalog.detached().map((r) => r.uuid.toHexString())).toEqual([
      uuidOf(realEntry("startIndexBuild")).toHexString(),
    ]);
    expect(head.catalog.collection(uuid)!.indexes.map((i) => i.name)).toEqual(["_id_", "f_1"]);
    applier.applyBatch([real("dropIndexes")]);
    expect(head.catalog.collection(uuid)!.indexes.map((i) => i.name)).toEqual(["_id_"]);
    applier.applyBatch([
      real("createIndexes with expireAfterSeconds"),
      real("collMod index expireAfterSeconds"),
    ]);
    expect(head.catalog.collection(uuid)!.indexes[1]).toEqual({
      v: new Int32(2),
      key: { f: new Double(1) },
      name: "f_1",
      expireAfterSeconds: Long.fromNumber(3600),
    });
    applier.applyBatch([real("dropDatabase")]);
    expect(head.catalog.databases()).toEqual([]);
    expect(head.catalog.collections()).toEqual([]);
  });

  it("mongo-tools collMod_indexUniqueness.bson: prepareUnique, unique, forceNonUnique, hidden", () => {
    const { head, applier } = freshHead();
    applier.applyBatch(splitBson(fixture("oplog/mongo-tools/collMod_indexUniqueness.bson")));
    const record = head.catalog.collectionByName("mongodump_test_db", "coll1")!;
    const specs = record.indexes.map((spec) => deserialize(serialize(spec)));
    expect(specs).toEqual([
      { v: 2, key: { _id: 1 }, name: "_id_" },
      { v: 2, key: { a: 1 }, name: "a_1" },
      { v: 2, hidden: true, key: { b: 1 }, name: "b_1" },
      { v: 2, key: { c: 1 }, name: "c_1", expireAfterSeconds: 100000 },
      { v: 2, hidden: true, key: { d: 1 }, name: "d_1", expireAfterSeconds: 100000 },
    ]);
  });

  it("the real collMod prepareUnique entry appends prepareUnique: true", () => {
    const { head, applier } = freshHead();
    const entries = splitBson(fixture("oplog/mongo-tools/collMod_indexUniqueness.bson"));
    // Entry 5 of that file is the real-entries.json "collMod index prepareUnique" entry.
    expect(entries[5].equals(real("collMod index prepareUnique"))).toBe(true);
    applier.applyBatch(entries.slice(0, 6));
    const spec = head.catalog.collectionByName("mongodump_test_db", "coll1")!.indexes[1];
    expect(Object.keys(spec)).toEqual(["v", "key", "name", "prepareUnique"]);
    expect(spec.prepareUnique).toBe(true);
  });
});

describe("applyOps and transactions", () => {
  it("an unprepared transaction (one applyOps with lsid) applies all its operations", () => {
    const { head, applier } = freshHead();
    const entry = realEntry("unprepared transaction (applyOps)");
    const result = applier.applyBatch([real("unprepared transaction (applyOps)")]);
    expect(result.transactionsApplied).toBe(1);
    const inner = entry.o.applyOps as Document[];
    const record = head.catalog.collectionByName("trx", "test")!;
    expect(head.documents.count(record.uuid)).toBe(inner.filter((op) => op.op === "i").length);
  });

  it("vectored inserts (multiOpType: 1), one entry and two linked by prevOpTime", () => {
    const { head, applier } = freshHead();
    const ids = (uuid: UUID) =>
      [...head.documents.scan(uuid)].map(({ raw: doc }) => deserialize(doc)._id as number);
    const single = realEntry("vectored insert (applyOps with insert o2)");
    applier.applyBatch([real("vectored insert (applyOps with insert o2)")]);
    expect(ids(uuidOf((single.o.applyOps as Document[])[0]))).toEqual([100, 200]);
    const linked = splitBson(fixture("oplog/mongo-tools/linked_vectored_inserts.bson"));
    applier.applyBatch(linked);
    // The two captures are two incarnations of mongodump_test_db.coll1 (different UUIDs).
    const linkedUuid = uuidOf((deserialize(linked[0]).o.applyOps as Document[])[0]);
    expect(ids(linkedUuid)).toEqual([300, 400, 500, 600, 700]);
    expect(head.catalog.collectionByName("mongodump_test_db", "coll1")!.uuid.equals(linkedUuid)).toBe(true);
  });

  it("a real MongoDB 5.0.5 shard oplog chunk: prepared transactions committed, deletes, $v:2 updates", () => {
    const { head, applier } = freshHead();
    const entries = splitBson(
      fixture("slice/pbm_disttxn_50__pbmPitr__rs1__20220207__20220207140605-18.20220207141653-1.oplog.bson"),
    );
    const result = applier.applyBatch(entries);
    expect(result.applied).toBe(entries.length);
    expect(result.held).toBe(3);
    expect(result.transactionsApplied).toBe(5);
    expect(head.pending.count()).toBe(0);
    // An independent model of trx.test: inserts and deletes, top-level or in applyOps.
    const expected = new Set<string>();
    const visit = (op: Document) => {
      if (op.ns !== "trx.test") return;
      if (op.op === "i") expected.add(JSON.stringify(op.o._id));
      if (op.op === "d") expected.delete(JSON.stringify(op.o._id));
    };
    for (const bytes of entries) {
      const op = deserialize(bytes);
      if (op.op === "c" && Array.isArray(op.o.applyOps)) (op.o.applyOps as Document[]).forEach(visit);
      else visit(op);
    }
    const record = head.catalog.collectionByName("trx", "test")!;
    const actual = [...head.documents.scan(record.uuid)].map(({ raw: doc }) =>
      JSON.stringify(deserialize(doc)._id),
    );
    expect(new Set(actual)).toEqual(expected);
    expect(actual.length).toBeGreaterThan(0);
  });
});
