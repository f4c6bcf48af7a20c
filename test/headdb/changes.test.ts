/**
 * Change tracking in the head database (`src/headdb/changes.ts`): change numbers per committed
 * write transaction, per-document entries (`since`), collection-level changes of emptyings and
 * drops, first through the head database's own API, then driven by real oplog application
 * (inserts, $v:2 updates, replacements, deletes, drop, dropDatabase, renameCollection,
 * transactions, re-applied batches), across a reopen, and at 20k documents.
 */
import { deserialize, Int32, Long, ObjectId, serialize, Timestamp, UUID, type Document } from "bson";
import { afterEach, describe, expect, it } from "vitest";
import { encodeIdKey } from "../../src/bson/keyEncoding.js";
import type { HeadDatabase } from "../../src/headdb/headDatabase.js";
import { OplogApplier } from "../../src/oplog/apply/applier.js";
import { entry, uuidA, uuidB, uuidC, type EntryWithoutTs } from "../oplog/entries.js";
import { tempHead, type TempHead } from "./helpers.js";

const raw = (doc: Document) => Buffer.from(serialize(doc));
const uuid1 = new UUID("11111111-1111-4111-8111-111111111111");
const uuid2 = new UUID("22222222-2222-4222-8222-222222222222");
/** Sorts right after uuid1 and its last byte is 0xff: a prefix range that ends badly would leak. */
const uuid1ff = new UUID("11111111-1111-4111-8111-1111111111ff");
const uuidLast = new UUID("ffffffff-ffff-ffff-ffff-ffffffffffff");

/** The hex `_id` key of `id`, as `since` and `scan` give it. */
const key = (id: unknown) => encodeIdKey(id).toString("hex");

let temp: TempHead;
let head: HeadDatabase;
afterEach(async () => {
  await temp?.dispose();
});

function open(): HeadDatabase {
  temp = tempHead("tidemark-changes-");
  head = temp.head;
  // As the first snapshot does: from here on, changes are recorded.
  head.write(() => head.changes.startTracking());
  return head;
}

/** `since(uuid, after)` as [hex `_id` key, change number] pairs. */
function since(uuid: UUID, after: number): Array<[string, number]> {
  return [...head.changes.since(uuid, after)].map((c) => [c.idKey.toString("hex"), c.changeNumber]);
}

/** The `_id` keys `since(uuid, after)` lists, hex. */
function sinceKeys(uuid: UUID, after: number): string[] {
  return since(uuid, after).map(([k]) => k);
}

function create(uuid: UUID, db: string, name: string): void {
  head.write(() => head.createCollection({ uuid, db, name }));
}

function insert(uuid: UUID, ...ids: unknown[]): void {
  head.write(() =>
    head.insertDocuments(
      uuid,
      ids.map((_id) => raw({ _id, v: 1 })),
    ),
  );
}

describe("change numbers", () => {
  it("start at 0 with nothing recorded", () => {
    open();
    expect(head.changes.current()).toBe(0);
    expect(since(uuid1, 0)).toEqual([]);
    expect(head.changes.collectionChange(uuid1)).toBeUndefined();
    expect(head.changes.collectionsChangedSince(0)).toEqual([]);
  });

  it("one per committed write transaction that changes documents, increasing, shared by all its changes", () => {
    open();
    create(uuid1, "shop", "orders");
    create(uuid2, "shop", "items");
    expect(head.changes.current()).toBe(0);
    head.write(() => {
      head.insertDocuments(uuid1, [raw({ _id: 1 }), raw({ _id: 2 })]);
      head.insertDocuments(uuid2, [raw({ _id: "a" })]);
      // Nested writes join the outer transaction, and its number.
      head.write(() => head.insertDocuments(uuid1, [raw({ _id: 3 })]));
      expect(head.changes.current()).toBe(1);
    });
    expect(head.changes.current()).toBe(1);
    expect(since(uuid1, 0)).toEqual([
      [key(1), 1],
      [key(2), 1],
      [key(3), 1],
    ]);
    expect(since(uuid2, 0)).toEqual([[key("a"), 1]]);

    insert(uuid1, 4);
    head.write(() => head.documents.delete(uuid1, encodeIdKey(1)));
    expect(head.changes.current()).toBe(3);
    expect(since(uuid1, 0)).toEqual([
      [key(1), 3],
      [key(2), 1],
      [key(3), 1],
      [key(4), 2],
    ]);
  });

  it("a rolled-back transaction leaves no change and takes no number", () => {
    open();
    create(uuid1, "shop", "orders");
    insert(uuid1, 1, 2);
    expect(head.changes.current()).toBe(1);
    expect(() =>
      head.write(() => {
        head.insertDocuments(uuid1, [raw({ _id: 3 })]);
        head.documents.delete(uuid1, encodeIdKey(1));
        head.emptyCollection(uuid2);
        expect(head.changes.current()).toBe(2);
        throw new Error("crash");
      }),
    ).toThrow("crash");
    expect(head.changes.current()).toBe(1);
    expect(since(uuid1, 0)).toEqual([
      [key(1), 1],
      [key(2), 1],
    ]);
    expect(head.changes.collectionChange(uuid2)).toBeUndefined();
    // The next committed transaction takes the number the rolled-back one had: no gap, no reuse
    // of what the rolled-back one recorded.
    insert(uuid1, 5);
    expect(head.changes.current()).toBe(2);
    expect(since(uuid1, 1)).toEqual([[key(5), 2]]);
    // A write that throws after nested writes rolls them back too.
    expect(() =>
      head.write(() => {
        head.write(() => head.insertDocuments(uuid1, [raw({ _id: 6 })]));
        throw new Error("crash");
      }),
    ).toThrow("crash");
    expect(head.changes.current()).toBe(2);
    expect(sinceKeys(uuid1, 2)).toEqual([]);
  });

  it("a transaction without document changes takes no number", () => {
    open();
    head.write(() => {
      head.createCollection({ uuid: uuid1, db: "shop", name: "orders" });
      head.state.setSliceCursor("oplog", 4);
      head.state.setAppliedOptime({ ts: new Timestamp({ t: 5, i: 1 }), t: Long.fromNumber(1) });
    });
    head.write(() => head.renameCollection(uuid1, "shop", "archive"));
    head.write(() =>
      head.catalog.putView({ db: "shop", name: "v", options: { viewOn: "archive", pipeline: [] } }),
    );
    // Deleting a document that is not there changes nothing.
    head.write(() => expect(head.documents.delete(uuid1, encodeIdKey(1))).toBe(false));
    // Dropping an unknown collection neither.
    head.write(() => expect(head.dropCollection(uuid2)).toBe(false));
    head.write(() => undefined);
    expect(head.changes.current()).toBe(0);
    expect(since(uuid1, 0)).toEqual([]);
    expect(head.changes.collectionsChangedSince(0)).toEqual([]);
  });

  it("are read back inside the transaction that takes one", () => {
    open();
    create(uuid1, "shop", "orders");
    head.write(() => {
      expect(head.changes.current()).toBe(0);
      head.insertDocuments(uuid1, [raw({ _id: 1 })]);
      expect(head.changes.current()).toBe(1);
      expect(since(uuid1, 0)).toEqual([[key(1), 1]]);
      head.insertDocuments(uuid1, [raw({ _id: 2 })]);
      expect(head.changes.current()).toBe(1);
    });
  });
});

describe("since", () => {
  it("lists exactly the documents changed after a number, in _id key order, deletions absent from documents", () => {
    open();
    create(uuid1, "shop", "orders");
    // Mixed _id types, inserted out of order: the key order is MongoDB's _id order.
    const oid = new ObjectId("650000000000000000000001");
    const ids: unknown[] = ["b", 10, oid, -2.5, "a", { x: 1 }, true, new Date(5), Long.fromNumber(3)];
    insert(uuid1, ...ids);
    const all = [...head.documents.scan(uuid1)].map((d) => d.idKey.toString("hex"));
    expect(all).toHaveLength(ids.length);
    expect(sinceKeys(uuid1, 0)).toEqual(all);
    expect([...all].sort()).toEqual(all); // byte order of the keys

    head.write(() => {
      head.documents.put(uuid1, raw({ _id: "a", v: 2 }));
      head.documents.delete(uuid1, encodeIdKey(oid));
      head.documents.delete(uuid1, encodeIdKey(10));
    });
    insert(uuid1, 10); // deleted, then back
    head.write(() => head.documents.delete(uuid1, encodeIdKey(-2.5)));
    expect(head.changes.current()).toBe(4);

    expect(since(uuid1, 1)).toEqual([
      [key(-2.5), 4],
      [key(10), 3],
      [key("a"), 2],
      [key(oid), 2],
    ]);
    expect(since(uuid1, 2)).toEqual([
      [key(-2.5), 4],
      [key(10), 3],
    ]);
    expect(since(uuid1, 3)).toEqual([[key(-2.5), 4]]);
    expect(since(uuid1, 4)).toEqual([]);
    // What a delta run needs: present ones with their document, absent ones are deletions.
    const delta = [...head.changes.since(uuid1, 1)].map(({ idKey }) => {
      const doc = head.documents.get(uuid1, idKey);
      return doc === undefined ? null : deserialize(doc);
    });
    expect(delta).toEqual([null, { _id: 10, v: 1 }, { _id: "a", v: 2 }, null]);
  });

  it("re-putting the same document moves its number; _ids MongoDB treats as equal share an entry", () => {
    open();
    create(uuid1, "shop", "orders");
    insert(uuid1, 1, 2);
    head.write(() => head.documents.put(uuid1, raw({ _id: 1, v: 1 }))); // same bytes
    head.write(() => head.documents.put(uuid1, raw({ _id: 1.0, v: 2 }))); // 1.0 is _id 1
    head.write(() => head.documents.put(uuid1, raw({ _id: Long.fromNumber(1), v: 3 })));
    expect(since(uuid1, 0)).toEqual([
      [key(1), 4],
      [key(2), 1],
    ]);
    expect(since(uuid1, 3)).toEqual([[key(1), 4]]);
  });

  it("keeps collections apart, also next to a UUID ending in 0xff and at the last UUID", () => {
    open();
    for (const [uuid, name] of [
      [uuid1, "a"],
      [uuid1ff, "b"],
      [uuid2, "c"],
      [uuidLast, "d"],
    ] as const)
      create(uuid, "shop", name);
    insert(uuid1, 1);
    insert(uuid1ff, 2);
    insert(uuid2, 3);
    insert(uuidLast, 4);
    expect(since(uuid1, 0)).toEqual([[key(1), 1]]);
    expect(since(uuid1ff, 0)).toEqual([[key(2), 2]]);
    expect(since(uuid2, 0)).toEqual([[key(3), 3]]);
    expect(since(uuidLast, 0)).toEqual([[key(4), 4]]);
  });

  it("records the cloner's inserts, fetched missing documents and system.views changes", () => {
    open();
    head.write(() => {
      head.createCollection({ uuid: uuid1, db: "shop", name: "orders" });
      head.createCollection({ uuid: uuid2, db: "shop", name: "system.views" });
      head.missing.add(uuid1, encodeIdKey(7), raw({ _id: 7 }));
    });
    head.write(() => head.resolveMissing(uuid1, [raw({ _id: 7, fetched: true })]));
    expect(since(uuid1, 0)).toEqual([[key(7), 1]]);
    head.write(() => head.putView("shop", "big", { viewOn: "orders", pipeline: [] }));
    expect(since(uuid2, 1)).toEqual([[key("shop.big"), 2]]);
  });
});

describe("collection-level changes", () => {
  it("an emptying records one number and forgets the per-document entries; later changes are recorded again", () => {
    open();
    create(uuid1, "shop", "orders");
    create(uuid2, "shop", "items");
    insert(uuid1, 1, 2, 3);
    insert(uuid2, "x");
    head.write(() => expect(head.emptyCollection(uuid1)).toBe(3));
    expect(head.changes.current()).toBe(3);
    expect(head.changes.collectionChange(uuid1)).toBe(3);
    expect(since(uuid1, 0)).toEqual([]);
    expect(head.documents.count(uuid1)).toBe(0);
    // The other collection keeps its entries and has no collection-level change.
    expect(since(uuid2, 0)).toEqual([[key("x"), 2]]);
    expect(head.changes.collectionChange(uuid2)).toBeUndefined();

    insert(uuid1, 2, 9);
    expect(since(uuid1, 0)).toEqual([
      [key(2), 4],
      [key(9), 4],
    ]);
    expect(head.changes.collectionChange(uuid1)).toBe(3);
    // Emptying an empty collection is a change of its own.
    head.write(() => {
      head.emptyCollection(uuid1);
      head.emptyCollection(uuid1);
    });
    head.write(() => head.emptyCollection(uuid1));
    expect(head.changes.collectionChange(uuid1)).toBe(6);
    expect(head.changes.current()).toBe(6);
  });

  it("emptied and refilled in one transaction: the documents carry the emptying's number", () => {
    open();
    create(uuid1, "shop", "orders");
    insert(uuid1, 1, 2, 3);
    head.write(() => {
      // An oplog create of a known UUID empties it (the collection was re-created).
      head.createCollection({ uuid: uuid1, db: "shop", name: "orders" });
      head.insertDocuments(uuid1, [raw({ _id: 3 }), raw({ _id: 4 })]);
    });
    expect(head.changes.collectionChange(uuid1)).toBe(2);
    expect(since(uuid1, 1)).toEqual([
      [key(3), 2],
      [key(4), 2],
    ]);
  });

  it("a drop and dropDatabase record each collection, leave other databases alone", () => {
    open();
    head.write(() => {
      head.createCollection({ uuid: uuid1, db: "shop", name: "orders" });
      head.createCollection({ uuid: uuid2, db: "shop", name: "items" });
      head.createCollection({ uuid: uuid1ff, db: "other", name: "kept" });
      head.insertDocuments(uuid1, [raw({ _id: 1 })]);
      head.insertDocuments(uuid2, [raw({ _id: 2 })]);
      head.insertDocuments(uuid1ff, [raw({ _id: 3 })]);
    });
    head.write(() => head.dropCollection(uuid2));
    expect(head.catalog.collection(uuid2)).toBeUndefined();
    expect(head.changes.collectionChange(uuid2)).toBe(2);
    expect(since(uuid2, 0)).toEqual([]);
    expect(head.changes.collectionsChangedSince(0)).toEqual([{ uuid: uuid2, changeNumber: 2 }]);

    head.write(() => head.dropDatabase("shop"));
    expect(head.changes.collectionChange(uuid1)).toBe(3);
    expect(since(uuid1, 0)).toEqual([]);
    expect(head.changes.collectionChange(uuid2)).toBe(2); // dropped before, unknown now
    expect(head.changes.collectionChange(uuid1ff)).toBeUndefined();
    expect(since(uuid1ff, 0)).toEqual([[key(3), 1]]);
    // In UUID order, only those after the number.
    expect(head.changes.collectionsChangedSince(0)).toEqual([
      { uuid: uuid1, changeNumber: 3 },
      { uuid: uuid2, changeNumber: 2 },
    ]);
    expect(head.changes.collectionsChangedSince(2)).toEqual([{ uuid: uuid1, changeNumber: 3 }]);
    expect(head.changes.collectionsChangedSince(3)).toEqual([]);
  });

  it("a rename keeps the UUID, so the collection keeps its changes", () => {
    open();
    create(uuid1, "shop", "orders");
    insert(uuid1, 1);
    head.write(() => head.renameCollection(uuid1, "archive", "old"));
    insert(uuid1, 2);
    expect(since(uuid1, 0)).toEqual([
      [key(1), 1],
      [key(2), 2],
    ]);
    expect(head.changes.collectionChange(uuid1)).toBeUndefined();
  });
});

describe("driven by the oplog applier", () => {
  let clock = 100;
  const e = (fields: EntryWithoutTs) => entry({ ts: clock++, ...fields });
  const ns = "shop.orders";
  const createOrders = (ui: UUID = uuidA, name = "orders") =>
    e({
      op: "c",
      ns: "shop.$cmd",
      ui,
      o: { create: name, idIndex: { v: 2, key: { _id: 1 }, name: "_id_" } },
    });
  const lsid = { id: uuidC };
  const NULL_OPTIME = { ts: new Timestamp({ t: 0, i: 0 }), t: Long.fromNumber(-1) };

  it("inserts, updates, replacements and deletes: one number per batch, only documents that changed", () => {
    open();
    const applier = new OplogApplier(head);
    applier.applyBatch([
      createOrders(),
      e({ op: "i", ns, ui: uuidA, o: { _id: 1, total: 10 } }),
      e({ op: "i", ns, ui: uuidA, o: { _id: 2, total: 20 } }),
      e({ op: "i", ns, ui: uuidA, o: { _id: 3, total: 30 } }),
    ]);
    expect(head.changes.current()).toBe(1);
    expect(sinceKeys(uuidA, 0)).toEqual([key(1), key(2), key(3)]);

    const batch = [
      e({ op: "u", ns, ui: uuidA, o: { $v: new Int32(2), diff: { u: { total: 11 } } }, o2: { _id: 1 } }),
      e({ op: "u", ns, ui: uuidA, o: { _id: 3, replaced: true }, o2: { _id: 3 } }),
      e({ op: "d", ns, ui: uuidA, o: { _id: 2 } }),
      e({ op: "i", ns, ui: uuidA, o: { _id: 4 } }),
    ];
    applier.applyBatch(batch);
    expect(head.changes.current()).toBe(2);
    expect(since(uuidA, 1)).toEqual([
      [key(1), 2],
      [key(2), 2],
      [key(3), 2],
      [key(4), 2],
    ]);
    expect(head.documents.get(uuidA, encodeIdKey(2))).toBeUndefined();
    expect(deserialize(head.documents.get(uuidA, encodeIdKey(1))!)).toEqual({ _id: 1, total: 11 });

    // The same batch again: every entry is skipped, nothing changes, no number.
    const again = applier.applyBatch(batch);
    expect(again.skipped).toBe(4);
    expect(head.changes.current()).toBe(2);
    // An update of a document the head database does not have goes to the missing set: the
    // batch changes no document and takes no number, though the applied optime moves.
    const optime = head.state.appliedOptime()!;
    applier.applyBatch([
      e({ op: "u", ns, ui: uuidA, o: { $v: new Int32(2), diff: { u: { total: 1 } } }, o2: { _id: 99 } }),
    ]);
    expect(head.state.appliedOptime()!.ts.greaterThan(optime.ts)).toBe(true);
    expect(head.missing.count()).toBe(1);
    expect(head.changes.current()).toBe(2);
    expect(since(uuidA, 2)).toEqual([]);
  });

  it("a batch that fails part-way leaves no change and no number", () => {
    open();
    const applier = new OplogApplier(head);
    applier.applyBatch([createOrders(), e({ op: "i", ns, ui: uuidA, o: { _id: 1 } })]);
    expect(() =>
      applier.applyBatch([
        e({ op: "i", ns, ui: uuidA, o: { _id: 2 } }),
        e({ op: "i", ns, ui: uuidA, o: { _id: "x".repeat(3000) } }), // too large for a key
      ]),
    ).toThrow(/KEY_TOO_LARGE/);
    expect(head.changes.current()).toBe(1);
    expect(since(uuidA, 0)).toEqual([[key(1), 1]]);
  });

  it("a transaction's operations share its batch's number; held partial entries take none", () => {
    open();
    const applier = new OplogApplier(head);
    applier.applyBatch([createOrders(), e({ op: "i", ns, ui: uuidA, o: { _id: 1 } })]);
    // A small transaction: one applyOps entry.
    applier.applyBatch([
      e({
        op: "c",
        ns: "admin.$cmd",
        o: {
          applyOps: [
            { op: "i", ns, ui: uuidA, o: { _id: 2 } },
            { op: "d", ns, ui: uuidA, o: { _id: 1 } },
          ],
        },
        lsid,
        txnNumber: Long.fromNumber(1),
        prevOpTime: NULL_OPTIME,
      }),
    ]);
    expect(head.changes.current()).toBe(2);
    expect(since(uuidA, 1)).toEqual([
      [key(1), 2],
      [key(2), 2],
    ]);
    // A large one: its partialTxn entry is held (no document changes, no number) until the batch
    // with its last entry applies the whole chain.
    const partialTs = clock;
    applier.applyBatch([
      e({
        op: "c",
        ns: "admin.$cmd",
        o: { applyOps: [{ op: "i", ns, ui: uuidA, o: { _id: 3 } }], partialTxn: true },
        lsid,
        txnNumber: Long.fromNumber(2),
        prevOpTime: NULL_OPTIME,
      }),
    ]);
    expect(head.changes.current()).toBe(2);
    expect(since(uuidA, 2)).toEqual([]);
    applier.applyBatch([
      e({
        op: "c",
        ns: "admin.$cmd",
        o: { applyOps: [{ op: "i", ns, ui: uuidA, o: { _id: 4 } }], count: 2 },
        lsid,
        txnNumber: Long.fromNumber(2),
        prevOpTime: { ts: new Timestamp({ t: partialTs, i: 1 }), t: Long.fromNumber(1) },
      }),
    ]);
    expect(head.changes.current()).toBe(3);
    expect(since(uuidA, 2)).toEqual([
      [key(3), 3],
      [key(4), 3],
    ]);
  });

  it("drop and dropDatabase record a collection-level change; a re-created collection is tracked anew", () => {
    open();
    const applier = new OplogApplier(head);
    applier.applyBatch([
      createOrders(),
      createOrders(uuidB, "items"),
      e({ op: "i", ns, ui: uuidA, o: { _id: 1 } }),
      e({ op: "i", ns: "shop.items", ui: uuidB, o: { _id: 2 } }),
    ]);
    applier.applyBatch([e({ op: "c", ns: "shop.$cmd", ui: uuidA, o: { drop: "orders" } })]);
    expect(head.changes.current()).toBe(2);
    expect(head.changes.collectionChange(uuidA)).toBe(2);
    expect(since(uuidA, 0)).toEqual([]);
    expect(since(uuidB, 0)).toEqual([[key(2), 1]]);

    // Re-created under a new UUID: tracked under that one.
    applier.applyBatch([createOrders(uuidC), e({ op: "i", ns, ui: uuidC, o: { _id: 5 } })]);
    expect(since(uuidC, 0)).toEqual([[key(5), 3]]);
    expect(head.changes.collectionChange(uuidC)).toBeUndefined();

    applier.applyBatch([e({ op: "c", ns: "shop.$cmd", o: { dropDatabase: 1 } })]);
    expect(head.catalog.databases()).toEqual([]);
    expect(head.changes.current()).toBe(4);
    expect(
      head.changes.collectionsChangedSince(2).map((c) => [c.uuid.toHexString(), c.changeNumber]),
    ).toEqual([
      [uuidB.toHexString(), 4],
      [uuidC.toHexString(), 4],
    ]);
    expect(since(uuidB, 0)).toEqual([]);
    expect(since(uuidC, 0)).toEqual([]);
  });

  it("renameCollection keeps the UUID and its changes; dropTarget records the replaced collection", () => {
    open();
    const applier = new OplogApplier(head);
    applier.applyBatch([
      createOrders(),
      createOrders(uuidB, "archive"),
      e({ op: "i", ns, ui: uuidA, o: { _id: 1 } }),
      e({ op: "i", ns: "shop.archive", ui: uuidB, o: { _id: 2 } }),
    ]);
    applier.applyBatch([
      e({
        op: "c",
        ns: "shop.$cmd",
        ui: uuidA,
        o: { renameCollection: "shop.orders", to: "shop.archive", stayTemp: false, dropTarget: uuidB },
      }),
    ]);
    expect(head.catalog.collectionByName("shop", "archive")!.uuid.equals(uuidA)).toBe(true);
    expect(head.changes.current()).toBe(2); // the drop of the target
    expect(head.changes.collectionChange(uuidB)).toBe(2);
    expect(head.changes.collectionChange(uuidA)).toBeUndefined();
    expect(since(uuidA, 0)).toEqual([[key(1), 1]]);
    applier.applyBatch([e({ op: "i", ns: "shop.archive", ui: uuidA, o: { _id: 3 } })]);
    expect(since(uuidA, 0)).toEqual([
      [key(1), 1],
      [key(3), 3],
    ]);
  });
});

describe("persistence", () => {
  it("change numbers, document and collection changes survive a close and reopen; numbering goes on", async () => {
    open();
    create(uuid1, "shop", "orders");
    create(uuid2, "shop", "items");
    insert(uuid1, 1, 2);
    insert(uuid2, "a");
    head.write(() => head.documents.delete(uuid1, encodeIdKey(1)));
    head.write(() => head.dropCollection(uuid2));
    await head.flushed();
    head = await temp.reopen();
    expect(head.changes.current()).toBe(4);
    expect(since(uuid1, 0)).toEqual([
      [key(1), 3],
      [key(2), 1],
    ]);
    expect(head.changes.collectionChange(uuid2)).toBe(4);
    insert(uuid1, 3);
    expect(head.changes.current()).toBe(5);
    expect(since(uuid1, 4)).toEqual([[key(3), 5]]);
  });
});

describe("many changes", () => {
  it("20k documents: since() lists exactly the changed ones, in order", () => {
    open();
    create(uuid1, "shop", "orders");
    create(uuid2, "shop", "items");
    const N = 20_000;
    const ids = Array.from({ length: N }, (_, i) => i);
    // Inserted in 4 transactions, each a shuffled quarter (numbers 1..4), with a neighbour.
    for (let part = 0; part < 4; part++)
      head.write(() => {
        const quarter = ids.filter((id) => id % 4 === part).reverse();
        head.insertDocuments(
          uuid1,
          quarter.map((id) => raw({ _id: id, part })),
        );
        head.insertDocuments(uuid2, [raw({ _id: part })]);
      });
    expect(head.changes.current()).toBe(4);
    const all = [...head.changes.since(uuid1, 0)];
    expect(all).toHaveLength(N);
    expect(all.map((c) => c.idKey.toString("hex"))).toEqual(ids.map(key));
    expect(all.map((c) => c.changeNumber)).toEqual(ids.map((id) => (id % 4) + 1));
    expect(sinceKeys(uuid1, 2)).toEqual(ids.filter((id) => id % 4 >= 2).map(key));

    // Change every 7th, delete every 11th (number 5), then touch three (number 6).
    head.write(() => {
      for (const id of ids) {
        if (id % 7 === 0) head.documents.put(uuid1, raw({ _id: id, changed: true }));
        if (id % 11 === 0) head.documents.delete(uuid1, encodeIdKey(id));
      }
    });
    head.write(() => {
      for (const id of [5, 19_999, 12_345]) head.documents.put(uuid1, raw({ _id: id, last: true }));
    });
    const changed = ids.filter((id) => id % 7 === 0 || id % 11 === 0 || [5, 19_999, 12_345].includes(id));
    expect(since(uuid1, 4)).toEqual(changed.map((id) => [key(id), [5, 19_999, 12_345].includes(id) ? 6 : 5]));
    expect(sinceKeys(uuid1, 5)).toEqual([5, 12_345, 19_999].map(key));
    const deleted = [...head.changes.since(uuid1, 4)].filter(
      (c) => head.documents.get(uuid1, c.idKey) === undefined,
    );
    expect(deleted.map((c) => c.idKey.toString("hex"))).toEqual(ids.filter((id) => id % 11 === 0).map(key));
    expect(head.documents.count(uuid1)).toBe(N - ids.filter((id) => id % 11 === 0).length);
    // The neighbour is untouched.
    expect(sinceKeys(uuid2, 0)).toEqual([0, 1, 2, 3].map(key));

    // Emptying forgets all 20k entries.
    head.write(() => head.emptyCollection(uuid1));
    expect(since(uuid1, 0)).toEqual([]);
    expect(head.changes.collectionChange(uuid1)).toBe(7);
    expect(sinceKeys(uuid2, 0)).toEqual([0, 1, 2, 3].map(key));
  });
});

describe("tracking starts with the first snapshot", () => {
  it("records nothing before startTracking, everything after; changes before it count as pruned", () => {
    temp = tempHead("tidemark-changes-");
    head = temp.head;
    create(uuid1, "db", "a");
    insert(uuid1, 1, 2, 3);
    head.write(() => head.emptyCollection(uuid1));
    insert(uuid1, 4);
    expect(head.changes.isTracking()).toBe(false);
    expect(since(uuid1, 0)).toEqual([]);
    expect(head.changes.collectionChange(uuid1)).toBeUndefined();
    expect(head.changes.current()).toBe(0);

    // A rolled-back start leaves tracking off.
    expect(() =>
      head.write(() => {
        head.changes.startTracking();
        throw new Error("rolled back");
      }),
    ).toThrow("rolled back");
    expect(head.changes.isTracking()).toBe(false);

    head.write(() => head.changes.startTracking());
    expect(head.changes.isTracking()).toBe(true);
    const start = head.changes.current();
    expect(head.changes.prunedThrough()).toBe(start);
    insert(uuid1, 5);
    expect(since(uuid1, start).map(([k]) => k)).toEqual([key(5)]);
  });
});

describe("pruning change entries once a snapshot is complete", () => {
  it("forgets entries up to the number, in batches, keeps later ones, and views opened before still see them", async () => {
    open();
    create(uuid1, "db", "a");
    create(uuid2, "db", "b");
    insert(uuid1, ...Array.from({ length: 50 }, (_, i) => i));
    insert(uuid2, "x", "y");
    const snapshotAt = head.changes.current();
    insert(uuid1, 7, 100);
    const later = since(uuid1, snapshotAt);
    expect(later.map(([k]) => k)).toEqual([key(7), key(100)]);

    let release!: () => void;
    const heldOpen = head.readSnapshot(async (view) => {
      await new Promise<void>((resolve) => (release = resolve));
      return [...view.changes.since(uuid1, 0)].length;
    });
    // Batches of 7 entries visited per write: 52 entries, so several writes.
    const batches = await head.pruneChanges(snapshotAt, 7);
    expect(batches).toBeGreaterThan(5);
    expect(head.changes.prunedThrough()).toBe(snapshotAt);
    expect(since(uuid1, 0)).toEqual(later);
    expect(since(uuid2, 0)).toEqual([]);
    // The documents themselves are untouched.
    expect(head.documents.count(uuid1)).toBe(51);
    release();
    expect(await heldOpen).toBe(51);

    // Pruning to an older number never lowers the mark.
    await head.pruneChanges(1);
    expect(head.changes.prunedThrough()).toBe(snapshotAt);
  });
});
