/**
 * `HeadDatabase.readSnapshot`: one consistent view of the head database (documents, catalog,
 * applied optime, change tracking) while writes commit, synchronous or across awaits, and how
 * the view ends: with its callback's result or error, not inside a write, not after it ended,
 * not past a close. Real LMDB files; writes go through the oplog applier where it matters.
 */
import { statSync } from "node:fs";
import path from "node:path";
import { deserialize, Long, serialize, Timestamp, type Document } from "bson";
import { afterEach, describe, expect, it } from "vitest";
import { encodeIdKey } from "../../src/bson/keyEncoding.js";
import { HeadDbError } from "../../src/headdb/errors.js";
import type { HeadDatabase } from "../../src/headdb/headDatabase.js";
import type { HeadSnapshot } from "../../src/headdb/readSnapshot.js";
import { OplogApplier } from "../../src/oplog/apply/applier.js";
import { entry, uuidA, uuidB, type EntryWithoutTs } from "../oplog/entries.js";
import { tempHead, type TempHead } from "./helpers.js";

const raw = (doc: Document) => Buffer.from(serialize(doc));
const key = (id: unknown) => encodeIdKey(id).toString("hex");
const tick = () => new Promise<void>((resolve) => setTimeout(resolve, 1));
const ns = "shop.orders";

let temp: TempHead;
let head: HeadDatabase;
let applier: OplogApplier;
let clock: number;
const e = (fields: EntryWithoutTs) => entry({ ts: clock++, ...fields });

afterEach(async () => {
  await temp?.dispose();
});

/** A head database with shop.orders (uuidA) holding _id 1..3, applied through the oplog (number 1). */
function open(): void {
  temp = tempHead("tidemark-snapshot-");
  head = temp.head;
  head.write(() => head.changes.startTracking());
  applier = new OplogApplier(head);
  clock = 100;
  applier.applyBatch([
    e({ op: "c", ns: "shop.$cmd", ui: uuidA, o: { create: "orders" } }),
    ...[1, 2, 3].map((_id) => e({ op: "i", ns, ui: uuidA, o: { _id, v: 0 } })),
  ]);
}

/** Everything a snapshot writer reads, as plain values. */
function state(snap: HeadSnapshot) {
  const doc2 = snap.documents.get(uuidA, encodeIdKey(2));
  return {
    changeNumber: snap.changeNumber(),
    applied: snap.appliedOptime()?.ts.toString(),
    databases: snap.catalog.databases(),
    namespaces: snap.catalog.namespaces("shop").map((n) => n.name),
    collections: snap.catalog.collections().map((c) => `${c.db}.${c.name}`),
    orders: snap.catalog.collectionByName("shop", "orders")?.uuid.toHexString(),
    documents: [...snap.documents.scan(uuidA)].map((d) => deserialize(d.raw)),
    count: snap.documents.count(uuidA),
    doc2: doc2 && deserialize(doc2),
    since: [...snap.changes.since(uuidA, 0)].map((c) => [c.idKey.toString("hex"), c.changeNumber]),
    collectionChange: snap.changes.collectionChange(uuidA),
    collectionsChanged: snap.changes.collectionsChangedSince(0).length,
    dbHash: snap.dbHash("shop").md5,
  };
}

/** Commits a batch that changes every kind of thing a view must not see. */
function changeEverything(): void {
  applier.applyBatch([
    e({ op: "u", ns, ui: uuidA, o: { _id: 2, v: 1 }, o2: { _id: 2 } }),
    e({ op: "d", ns, ui: uuidA, o: { _id: 1 } }),
    e({ op: "i", ns, ui: uuidA, o: { _id: 4, v: 1 } }),
    e({ op: "c", ns: "shop.$cmd", ui: uuidB, o: { create: "items" } }),
    e({
      op: "c",
      ns: "shop.$cmd",
      ui: uuidA,
      o: { renameCollection: ns, to: "shop.archive", stayTemp: false },
    }),
  ]);
}

describe("a view", () => {
  it("opened before a write does not see it: documents, catalog, applied optime, changes", () => {
    open();
    const before = head.readSnapshot(state);
    expect(before).toMatchObject({
      changeNumber: 1,
      namespaces: ["orders"],
      count: 3,
      doc2: { _id: 2, v: 0 },
    });
    expect(before.applied).toBe(head.state.appliedOptime()!.ts.toString());
    expect(before.dbHash).toBe(head.dbHash("shop").md5);

    const seen = head.readSnapshot((snap) => {
      changeEverything();
      return state(snap);
    });
    // Not read inside the write: the write ran, then the view read.
    expect(seen).toEqual(before);
    const after = head.readSnapshot(state);
    expect(after).toMatchObject({
      changeNumber: 2,
      namespaces: ["archive", "items"],
      orders: undefined,
      count: 3,
      doc2: { _id: 2, v: 1 },
    });
    expect(after.applied).not.toBe(before.applied);
    expect(after.dbHash).not.toBe(before.dbHash);
  });

  it("stays consistent across awaits while writes commit between its reads", async () => {
    open();
    const before = head.readSnapshot(state);
    const seen = await head.readSnapshot(async (snap) => {
      const reads = [state(snap)];
      await tick();
      changeEverything();
      reads.push(state(snap));
      await tick();
      applier.applyBatch([e({ op: "c", ns: "shop.$cmd", o: { dropDatabase: 1 } })]);
      await tick();
      reads.push(state(snap));
      return reads;
    });
    expect(seen).toEqual([before, before, before]);
    const after = head.readSnapshot(state);
    expect(after).toMatchObject({ changeNumber: 3, databases: [], count: 0, collectionChange: 3 });
  });

  it("iterates scan() and since() lazily across awaits on the view, whatever is deleted or emptied meanwhile", async () => {
    open();
    head.write(() =>
      head.insertDocuments(
        uuidA,
        Array.from({ length: 2000 }, (_, i) => raw({ _id: 10 + i })),
      ),
    );
    const expected = [1, 2, 3, ...Array.from({ length: 2000 }, (_, i) => 10 + i)];
    const [scanned, changed] = await head.readSnapshot(async (snap) => {
      const scanned: number[] = [];
      const changed: string[] = [];
      const changes = snap.changes.since(uuidA, 0)[Symbol.iterator]();
      for (const { raw: bytes } of snap.documents.scan(uuidA)) {
        const id = deserialize(bytes)._id as number;
        scanned.push(id);
        changed.push(changes.next().value!.idKey.toString("hex"));
        if (id === 3) {
          await tick();
          // Delete what the iterators have not reached, insert new ones in between.
          head.write(() => {
            for (let i = 500; i < 1500; i++) head.documents.delete(uuidA, encodeIdKey(i));
            head.insertDocuments(uuidA, [raw({ _id: 5 }), raw({ _id: 999.5 })]);
          });
        }
        if (id === 1000) {
          await tick();
          head.write(() => head.emptyCollection(uuidA));
          await tick();
        }
      }
      expect(changes.next().done).toBe(true);
      return [scanned, changed];
    });
    expect(scanned).toEqual(expected);
    expect(changed).toEqual(expected.map(key));
    expect(head.documents.count(uuidA)).toBe(0);
  });

  it("reads every entry once across chunk boundaries, by count and by bytes", () => {
    open();
    const big = "x".repeat(300 * 1024); // 14 documents per 4 MiB chunk
    head.write(() => {
      head.insertDocuments(
        uuidA,
        Array.from({ length: 40 }, (_, i) => raw({ _id: 10 + i, big })),
      );
      head.insertDocuments(
        uuidA,
        Array.from({ length: 2500 }, (_, i) => raw({ _id: `s${i}` })),
      );
    });
    const live = [...head.documents.scan(uuidA)].map((d) => d.idKey.toString("hex"));
    expect(live).toHaveLength(2543);
    const [scanned, changed] = head.readSnapshot((snap) => [
      [...snap.documents.scan(uuidA)].map((d) => d.idKey.toString("hex")),
      [...snap.changes.since(uuidA, 0)].map((c) => c.idKey.toString("hex")),
    ]);
    expect(scanned).toEqual(live);
    expect(changed).toEqual(live);
  });

  it("opened right after a write sees it; views opened at different points each keep their own", async () => {
    open();
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const views: Array<Promise<number[]>> = [];
    for (let round = 0; round < 5; round++) {
      head.write(() => head.insertDocuments(uuidA, [raw({ _id: 100 + round })]));
      views.push(
        head.readSnapshot(async (snap) => {
          const first = [snap.changeNumber(), snap.documents.count(uuidA)];
          await gate;
          return [...first, snap.changeNumber(), snap.documents.count(uuidA)];
        }),
      );
    }
    head.write(() => head.emptyCollection(uuidA));
    release();
    expect(await Promise.all(views)).toEqual(
      [0, 1, 2, 3, 4].map((round) => [2 + round, 4 + round, 2 + round, 4 + round]),
    );
    expect(head.readSnapshot((snap) => [snap.changeNumber(), snap.documents.count(uuidA)])).toEqual([7, 0]);
  });

  it("sees the catalog records of its moment, after the live catalog cached newer ones", () => {
    open();
    const renamed = head.readSnapshot((snap) => {
      expect(head.catalog.collection(uuidA)?.name).toBe("orders");
      head.write(() => head.renameCollection(uuidA, "shop", "archive"));
      expect(head.catalog.collection(uuidA)?.name).toBe("archive");
      return [snap.catalog.collection(uuidA)?.name, snap.catalog.lookup("shop", "archive")];
    });
    expect(renamed).toEqual(["orders", undefined]);
  });
});

describe("the end of a view", () => {
  it("returns a synchronous callback's value as is, and ends the view at once", () => {
    open();
    let kept: HeadSnapshot | undefined;
    const result = head.readSnapshot((snap) => {
      kept = snap;
      return snap.changeNumber();
    });
    expect(result).toBe(1);
    expect(() => kept!.changeNumber()).toThrow(/read snapshot has ended/);
    expect(() => kept!.documents.get(uuidA, encodeIdKey(1))).toThrow(HeadDbError);
    expect(() => [...kept!.documents.scan(uuidA)]).toThrow(/read snapshot has ended/);
  });

  it("ends when an async callback's promise settles, not before", async () => {
    open();
    let kept: HeadSnapshot | undefined;
    const view = head.readSnapshot(async (snap) => {
      kept = snap;
      await tick();
      return snap.documents.count(uuidA);
    });
    expect(view).toBeInstanceOf(Promise);
    // Still open while the callback runs.
    expect(kept!.documents.count(uuidA)).toBe(3);
    head.write(() => head.insertDocuments(uuidA, [raw({ _id: 9 })]));
    expect(kept!.documents.count(uuidA)).toBe(3);
    expect(await view).toBe(3);
    expect(() => kept!.documents.count(uuidA)).toThrow(/read snapshot has ended/);
  });

  it("passes on the callback's error, thrown or rejected, and ends the view", async () => {
    open();
    let kept: HeadSnapshot | undefined;
    expect(() =>
      head.readSnapshot((snap) => {
        kept = snap;
        throw new Error("boom");
      }),
    ).toThrow("boom");
    expect(() => kept!.changeNumber()).toThrow(/ended/);
    await expect(
      head.readSnapshot(async (snap) => {
        kept = snap;
        await tick();
        throw new Error("async boom");
      }),
    ).rejects.toThrow("async boom");
    expect(() => kept!.changeNumber()).toThrow(/ended/);
  });

  it("cannot start inside a write, and its reads cannot run inside one", async () => {
    open();
    expect(() => head.write(() => head.readSnapshot((snap) => snap.changeNumber()))).toThrow(
      /read snapshot cannot start inside a write transaction/,
    );
    const error = head.write(() => {
      try {
        head.readSnapshot(() => 0);
      } catch (caught) {
        return caught;
      }
    });
    expect(error).toBeInstanceOf(HeadDbError);
    // lmdb would serve a get from the write (and see _id 7): refused instead, ranges too.
    const inside = head.readSnapshot((snap) =>
      head.write(() => {
        head.insertDocuments(uuidA, [raw({ _id: 7 })]);
        const attempt = (read: () => unknown) => {
          try {
            return read();
          } catch (caught) {
            return String(caught);
          }
        };
        return [
          attempt(() => snap.documents.get(uuidA, encodeIdKey(7))),
          attempt(() => snap.documents.count(uuidA)),
          attempt(() => snap.changeNumber()),
        ];
      }),
    );
    expect(inside).toEqual(Array(3).fill(expect.stringMatching(/HeadDbError.*inside a write transaction/)));
    // The write around it committed, the head database works on.
    expect(head.documents.count(uuidA)).toBe(4);
    expect(head.readSnapshot((snap) => snap.documents.count(uuidA))).toBe(4);
  });

  it("an iteration left unfinished does not keep the view's read transaction", async () => {
    open();
    head.write(() =>
      head.insertDocuments(
        uuidA,
        Array.from({ length: 3000 }, (_, i) => raw({ _id: 10 + i })),
      ),
    );
    // LMDB has 126 reader slots: views that kept their transaction would run out of them.
    for (let i = 0; i < 400; i++) {
      const first = head.readSnapshot((snap) => snap.changes.since(uuidA, 0).next().value);
      expect(first?.idKey.toString("hex")).toBe(key(1));
      await expect(
        head.readSnapshot(async (snap) => {
          const documents = snap.documents.scan(uuidA);
          documents.next();
          await tick();
          throw new Error("the snapshot writer failed");
        }),
      ).rejects.toThrow("failed");
      head.write(() => head.documents.put(uuidA, raw({ _id: 1, round: i })));
    }
    // A left iterator resumed after its view ended goes on within its chunk, then throws.
    let left: Generator<{ idKey: Buffer }> | undefined;
    head.readSnapshot((snap) => {
      left = snap.documents.scan(uuidA);
      left.next();
    });
    for (let i = 1; i < 1000; i++) left!.next();
    expect(() => left!.next()).toThrow(/read snapshot has ended/);
    expect(head.readSnapshot((snap) => snap.documents.count(uuidA))).toBe(3003);
  });

  it("a close waits for open views; their reads after the close began fail with CLOSED", async () => {
    open();
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const view = head.readSnapshot(async (snap) => {
      const first = snap.documents.count(uuidA);
      await gate;
      try {
        return [first, snap.documents.count(uuidA)];
      } catch (error) {
        return [first, (error as HeadDbError).code];
      }
    });
    head.write(() => head.insertDocuments(uuidA, [raw({ _id: 9 })]));
    let closed = false;
    const closing = head.close().then(() => (closed = true));
    await tick();
    expect(closed).toBe(false);
    expect(() => head.readSnapshot(() => 0)).toThrow(/closed/);
    release();
    expect(await view).toEqual([3, "CLOSED"]);
    await closing;
    expect(closed).toBe(true);
    head = await temp.reopen();
    expect(head.documents.count(uuidA)).toBe(4);
  });
});

describe("many views", () => {
  it("the head database keeps working after thousands of views, overlapping writes", async () => {
    open();
    const N = 3000;
    const pending: Array<Promise<void>> = [];
    for (let i = 0; i < N; i++) {
      applier.applyBatch([e({ op: "i", ns, ui: uuidA, o: { _id: 1000 + i, payload: "x".repeat(200) } })]);
      const expected = [2 + i, 4 + i];
      const read = (snap: HeadSnapshot) => [snap.changeNumber(), snap.documents.count(uuidA)];
      expect(head.readSnapshot(read)).toEqual(expected);
      // Every 10th also as an async view that outlives a few more writes.
      if (i % 10 === 0)
        pending.push(
          head.readSnapshot(async (snap) => {
            await tick();
            expect(read(snap)).toEqual(expected);
          }),
        );
      if (i % 100 === 99) await Promise.all(pending.splice(0));
    }
    await Promise.all(pending);
    // One view read over many writes, and the state at the end.
    expect(head.readSnapshot((snap) => [snap.changeNumber(), snap.documents.count(uuidA)])).toEqual([
      N + 1,
      N + 3,
    ]);
    const lastTs = new Timestamp({ t: clock - 1, i: 1 });
    expect(head.readSnapshot((snap) => snap.appliedOptime())).toEqual({ ts: lastTs, t: Long.fromNumber(1) });
    // Every view ended: LMDB reuses the pages the writes freed instead of growing the file by the
    // pages of every version a leaked view would pin.
    await head.flushed();
    expect(statSync(path.join(temp.dir, "data.mdb")).size).toBeLessThan(16 * 1024 * 1024);
    head = await temp.reopen();
    expect(head.readSnapshot((snap) => snap.changes.since(uuidA, N).next().value)).toMatchObject({
      changeNumber: N + 1,
    });
  });
});
