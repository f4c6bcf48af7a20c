/**
 * Materialising a point in time (src/restore/pointInTime/materialize.ts) over a snapshot taken
 * while a large transaction was open: the snapshot records `heldFrom`, the restore reads the oplog
 * from there, and a target after the transaction's commit holds all of it, while a target before
 * it holds none; entries after the target are not applied. Real blockstore, oplog store and slices.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Long, serialize, Timestamp, UUID, type Document } from "bson";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sliceRecordOf, type SliceRecord } from "../../src/catalog/slices.js";
import { deserializeExact, HeadDatabase } from "../../src/headdb/index.js";
import { OplogApplier } from "../../src/oplog/apply/index.js";
import { openOplogStore } from "../../src/oplogstore/open.js";
import type { OplogStore } from "../../src/oplogstore/oplogStore.js";
import { materializePointInTime } from "../../src/restore/pointInTime/index.js";
import { encodeSlice, readSliceHeader } from "../../src/slice/format.js";
import type { SnapshotManifest } from "../../src/snapshot/manifest.js";
import { SnapshotSchedule } from "../../src/snapshot/policy.js";
import { openBlockStore, type BlockStore } from "../../src/snapshot/stores/index.js";
import { writeSnapshot } from "../../src/snapshot/writer.js";

const uuid = new UUID("22222222-2222-4222-8222-222222222222");
const at = (i: number) => new Timestamp({ t: 2000, i });
const NULL_OPTIME = { ts: new Timestamp({ t: 0, i: 0 }), t: Long.fromNumber(-1) };
const lsid = { id: new UUID("33333333-3333-4333-8333-333333333333") };

function entry(i: number, fields: Document): Buffer {
  return Buffer.from(
    serialize({ ts: at(i), t: Long.fromNumber(1), v: Long.fromNumber(2), wall: new Date(), ...fields }),
  );
}
const insert = (i: number, id: number) => entry(i, { op: "i", ns: "db.c", ui: uuid, o: { _id: id } });
const txn = (i: number, prev: number | null, o: Document) =>
  entry(i, {
    op: "c",
    ns: "admin.$cmd",
    lsid,
    txnNumber: Long.fromNumber(7),
    prevOpTime: prev === null ? NULL_OPTIME : { ts: at(prev), t: Long.fromNumber(1) },
    o,
  });

/** The oplog: a transaction begun before the snapshot (at 2) and committed after it (at 4). */
const OPLOG = [
  [
    insert(1, 1),
    txn(2, null, { applyOps: [{ op: "i", ns: "db.c", ui: uuid, o: { _id: 100 } }], partialTxn: true }),
  ],
  [insert(3, 2)],
  [
    txn(4, 2, { applyOps: [{ op: "i", ns: "db.c", ui: uuid, o: { _id: 101 } }], count: Long.fromNumber(2) }),
    insert(5, 3),
  ],
];

describe("materialising a point in time", () => {
  const dir = mkdtempSync(join(tmpdir(), "tidemark-materialize-"));
  let blocks: BlockStore;
  let oplog: OplogStore;
  let manifest: SnapshotManifest;
  const slices: SliceRecord[] = [];

  beforeAll(async () => {
    // The deployment's head database, at the snapshot (after slice 1): the transaction is held.
    const head = HeadDatabase.open({ path: join(dir, "head") });
    head.write(() => head.createCollection({ uuid, db: "db", name: "c" }));
    const applier = new OplogApplier(head);
    applier.applyBatch(OPLOG[0]);
    applier.applyBatch(OPLOG[1]);
    blocks = await openBlockStore(join(dir, "blockstore.sqlite"));
    ({ manifest } = await writeSnapshot({
      snapshotId: "s1",
      deploymentId: "d",
      deploymentName: "rs",
      head,
      target: { kind: "blockstore", blocks },
      chain: SnapshotSchedule.parse({}),
      referBlocks: () => {},
    }));
    await head.close();

    oplog = await openOplogStore(join(dir, "oplogstore"));
    for (const [sequence, part] of OPLOG.entries()) {
      const bytes = encodeSlice({ kind: "oplog", deployment: "d", stream: "oplog", sequence }, part);
      const storeKey = `d/g0/oplog/${sequence}.slice`;
      await oplog.put(storeKey, bytes);
      slices.push(
        sliceRecordOf(readSliceHeader(bytes), {
          deploymentId: "d",
          generation: 0,
          storeKey,
          bytes: bytes.length,
        }),
      );
    }
  });

  afterAll(async () => {
    await blocks?.close();
    await oplog?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const idsAt = async (name: string, targetI: number) => {
    const point = await materializePointInTime({
      path: join(dir, name),
      manifest,
      source: { kind: "blocks", blocks },
      oplog,
      slices,
      targetTs: { t: 2000, i: targetI },
    });
    try {
      return {
        ids: [...point.head.documents.scan(uuid)].map(({ raw }) =>
          Number((deserializeExact(raw)._id as { value: number }).value),
        ),
        ts: point.ts,
        entriesApplied: point.entriesApplied,
      };
    } finally {
      await point.head.close();
    }
  };

  it("records the open transaction's first entry in the manifest", () => {
    expect(manifest.ts).toEqual({ t: 2000, i: 3 });
    expect(manifest.heldFrom).toEqual({ t: 2000, i: 2 });
  });

  it("applies the whole transaction for a target after its commit, and nothing after the target", async () => {
    const after = await idsAt("after-commit", 4);
    expect(after.ids).toEqual([1, 2, 100, 101]);
    expect(after.ts).toEqual({ t: 2000, i: 4 });
    expect((await idsAt("everything", 5)).ids).toEqual([1, 2, 3, 100, 101]);
  });

  it("holds none of it at the snapshot's own ts", async () => {
    const atSnapshot = await idsAt("at-snapshot", 3);
    expect(atSnapshot.ids).toEqual([1, 2]);
    expect(atSnapshot.entriesApplied).toBe(0);
  });

  it("refuses slices with a gap between them", async () => {
    await expect(
      materializePointInTime({
        path: join(dir, "gap"),
        manifest,
        source: { kind: "blocks", blocks },
        oplog,
        slices: [slices[0], slices[2]],
        targetTs: { t: 2000, i: 5 },
      }),
    ).rejects.toThrow(/oplog slice #1 is missing/);
  });
});
