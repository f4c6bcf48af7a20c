/**
 * Point-in-time restore benchmark: a snapshot of bench documents in a blockstore, then oplog
 * slices of updates (a `$v: 2` diff setting a field, spread over the documents) and inserts in a
 * file system oplog store, materialised as a restore does it (`materializePointInTime`: the
 * snapshot loaded into a temporary head database, then the slices read, checked and applied up to
 * the target). Reported: oplog entries applied per second (`restore.pitr_entries_per_s`), and its
 * ratio to the bare applier on the same entries already in memory, in the same run.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Long, serialize, Timestamp, UUID } from "bson";
import { sliceRecordOf, type SliceRecord } from "../src/catalog/slices.js";
import { HeadDatabase } from "../src/headdb/headDatabase.js";
import { OplogApplier } from "../src/oplog/apply/index.js";
import { openOplogStore } from "../src/oplogstore/open.js";
import { materializePointInTime } from "../src/restore/pointInTime/index.js";
import { encodeSlice, readSliceHeader } from "../src/slice/format.js";
import { SnapshotSchedule } from "../src/snapshot/policy.js";
import { openBlockStore } from "../src/snapshot/stores/index.js";
import { writeSnapshot } from "../src/snapshot/writer.js";
import { benchDocument } from "./emulator.bench.js";
import { round, type Figure } from "./figures.js";

const ENTRIES_PER_SLICE = 10_000;
const INSERT_BATCH = 5000;

/** The oplog after the snapshot: updates of existing documents, one insert in ten. */
function oplogEntries(uuid: UUID, documents: number, entries: number, fromSecond: number): Buffer[] {
  const out: Buffer[] = [];
  for (let k = 0; k < entries; k++) {
    const ts = new Timestamp({ t: fromSecond + Math.floor(k / 1000), i: (k % 1000) + 1 });
    const common = {
      ts,
      t: Long.fromNumber(1),
      v: Long.fromNumber(2),
      wall: new Date(ts.t * 1000),
      ns: "bench.orders",
      ui: uuid,
    };
    out.push(
      Buffer.from(
        serialize(
          k % 10 === 9
            ? { ...common, op: "i", o: benchDocument(documents + k) }
            : {
                ...common,
                op: "u",
                o: { $v: 2, diff: { u: { total: k * 0.5 } } },
                o2: { _id: (k * 7919) % documents },
              },
        ),
      ),
    );
  }
  return out;
}

/** A head database holding bench documents 0 .. documents - 1 in bench.orders. */
function benchHead(path: string, uuid: UUID, documents: number): HeadDatabase {
  const head = HeadDatabase.open({ path });
  head.write(() => head.createCollection({ uuid, db: "bench", name: "orders" }));
  for (let i = 0; i < documents; i += INSERT_BATCH) {
    const batch = Array.from({ length: Math.min(INSERT_BATCH, documents - i) }, (_, k) =>
      serialize(benchDocument(i + k)),
    );
    head.write(() => head.insertDocuments(uuid, batch));
  }
  return head;
}

export async function pointInTimeBench(options: { totalBytes: number; entries: number }): Promise<Figure[]> {
  const dir = mkdtempSync(join(tmpdir(), "tidemark-bench-pitr-"));
  try {
    const uuid = new UUID();
    const documents = Math.max(1000, Math.floor(options.totalBytes / 1024));
    const source = benchHead(join(dir, "source"), uuid, documents);
    const snapshotSecond = Math.floor(Date.now() / 1000) - 86_400;
    source.write(() =>
      source.state.setAppliedOptime({
        ts: new Timestamp({ t: snapshotSecond, i: 1 }),
        t: Long.fromNumber(1),
      }),
    );
    const blocks = await openBlockStore(join(dir, "blockstore.sqlite"));
    const { manifest } = await writeSnapshot({
      snapshotId: "bench-pitr",
      deploymentId: "bench",
      deploymentName: "bench",
      head: source,
      target: { kind: "blockstore", blocks },
      chain: SnapshotSchedule.parse({}),
      referBlocks: () => {},
    });
    await source.close();

    const entries = oplogEntries(uuid, documents, options.entries, snapshotSecond + 1);
    const oplog = await openOplogStore(join(dir, "oplogstore"));
    const slices: SliceRecord[] = [];
    for (let k = 0; k * ENTRIES_PER_SLICE < entries.length; k++) {
      const part = entries.slice(k * ENTRIES_PER_SLICE, (k + 1) * ENTRIES_PER_SLICE);
      const bytes = encodeSlice({ kind: "oplog", deployment: "bench", stream: "oplog", sequence: k }, part);
      const key = `bench/g0/oplog/${String(k).padStart(10, "0")}.slice`;
      await oplog.put(key, bytes);
      slices.push(
        sliceRecordOf(readSliceHeader(bytes), {
          deploymentId: "bench",
          generation: 0,
          storeKey: key,
          bytes: bytes.length,
        }),
      );
    }

    let applyStarted = 0;
    const started = performance.now();
    const point = await materializePointInTime({
      path: join(dir, "restore"),
      manifest,
      source: { kind: "blocks", blocks },
      oplog,
      slices,
      targetTs: slices[slices.length - 1].lastTs!,
      onProgress: (p) => {
        if (p.stage === "applying_oplog" && applyStarted === 0) applyStarted = performance.now();
      },
    });
    const ended = performance.now();
    await point.head.close();
    const pitrPerS = point.entriesApplied / ((ended - applyStarted) / 1000);

    // The applier alone on the same entries, in memory, over a copy of the same snapshot.
    const bare = benchHead(join(dir, "bare"), uuid, documents);
    const applier = new OplogApplier(bare);
    const bareStarted = performance.now();
    for (let k = 0; k < entries.length; k += ENTRIES_PER_SLICE)
      applier.applyBatch(entries.slice(k, k + ENTRIES_PER_SLICE));
    const bareSeconds = (performance.now() - bareStarted) / 1000;
    await bare.close();
    await blocks.close();
    await oplog.close();
    const barePerS = entries.length / bareSeconds;
    return [
      { name: "restore.pitr_entries_per_s", value: Math.round(pitrPerS), unit: "entries/s" },
      { name: "restore.pitr_bare_applier_entries_per_s", value: Math.round(barePerS), unit: "entries/s" },
      { name: "restore.pitr_apply_ratio", value: round(pitrPerS / barePerS), unit: "ratio" },
      {
        name: "restore.pitr_total_seconds",
        value: round((ended - started) / 1000),
        unit: `s (snapshot of ${documents} documents + ${entries.length} entries)`,
      },
    ];
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
