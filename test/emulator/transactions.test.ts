/**
 * Multi-document transactions in local.oplog.rs, checked through the official driver only.
 *
 * MongoDB 7.0 logs a small unprepared transaction at commit as ONE applyOps entry on admin.$cmd
 * with lsid, txnNumber and prevOpTime {ts: Timestamp(0, 0), t: -1} (OpObserverImpl::logApplyOps;
 * MongoDB manual, "Transactions" and "Replica Set Oplog"); an aborted transaction writes nothing.
 * The real example is the unprepared transaction of a MongoDB 5.0.5 shard in
 * `test/fixtures/oplog/real-entries.json`; its inner inserts lack the `o2: {_id}` that 5.3+ adds
 * (the same jstest as in oplog.test.ts checks it inside transactions too), which the 8.0 vectored
 * insert entry of the fixtures shows.
 */
import { Int32, Long, MongoClient, Timestamp, type Document } from "mongodb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { withEmulator, type AnyDoc, type EmulatorFixture } from "../helpers/emulator.js";
import { bsonType, entriesAfter, fieldsOf, newestTs, realEntry, shapeOf } from "../helpers/oplog.js";

const NULL_OPTIME = { ts: new Timestamp({ t: 0, i: 0 }), t: Long.fromNumber(-1) };

function sameUuid(a: unknown, b: unknown): boolean {
  return Buffer.from((a as { buffer: Uint8Array }).buffer).equals(
    Buffer.from((b as { buffer: Uint8Array }).buffer),
  );
}

async function uuidOf(client: MongoClient, db: string, name: string): Promise<unknown> {
  const [info] = await client.db(db).listCollections({ name }).toArray();
  return (info as Document).info.uuid;
}

describe("transactions in local.oplog.rs", () => {
  let fx: EmulatorFixture;
  let other: MongoClient;
  beforeAll(async () => {
    fx = await withEmulator();
    other = new MongoClient(fx.emulator.uri);
    await other.connect();
    const db = fx.client.db("bank");
    await db.createCollection("accounts");
    await db.createCollection("ledger");
    await db.collection<AnyDoc>("accounts").insertMany([
      { _id: "alice", balance: 100 },
      { _id: "bob", balance: 50 },
      { _id: "carol", balance: 0 },
    ]);
    await db.collection<AnyDoc>("ledger").insertOne({ _id: "old", note: "to be deleted" });
  });
  afterAll(async () => {
    await other?.close();
    await fx?.close();
  });

  it("a committed transaction over two collections is ONE applyOps entry shaped like the real one", async () => {
    const db = fx.client.db("bank");
    const before = await newestTs(fx.client);
    const session = fx.client.startSession();
    try {
      await session.withTransaction(async () => {
        await db
          .collection<AnyDoc>("accounts")
          .updateOne({ _id: "alice" }, { $inc: { balance: -30 } }, { session });
        await db
          .collection<AnyDoc>("accounts")
          .updateOne({ _id: "bob" }, { $inc: { balance: 30 } }, { session });
        await db
          .collection<AnyDoc>("ledger")
          .insertOne({ _id: "t1", from: "alice", to: "bob", amount: 30 }, { session });
        await db.collection<AnyDoc>("accounts").deleteOne({ _id: "carol" }, { session });
        await db.collection<AnyDoc>("ledger").deleteOne({ _id: "old" }, { session });
      });
    } finally {
      await session.endSession();
    }
    const entries = await entriesAfter(fx.client, before);
    expect(entries).toHaveLength(1);
    const [entry] = entries;
    const real = realEntry("unprepared transaction (applyOps)");

    expect(fieldsOf(entry)).toEqual(fieldsOf(real));
    expect(entry).toMatchObject({ op: "c", ns: "admin.$cmd" });
    expect(entry.ui).toBeUndefined();
    expect(Object.keys(entry.o)).toEqual(["applyOps"]);
    expect(shapeOf(entry.lsid)).toEqual(shapeOf(real.lsid));
    expect(bsonType(entry.txnNumber)).toBe("Long");
    expect(entry.prevOpTime).toEqual(NULL_OPTIME);
    expect(real.prevOpTime).toEqual(NULL_OPTIME);

    const ops = entry.o.applyOps as Document[];
    expect(ops.map((op) => `${op.op} ${op.ns}`)).toEqual([
      "u bank.accounts",
      "u bank.accounts",
      "i bank.ledger",
      "d bank.accounts",
      "d bank.ledger",
    ]);
    const accounts = await uuidOf(fx.client, "bank", "accounts");
    const ledger = await uuidOf(fx.client, "bank", "ledger");
    for (const op of ops) expect(sameUuid(op.ui, op.ns === "bank.accounts" ? accounts : ledger)).toBe(true);

    // Inner operations: the real inner insert is {op, ns, ui, o} (5.0); 5.3+ adds o2 {_id}, as the
    // real 8.0 vectored insert shows (its stmtId belongs to retryable writes only).
    const realInsert = (real.o.applyOps as Document[])[0];
    const recentInsert = (realEntry("vectored insert (applyOps with insert o2)").o.applyOps as Document[])[0];
    expect(Object.keys(realInsert)).toEqual(["op", "ns", "ui", "o"]);
    expect(Object.keys(recentInsert)).toEqual(["op", "ns", "ui", "o", "o2", "stmtId"]);
    const [update, , insert, remove] = ops;
    expect(Object.keys(insert)).toEqual(["op", "ns", "ui", "o", "o2"]);
    expect(insert.o).toEqual({ _id: "t1", from: "alice", to: "bob", amount: new Int32(30) });
    expect(insert.o2).toEqual({ _id: "t1" });
    expect(Object.keys(update)).toEqual(["op", "ns", "ui", "o", "o2"]);
    expect(update.o2).toEqual({ _id: "alice" });
    expect(update.o.$v).toEqual(new Int32(2));
    expect(Object.keys(remove)).toEqual(["op", "ns", "ui", "o"]);
    expect(remove.o).toEqual({ _id: "carol" });
  });

  it("the committed data is visible to another client", async () => {
    const accounts = other.db("bank").collection<AnyDoc>("accounts");
    expect(await accounts.find().sort({ _id: 1 }).toArray()).toEqual([
      { _id: "alice", balance: 70 },
      { _id: "bob", balance: 80 },
    ]);
    expect(await other.db("bank").collection<AnyDoc>("ledger").find().toArray()).toEqual([
      { _id: "t1", from: "alice", to: "bob", amount: 30 },
    ]);
  });

  it("an aborted transaction writes nothing to the oplog and leaves the data unchanged", async () => {
    const db = fx.client.db("bank");
    const snapshot = async () => ({
      accounts: await other.db("bank").collection<AnyDoc>("accounts").find().sort({ _id: 1 }).toArray(),
      ledger: await other.db("bank").collection<AnyDoc>("ledger").find().sort({ _id: 1 }).toArray(),
    });
    const dataBefore = await snapshot();
    const before = await newestTs(fx.client);
    const session = fx.client.startSession();
    try {
      session.startTransaction();
      await db
        .collection<AnyDoc>("accounts")
        .updateOne({ _id: "alice" }, { $set: { balance: 0 } }, { session });
      await db.collection<AnyDoc>("ledger").insertOne({ _id: "t2", amount: 70 }, { session });
      await db.collection<AnyDoc>("ledger").deleteOne({ _id: "t1" }, { session });
      await session.abortTransaction();
    } finally {
      await session.endSession();
    }
    expect(await entriesAfter(fx.client, before)).toEqual([]);
    expect(await snapshot()).toEqual(dataBefore);
  });

  it("a collection created inside a transaction is part of its applyOps, and gone after an abort", async () => {
    const db = fx.client.db("bank");
    let before = await newestTs(fx.client);
    let session = fx.client.startSession();
    try {
      session.startTransaction();
      await db.collection<AnyDoc>("drafts").insertOne({ _id: 1 }, { session });
      await session.abortTransaction();
    } finally {
      await session.endSession();
    }
    expect(await entriesAfter(fx.client, before)).toEqual([]);
    expect(await db.listCollections({ name: "drafts" }).toArray()).toEqual([]);

    before = await newestTs(fx.client);
    session = fx.client.startSession();
    try {
      await session.withTransaction(async () => {
        await db
          .collection<AnyDoc>("audit")
          .insertOne({ _id: 1, what: "created in a transaction" }, { session });
      });
    } finally {
      await session.endSession();
    }
    const entries = await entriesAfter(fx.client, before);
    expect(entries).toHaveLength(1);
    const [create, insert] = entries[0].o.applyOps as Document[];
    expect(create).toMatchObject({ op: "c", ns: "bank.$cmd", o: { create: "audit" } });
    expect(create.o.idIndex).toEqual({ v: new Int32(2), key: { _id: new Int32(1) }, name: "_id_" });
    expect(sameUuid(create.ui, await uuidOf(fx.client, "bank", "audit"))).toBe(true);
    expect(insert).toMatchObject({ op: "i", ns: "bank.audit", o: { _id: new Int32(1) } });
    expect(await other.db("bank").collection<AnyDoc>("audit").countDocuments()).toBe(1);
  });

  it("each transaction of a session takes a new txnNumber; retryable writes in between use their own", async () => {
    const db = fx.client.db("bank");
    const before = await newestTs(fx.client);
    const session = fx.client.startSession();
    try {
      await session.withTransaction(async () => {
        await db.collection<AnyDoc>("ledger").insertOne({ _id: "t3" }, { session });
      });
      await db.collection<AnyDoc>("ledger").insertOne({ _id: "t4" }, { session });
      await session.withTransaction(async () => {
        await db.collection<AnyDoc>("ledger").insertOne({ _id: "t5" }, { session });
      });
    } finally {
      await session.endSession();
    }
    const [first, retryable, second] = await entriesAfter(fx.client, before);
    expect([first.op, retryable.op, second.op]).toEqual(["c", "i", "c"]);
    expect(first.lsid).toEqual(second.lsid);
    expect(retryable.lsid).toEqual(first.lsid);
    const numbers = [first, retryable, second].map((e) => (e.txnNumber as Long).toNumber());
    expect(numbers[1]).toBe(numbers[0] + 1);
    expect(numbers[2]).toBe(numbers[1] + 1);
    expect(second.prevOpTime).toEqual(NULL_OPTIME);
    expect(retryable.stmtId).toEqual(new Int32(0));
  });
});
