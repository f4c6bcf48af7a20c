/**
 * The applier's rules on hand-made entries, for what no real capture in the fixtures shows
 * (renameCollection, views as create-with-viewOn, upserts, `$v:1` conflicts, shard-key `o2`,
 * nested applyOps, the error paths), shaped as MongoDB 7.0 writes them: renameCollection is
 * `{renameCollection: "db.from", to: "db.to", stayTemp, dropTarget: <UUID>}` on the source
 * database's `$cmd` with `ui` = the source (`op_observer_impl.cpp`, see the conformance README).
 */
import { deserialize, Int32, Long, serialize, Timestamp, type Document } from "bson";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { encodeIdKey } from "../../src/bson/keyEncoding.js";
import type { HeadDatabase } from "../../src/headdb/headDatabase.js";
import { OplogApplier } from "../../src/oplog/apply/applier.js";
import { OplogApplyError } from "../../src/oplog/apply/errors.js";
import { tempHead, type TempHead } from "../headdb/helpers.js";
import { entry, uuidA, uuidB, uuidC, type EntryWithoutTs } from "./entries.js";

const raw = (doc: Document) => Buffer.from(serialize(doc));
const exact = (bytes: Uint8Array) => deserialize(bytes, { promoteValues: false });
const lsid = { id: uuidC };
const NULL_OPTIME = { ts: new Timestamp({ t: 0, i: 0 }), t: Long.fromNumber(-1) };

let temp: TempHead;
let head: HeadDatabase;
let applier: OplogApplier;
let clock = 100;
/** Entries get increasing ts unless they say otherwise. */
const e = (fields: EntryWithoutTs & { ts?: number }) => entry({ ts: clock++, ...fields });
const docs = (db: string, name: string) => {
  const record = head.catalog.collectionByName(db, name);
  return record ? [...head.documents.scan(record.uuid)].map(({ raw: bytes }) => deserialize(bytes)) : [];
};

beforeEach(() => {
  temp = tempHead();
  head = temp.head;
  applier = new OplogApplier(head);
});
afterEach(async () => {
  await temp.dispose();
});

function createA(): void {
  applier.applyBatch([
    e({
      op: "c",
      ns: "shop.$cmd",
      ui: uuidA,
      o: { create: "orders", idIndex: { v: 2, key: { _id: 1 }, name: "_id_" } },
    }),
    e({ op: "i", ns: "shop.orders", ui: uuidA, o: { _id: 1, total: 10 }, o2: { _id: 1 } }),
    e({ op: "i", ns: "shop.orders", ui: uuidA, o: { _id: 2, total: 20 }, o2: { _id: 2 } }),
  ]);
}

describe("renameCollection", () => {
  it("within a database keeps the UUID and the documents", () => {
    createA();
    applier.applyBatch([
      e({
        op: "c",
        ns: "shop.$cmd",
        ui: uuidA,
        o: { renameCollection: "shop.orders", to: "shop.archive", stayTemp: false },
      }),
    ]);
    expect(head.catalog.lookup("shop", "orders")).toBeUndefined();
    expect(head.catalog.collectionByName("shop", "archive")!.uuid.equals(uuidA)).toBe(true);
    expect(docs("shop", "archive")).toEqual([
      { _id: 1, total: 10 },
      { _id: 2, total: 20 },
    ]);
    // Later writes name the collection by UUID, whatever ns they carry.
    applier.applyBatch([e({ op: "d", ns: "shop.archive", ui: uuidA, o: { _id: 1 } })]);
    expect(docs("shop", "archive")).toEqual([{ _id: 2, total: 20 }]);
  });

  it("dropTarget names the UUID of the collection it replaces", () => {
    createA();
    applier.applyBatch([
      e({ op: "c", ns: "shop.$cmd", ui: uuidB, o: { create: "archive" } }),
      e({ op: "i", ns: "shop.archive", ui: uuidB, o: { _id: "old" } }),
      e({
        op: "c",
        ns: "shop.$cmd",
        ui: uuidA,
        o: { renameCollection: "shop.orders", to: "shop.archive", stayTemp: false, dropTarget: uuidB },
        o2: { numRecords: 1 },
      }),
    ]);
    expect(head.catalog.collection(uuidB)).toBeUndefined();
    expect(head.documents.count(uuidB)).toBe(0);
    expect(docs("shop", "archive").map((d) => d._id)).toEqual([1, 2]);
  });

  it("dropTarget: true (servers before 4.2) drops whatever holds the target name", () => {
    createA();
    applier.applyBatch([
      e({ op: "c", ns: "shop.$cmd", ui: uuidB, o: { create: "archive" } }),
      e({
        op: "c",
        ns: "shop.$cmd",
        ui: uuidA,
        o: { renameCollection: "shop.orders", to: "shop.archive", dropTarget: true },
      }),
    ]);
    expect(head.catalog.collection(uuidB)).toBeUndefined();
    expect(head.catalog.collectionByName("shop", "archive")!.uuid.equals(uuidA)).toBe(true);
  });

  it("across databases, as one entry (applyOps can carry one), keeps the source UUID", () => {
    createA();
    applier.applyBatch([
      e({
        op: "c",
        ns: "shop.$cmd",
        ui: uuidA,
        o: { renameCollection: "shop.orders", to: "vault.orders", stayTemp: false },
      }),
    ]);
    expect(head.catalog.databases()).toEqual(["vault"]);
    expect(head.catalog.collectionByName("vault", "orders")!.uuid.equals(uuidA)).toBe(true);
    expect(docs("vault", "orders")).toHaveLength(2);
  });

  it("of a collection the head database does not know creates it empty under the new name", () => {
    applier.applyBatch([
      e({
        op: "c",
        ns: "shop.$cmd",
        ui: uuidB,
        o: { renameCollection: "shop.gone", to: "shop.here", stayTemp: false },
      }),
    ]);
    expect(head.catalog.collectionByName("shop", "here")!.uuid.equals(uuidB)).toBe(true);
  });
});

describe("views", () => {
  const definition = (pipeline: Document[]) => ({ _id: "shop.big", viewOn: "orders", pipeline });

  it("writes to <db>.system.views create, change and drop views (how servers log views)", () => {
    createA();
    applier.applyBatch([
      e({ op: "c", ns: "shop.$cmd", ui: uuidB, o: { create: "system.views" } }),
      e({ op: "i", ns: "shop.system.views", ui: uuidB, o: definition([{ $match: { total: { $gt: 10 } } }]) }),
    ]);
    expect(head.catalog.lookup("shop", "big")).toEqual({
      type: "view",
      db: "shop",
      name: "big",
      view: {
        db: "shop",
        name: "big",
        options: { viewOn: "orders", pipeline: [{ $match: { total: { $gt: new Int32(10) } } }] },
      },
    });
    applier.applyBatch([
      e({ op: "u", ns: "shop.system.views", ui: uuidB, o: definition([]), o2: { _id: "shop.big" } }),
    ]);
    expect(
      head.catalog.lookup("shop", "big")?.type === "view" && head.catalog.lookup("shop", "big"),
    ).toMatchObject({
      view: { options: { pipeline: [] } },
    });
    applier.applyBatch([e({ op: "d", ns: "shop.system.views", ui: uuidB, o: { _id: "shop.big" } })]);
    expect(head.catalog.lookup("shop", "big")).toBeUndefined();
    // system.views itself is a collection of the database, part of its dbHash.
    expect(Object.keys(head.dbHash("shop").collections)).toEqual(["orders", "system.views"]);
  });

  it("a create command with viewOn makes a view too, and writes its definition to system.views", () => {
    createA();
    applier.applyBatch([
      e({ op: "c", ns: "shop.$cmd", ui: uuidB, o: { create: "system.views" } }),
      e({ op: "c", ns: "shop.$cmd", o: { create: "big", viewOn: "orders", pipeline: [] } }),
    ]);
    expect(head.catalog.lookup("shop", "big")?.type).toBe("view");
    expect(docs("shop", "system.views")).toEqual([{ _id: "shop.big", viewOn: "orders", pipeline: [] }]);
    // Dropping system.views takes the views with it.
    applier.applyBatch([e({ op: "c", ns: "shop.$cmd", ui: uuidB, o: { drop: "system.views" } })]);
    expect(head.catalog.namespaces("shop").map((n) => n.name)).toEqual(["orders"]);
  });
});

describe("updates", () => {
  it("an upsert (b: true) of a missing document starts from o2: $v:2 and $v:1", () => {
    createA();
    applier.applyBatch([
      e({
        op: "u",
        ns: "shop.orders",
        ui: uuidA,
        o: { $v: new Int32(2), diff: { i: { total: 5 } } },
        o2: { _id: 7, region: "eu" },
        b: true,
      }),
      e({
        op: "u",
        ns: "shop.orders",
        ui: uuidA,
        o: { $v: new Int32(1), $set: { "a.b": 1 } },
        o2: { _id: 8 },
        b: true,
      }),
    ]);
    expect(docs("shop", "orders").slice(2)).toEqual([
      { _id: 7, region: "eu", total: 5 },
      { _id: 8, a: { b: 1 } },
    ]);
    expect(head.missing.count()).toBe(0);
  });

  it("an update of a missing document records its _id (exact type) until an insert, delete or drop settles it", () => {
    createA();
    const diff = { $v: new Int32(2), diff: { u: { total: 1 } } };
    applier.applyBatch([
      e({ op: "u", ns: "shop.orders", ui: uuidA, o: diff, o2: { _id: Long.fromNumber(30) } }),
      e({ op: "u", ns: "shop.orders", ui: uuidA, o: diff, o2: { _id: 31 } }),
      e({ op: "u", ns: "shop.orders", ui: uuidA, o: diff, o2: { _id: 32 } }),
    ]);
    expect([...head.missing.list()].map((m) => exact(m.idDocument))).toEqual([
      { _id: Long.fromNumber(30) },
      { _id: new Int32(31) },
      { _id: new Int32(32) },
    ]);
    applier.applyBatch([
      e({ op: "i", ns: "shop.orders", ui: uuidA, o: { _id: 30, total: 3 } }),
      e({ op: "d", ns: "shop.orders", ui: uuidA, o: { _id: 31 } }),
    ]);
    expect([...head.missing.list()].map((m) => exact(m.idDocument))).toEqual([{ _id: new Int32(32) }]);
    applier.applyBatch([e({ op: "c", ns: "shop.$cmd", ui: uuidA, o: { drop: "orders" } })]);
    expect(head.missing.count()).toBe(0);
  });

  it("a $v:1 update that does not fit the stored document records it as missing, unchanged", () => {
    createA();
    applier.applyBatch([
      e({ op: "u", ns: "shop.orders", ui: uuidA, o: { $v: 1, $set: { "total.x": 1 } }, o2: { _id: 1 } }),
    ]);
    expect(docs("shop", "orders")[0]).toEqual({ _id: 1, total: 10 });
    expect(head.missing.has(uuidA, encodeIdKey(1))).toBe(true);
    // A later update that fits does not make the document current: it stays missing.
    applier.applyBatch([
      e({
        op: "u",
        ns: "shop.orders",
        ui: uuidA,
        o: { $v: new Int32(2), diff: { u: { total: 12 } } },
        o2: { _id: 1 },
      }),
    ]);
    expect(head.missing.has(uuidA, encodeIdKey(1))).toBe(true);
    applier.applyBatch([
      e({ op: "u", ns: "shop.orders", ui: uuidA, o: { _id: 1, total: 13 }, o2: { _id: 1 } }),
    ]);
    expect(head.missing.has(uuidA, encodeIdKey(1))).toBe(false);
  });

  it("o2 with shard key fields: only the _id locates the document (updates and deletes); fromMigrate entries apply", () => {
    createA();
    applier.applyBatch([
      e({
        op: "u",
        ns: "shop.orders",
        ui: uuidA,
        o: { $v: new Int32(2), diff: { u: { total: 11 } } },
        o2: { _id: 1, region: "eu" },
      }),
      e({ op: "d", ns: "shop.orders", ui: uuidA, o: { _id: 2, region: "us" }, fromMigrate: true }),
      e({ op: "i", ns: "shop.orders", ui: uuidA, o: { _id: 3, region: "us" }, fromMigrate: true }),
    ]);
    expect(docs("shop", "orders")).toEqual([
      { _id: 1, total: 11 },
      { _id: 3, region: "us" },
    ]);
  });

  it("1, 1.0 and NumberLong(1) are one _id: an insert replaces, an update finds it", () => {
    createA();
    applier.applyBatch([
      e({ op: "i", ns: "shop.orders", ui: uuidA, o: { _id: 1.5, v: 1 } }),
      e({ op: "i", ns: "shop.orders", ui: uuidA, o: { _id: Long.fromNumber(2), replaced: true } }),
      e({
        op: "u",
        ns: "shop.orders",
        ui: uuidA,
        o: { $v: new Int32(2), diff: { u: { total: 0 } } },
        o2: { _id: 1.0 },
      }),
    ]);
    expect(docs("shop", "orders")).toEqual([
      { _id: 1, total: 0 },
      { _id: 1.5, v: 1 },
      { _id: 2, replaced: true },
    ]);
  });
});

describe("other commands", () => {
  it("nested applyOps without a session apply their operations", () => {
    createA();
    applier.applyBatch([
      e({
        op: "c",
        ns: "admin.$cmd",
        o: {
          applyOps: [
            {
              op: "c",
              ns: "admin.$cmd",
              o: { applyOps: [{ op: "i", ns: "shop.orders", ui: uuidA, o: { _id: 9 } }] },
            },
            { op: "d", ns: "shop.orders", ui: uuidA, o: { _id: 1 } },
          ],
        },
      }),
    ]);
    expect(docs("shop", "orders").map((d) => d._id)).toEqual([2, 9]);
  });

  it("abortIndexBuild forgets the build; dropIndexes by key pattern; dbCheck changes nothing; emptycapped empties", () => {
    createA();
    const buildUUID = uuidC;
    const indexes = [{ v: 2, key: { total: 1 }, name: "total_1" }];
    applier.applyBatch([
      e({
        op: "c",
        ns: "shop.$cmd",
        ui: uuidA,
        o: { startIndexBuild: "orders", indexBuildUUID: buildUUID, indexes },
      }),
      e({
        op: "c",
        ns: "shop.$cmd",
        ui: uuidA,
        o: { abortIndexBuild: "orders", indexBuildUUID: buildUUID, indexes, cause: { ok: 0 } },
      }),
      e({
        op: "c",
        ns: "shop.$cmd",
        ui: uuidA,
        o: { createIndexes: "orders", v: 2, key: { x: 1 }, name: "x_1" },
      }),
      e({ op: "c", ns: "shop.$cmd", ui: uuidA, o: { dropIndexes: "orders", index: { x: 1 } } }),
      e({ op: "c", ns: "shop.$cmd", o: { dbCheck: "orders", type: "start" } }),
    ]);
    const record = head.catalog.collection(uuidA)!;
    expect(record.indexBuilds).toEqual([]);
    expect(record.indexes.map((i) => i.name)).toEqual(["_id_"]);
    expect(head.documents.count(uuidA)).toBe(2);
    applier.applyBatch([e({ op: "c", ns: "shop.$cmd", ui: uuidA, o: { emptycapped: "orders" } })]);
    expect(head.documents.count(uuidA)).toBe(0);
  });

  it("collMod changes collection options (cappedSize is size; expireAfterSeconds: 'off' removes it)", () => {
    applier.applyBatch([
      e({
        op: "c",
        ns: "shop.$cmd",
        ui: uuidA,
        o: { create: "log", capped: true, size: 4096, expireAfterSeconds: 60 },
      }),
      e({
        op: "c",
        ns: "shop.$cmd",
        ui: uuidA,
        o: { collMod: "log", cappedSize: 8192, validationLevel: "moderate" },
      }),
      e({ op: "c", ns: "shop.$cmd", ui: uuidA, o: { collMod: "log", expireAfterSeconds: "off" } }),
    ]);
    expect(deserialize(serialize(head.catalog.collection(uuidA)!.options))).toEqual({
      capped: true,
      size: 8192,
      validationLevel: "moderate",
    });
  });

  it("a create of a known UUID empties it: every later write is in the oplog", () => {
    createA();
    applier.applyBatch([e({ op: "c", ns: "shop.$cmd", ui: uuidA, o: { create: "orders" } })]);
    expect(head.documents.count(uuidA)).toBe(0);
  });

  it("dropDatabase drops collections, views and records of the database another collection displaced", () => {
    createA();
    applier.applyBatch([
      e({ op: "i", ns: "shop.orders", ui: uuidB, o: { _id: 1 } }),
      e({ op: "c", ns: "shop.$cmd", o: { dropDatabase: 1 } }),
    ]);
    expect(head.catalog.collections()).toEqual([]);
  });
});

describe("the default namespace filter", () => {
  it("keeps user data, users, roles, views and time series buckets; leaves out local, config and other system collections", () => {
    const result = applier.applyBatch([
      e({ op: "i", ns: "local.startup_log", ui: uuidA, o: { _id: 1 } }),
      e({ op: "i", ns: "config.system.sessions", ui: uuidA, o: { _id: 1 } }),
      e({ op: "i", ns: "admin.system.version", ui: uuidA, o: { _id: 1 } }),
      e({ op: "c", ns: "config.$cmd", o: { dropDatabase: 1 } }),
      e({ op: "i", ns: "admin.system.users", ui: uuidB, o: { _id: "admin.u" } }),
      e({ op: "i", ns: "metrics.system.buckets.cpu", ui: uuidC, o: { _id: 1 } }),
    ]);
    expect(result.filtered).toBe(4);
    expect(result.applied).toBe(6);
    expect(head.catalog.databases()).toEqual(["admin", "metrics"]);
  });
});

describe("errors stop the applier and keep nothing of the batch", () => {
  /** `entries` is called after the collection exists, so its entries come after it. */
  function expectFailure(entries: () => Buffer[], code: string, shows: string): OplogApplyError {
    createA();
    const before = head.state.appliedOptime();
    let error: unknown;
    try {
      applier.applyBatch([e({ op: "i", ns: "shop.orders", ui: uuidA, o: { _id: "first" } }), ...entries()], {
        sliceCursor: { stream: "oplog", sequence: 9 },
      });
    } catch (thrown) {
      error = thrown;
    }
    expect(error).toBeInstanceOf(OplogApplyError);
    const failure = error as OplogApplyError;
    expect(failure.code).toBe(code);
    expect(failure.message).toContain(shows);
    expect(head.state.appliedOptime()).toEqual(before);
    expect(head.state.sliceCursor("oplog")).toBeUndefined();
    expect(head.documents.get(uuidA, encodeIdKey("first"))).toBeUndefined();
    return failure;
  }

  it("an unknown op, showing the entry as Extended JSON", () => {
    const failure = expectFailure(
      () => [e({ op: "x", ns: "shop.orders", o: { weird: true } })],
      "UNKNOWN_OP",
      '"op":"x"',
    );
    expect(failure.message).toContain('"weird":true');
    expect(failure.context.namespace).toBe("shop.orders");
    expect(failure.context.ts).toBeInstanceOf(Timestamp);
  });

  it("an unknown command", () => {
    expectFailure(
      () => [e({ op: "c", ns: "shop.$cmd", o: { frobnicate: "orders" } })],
      "UNKNOWN_COMMAND",
      "frobnicate",
    );
  });

  it("an unknown command inside applyOps shows the operation", () => {
    expectFailure(
      () => [
        e({
          op: "c",
          ns: "admin.$cmd",
          o: { applyOps: [{ op: "c", ns: "shop.$cmd", o: { importCollection: "x" } }] },
        }),
      ],
      "UNKNOWN_COMMAND",
      '"importCollection":"x"',
    );
  });

  it("an update format it does not know", () => {
    expectFailure(
      () => [e({ op: "u", ns: "shop.orders", ui: uuidA, o: { $v: 3, delta: {} }, o2: { _id: 1 } })],
      "UNSUPPORTED_UPDATE",
      "$v: 3",
    );
    expectFailure(
      () => [e({ op: "u", ns: "shop.orders", ui: uuidA, o: { $inc: { total: 1 } }, o2: { _id: 1 } })],
      "UNSUPPORTED_UPDATE",
      "$inc",
    );
  });

  it("a malformed diff", () => {
    expectFailure(
      () => [e({ op: "u", ns: "shop.orders", ui: uuidA, o: { $v: 2, diff: { q: {} } }, o2: { _id: 1 } })],
      "MALFORMED_DIFF",
      '"q"',
    );
  });

  it("entries out of order", () => {
    // The same ts as the batch's first entry.
    expectFailure(
      () => [entry({ op: "n", ns: "", o: { msg: "x" }, ts: clock - 1 })],
      "OUT_OF_ORDER",
      "is not after",
    );
  });

  it("a transaction's last entry without the chain before it", () => {
    expectFailure(
      () => [
        e({
          op: "c",
          ns: "admin.$cmd",
          o: { applyOps: [{ op: "i", ns: "shop.orders", ui: uuidA, o: { _id: 5 } }], count: 3 },
          lsid,
          txnNumber: Long.fromNumber(1),
          prevOpTime: { ts: new Timestamp({ t: 1, i: 1 }), t: Long.fromNumber(1) },
        }),
      ],
      "TXN_CHAIN_BROKEN",
      "earlier entries",
    );
  });

  it("commitTransaction without its prepared applyOps", () => {
    expectFailure(
      () => [
        e({ op: "c", ns: "admin.$cmd", o: { commitTransaction: 1 }, lsid, txnNumber: Long.fromNumber(2) }),
      ],
      "TXN_CHAIN_BROKEN",
      "commitTransaction",
    );
  });

  it("a chain whose count does not match", () => {
    expectFailure(
      () => {
        const partialTs = clock;
        return [
          e({
            op: "c",
            ns: "admin.$cmd",
            o: { applyOps: [{ op: "i", ns: "shop.orders", ui: uuidA, o: { _id: 5 } }], partialTxn: true },
            lsid,
            txnNumber: Long.fromNumber(3),
            prevOpTime: NULL_OPTIME,
          }),
          e({
            op: "c",
            ns: "admin.$cmd",
            o: { applyOps: [{ op: "i", ns: "shop.orders", ui: uuidA, o: { _id: 6 } }], count: 3 },
            lsid,
            txnNumber: Long.fromNumber(3),
            prevOpTime: { ts: new Timestamp({ t: partialTs, i: 1 }), t: Long.fromNumber(1) },
          }),
        ];
      },
      "TXN_COUNT_MISMATCH",
      "counts 3",
    );
  });

  it("an _id too large for an LMDB key", () => {
    expectFailure(
      () => [e({ op: "i", ns: "shop.orders", ui: uuidA, o: { _id: "x".repeat(3000) } })],
      "HEAD_DB_ERROR",
      "KEY_TOO_LARGE",
    );
  });
});

describe("batches", () => {
  it("move the slice cursor and the phase state with the applied optime", () => {
    createA();
    const result = applier.applyBatch([e({ op: "n", ns: "", o: { msg: "x" } })], {
      sliceCursor: { stream: "oplog", sequence: 4 },
      phaseState: raw({ phase: "applying_oplogs" }),
    });
    expect(head.state.appliedOptime()).toEqual(result.appliedOptime);
    expect(head.state.sliceCursor("oplog")).toBe(4);
    expect(deserialize(head.state.phaseState()!)).toEqual({ phase: "applying_oplogs" });
  });

  it("skip entries at or before the applied optime (a batch applied twice is applied once)", () => {
    const batch = [
      e({ op: "c", ns: "shop.$cmd", ui: uuidA, o: { create: "orders" } }),
      e({ op: "i", ns: "shop.orders", ui: uuidA, o: { _id: 1, n: 1 } }),
      e({
        op: "u",
        ns: "shop.orders",
        ui: uuidA,
        o: { $v: new Int32(2), diff: { u: { n: 2 } } },
        o2: { _id: 1 },
      }),
    ];
    applier.applyBatch(batch);
    const later = e({
      op: "u",
      ns: "shop.orders",
      ui: uuidA,
      o: { $v: new Int32(2), diff: { u: { n: 3 } } },
      o2: { _id: 1 },
    });
    applier.applyBatch([later]);
    const again = applier.applyBatch([...batch, later]);
    expect(again).toMatchObject({ applied: 0, skipped: 4 });
    expect(docs("shop", "orders")).toEqual([{ _id: 1, n: 3 }]);
  });
});
