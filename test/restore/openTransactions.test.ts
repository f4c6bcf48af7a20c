/**
 * Transactions open at a snapshot (src/restore/pointInTime/openTransactions.ts): among the oplog
 * entries from the snapshot's `heldFrom` to its ts, exactly the entries of the chains not ended by
 * then are handed to the applier, so a commit after the snapshot finds its chain. Then a head
 * database replays such a chain across the snapshot's ts the way a restore does.
 */
import { Long, serialize, Timestamp, UUID, type Document } from "bson";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { HeadDatabase } from "../../src/headdb/index.js";
import { OplogApplier, OplogEntry } from "../../src/oplog/apply/index.js";
import { openTransactionEntries } from "../../src/restore/pointInTime/index.js";

const NULL_OPTIME = { ts: new Timestamp({ t: 0, i: 0 }), t: Long.fromNumber(-1) };
const lsid = (n: number) => ({ id: new UUID(`00000000-0000-4000-8000-00000000000${n}`) });
const uuid = new UUID("11111111-1111-4111-8111-111111111111");
const at = (i: number) => new Timestamp({ t: 1000, i });
const optime = (i: number) => ({ ts: at(i), t: Long.fromNumber(1) });

function entry(i: number, fields: Document): Buffer {
  return Buffer.from(
    serialize({ ts: at(i), t: Long.fromNumber(1), v: Long.fromNumber(2), wall: new Date(), ...fields }),
  );
}
const insert = (id: number) => ({ op: "i", ns: "db.c", ui: uuid, o: { _id: id } });
/** An applyOps of session `n`, txnNumber 1, pointing at `prev` (an increment, or null). */
function txn(i: number, n: number, prev: number | null, o: Document): Buffer {
  return entry(i, {
    op: "c",
    ns: "admin.$cmd",
    lsid: lsid(n),
    txnNumber: Long.fromNumber(1),
    prevOpTime: prev === null ? NULL_OPTIME : optime(prev),
    o,
  });
}
const tsOf = (raw: Buffer) => new OplogEntry(raw).ts!.i;

describe("transactions open at a snapshot", () => {
  it("keeps only the chains not ended by the last entry, in oplog order", () => {
    const entries = [
      txn(1, 1, null, { applyOps: [insert(1)], partialTxn: true }), // ends at 4
      txn(2, 2, null, { applyOps: [insert(2)], partialTxn: true }), // open
      entry(3, insert(3)),
      txn(4, 1, 1, { applyOps: [insert(4)], count: Long.fromNumber(2) }),
      txn(5, 3, null, { applyOps: [insert(5)], prepare: true }), // prepared, open
      txn(6, 2, 2, { applyOps: [insert(6)], partialTxn: true }),
      txn(7, 4, 6, { applyOps: [insert(7)], partialTxn: true }), // began before: left out
      txn(8, 5, null, { applyOps: [insert(8)], prepare: true }),
      txn(9, 5, 8, { abortTransaction: 1 }), // aborted
    ];
    expect(openTransactionEntries(entries).map(tsOf)).toEqual([2, 5, 6]);
  });

  let dir: string | undefined;
  afterEach(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("lets a head database apply a transaction that began before the snapshot and commits after it", async () => {
    dir = mkdtempSync(join(tmpdir(), "tidemark-open-txn-"));
    const head = HeadDatabase.open({ path: dir });
    try {
      head.write(() => head.createCollection({ uuid, db: "db", name: "c" }));
      const before = [txn(1, 2, null, { applyOps: [insert(1)], partialTxn: true }), entry(2, insert(2))];
      const after = [txn(3, 2, 1, { applyOps: [insert(3)], count: Long.fromNumber(2) })];
      const applier = new OplogApplier(head);
      // The snapshot at increment 2 holds document 2; the held entry is handed over first.
      head.write(() => head.insertDocuments(uuid, [serialize({ _id: 2 })]));
      applier.applyBatch(openTransactionEntries(before));
      applier.applyBatch(after);
      expect([...head.documents.scan(uuid)].length).toBe(3);
      // Without the held entry the commit is refused, never applied halfway.
      const fresh = HeadDatabase.open({ path: join(dir, "fresh") });
      fresh.write(() => fresh.createCollection({ uuid, db: "db", name: "c" }));
      expect(() => new OplogApplier(fresh).applyBatch(after)).toThrow(/prevOpTime/);
      await fresh.close();
    } finally {
      await head.close();
    }
  });
});
