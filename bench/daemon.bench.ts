import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { serialize, UUID } from "bson";
import { open, type Database, type RootDatabase } from "lmdb";
import {
  MongoClient,
  type AnyBulkWriteOperation,
  type Collection,
  type CollectionInfo,
  type Timestamp,
} from "mongodb";
import { HeadDatabase } from "../src/headdb/headDatabase.js";
import { documentKey, idKeyOf, uuidBytes } from "../src/headdb/keys.js";
import { OplogApplier, OplogEntry } from "../src/oplog/apply/index.js";
import { decodeSlice } from "../src/slice/format.js";
import { SliceBuilder } from "../src/slice/sliceBuilder.js";
import { benchDocument, benchDocumentCount } from "./emulator.bench.js";
import { round, type Figure } from "./figures.js";

/**
 * Entries per applyBatch: the daemon applies one oplog slice per transaction, and under a steady
 * write load the agent closes an oplog slice every 5 s (--oplog-flush-seconds), so 5,000 is a
 * slice at 1,000 writes/s.
 */
const APPLY_BATCH = 5000;
/** Writes of the mixed workload at the default 1 GiB; fewer for a smaller TIDEMARK_BENCH_MB. */
const MAX_WORKLOAD_OPS = 100_000;
const WRITE_BATCH = 1000;

interface Timer {
  seconds: number;
  time<T>(action: () => T): T;
}

function timer(): Timer {
  return {
    seconds: 0,
    time(action) {
      const started = performance.now();
      try {
        return action();
      } finally {
        this.seconds += (performance.now() - started) / 1000;
      }
    },
  };
}

/**
 * The raw baseline: an LMDB environment opened as `HeadEnvironment.open` opens one (synchronous
 * commits, no event-turn batching) with the same `documents` store, written with plain putSync
 * inside transactionSync: what the head database would cost if it did nothing but store bytes.
 */
function openRawEnvironment(path: string): {
  root: RootDatabase<Buffer, Buffer>;
  documents: Database<Buffer, Buffer>;
} {
  const root = open<Buffer, Buffer>({
    path,
    keyEncoding: "binary",
    encoding: "binary",
    maxDbs: 8,
    eventTurnBatching: false,
  });
  return {
    root,
    documents: root.openDB<Buffer, Buffer>("documents", { keyEncoding: "binary", encoding: "binary" }),
  };
}

/** A small deterministic generator, so every run replays the same workload. */
function random(seed: number): (below: number) => number {
  let state = seed >>> 0;
  return (below) => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state % below;
  };
}

/** The fields the workload touches; the rest of a bench document is left alone. */
interface BenchDoc {
  _id: number;
  status?: string;
  visits?: number;
  "customer.city"?: string;
  items?: number[];
}

const STATUSES = ["pending", "paid", "shipped", "delivered", "returned"];
const CITIES = ["Lyon", "Porto", "Oslo", "Kyoto", "Lima", "Perth"];

/**
 * A mixed workload of small writes, as an application's steady traffic looks: mostly single-field
 * updates (the emulator logs them as MongoDB does, `$v:2` diffs: `{u: {status}}`, `{i: {visits}}`
 * then `{u: {visits}}`, a sub-diff for `customer.city`, an array diff for `$push`), some inserts
 * of new ~1 KiB documents and some deletes.
 */
async function runMixedWorkload(coll: Collection<BenchDoc>, existing: number, ops: number): Promise<void> {
  const next = random(42);
  let inserted = existing;
  for (let done = 0; done < ops; done += WRITE_BATCH) {
    const batch: AnyBulkWriteOperation<BenchDoc>[] = [];
    for (let k = 0; k < Math.min(WRITE_BATCH, ops - done); k++) {
      const pick = next(100);
      const filter = { _id: next(existing) };
      if (pick < 40)
        batch.push({ updateOne: { filter, update: { $set: { status: STATUSES[next(STATUSES.length)] } } } });
      else if (pick < 65) batch.push({ updateOne: { filter, update: { $inc: { visits: 1 } } } });
      else if (pick < 75)
        batch.push({
          updateOne: { filter, update: { $set: { "customer.city": CITIES[next(CITIES.length)] } } },
        });
      else if (pick < 80) batch.push({ updateOne: { filter, update: { $push: { items: next(100) } } } });
      else if (pick < 92)
        batch.push({ insertOne: { document: benchDocument(inserted++) as unknown as BenchDoc } });
      else batch.push({ deleteOne: { filter } });
    }
    await coll.bulkWrite(batch, { ordered: true });
  }
}

async function newestTs(client: MongoClient): Promise<Timestamp> {
  const [entry] = await client
    .db("local")
    .collection("oplog.rs")
    .find({}, { sort: { $natural: -1 }, limit: 1, projection: { ts: 1 } })
    .toArray();
  return entry.ts as Timestamp;
}

/**
 * The daemon's two inner loops against raw LMDB, measured in the same run and interleaved slice
 * by slice (so a burst of load on the machine hits both sides alike):
 *
 * - build: `HeadDatabase.insertDocuments` of each documents slice's raw BSON (cut by SliceBuilder
 *   as the agent cuts them, decoded as the daemon decodes them), one transaction per slice, vs.
 *   putSync of the same keys and values in the same transactions; in MB of BSON per second.
 * - apply: `OplogApplier.applyBatch` of the oplog the emulator wrote for a mixed workload, over
 *   the head database built above, vs. one putSync per entry (a document-sized value at the
 *   entry's document key) into the raw environment built alongside; in entries (puts) per second.
 *
 * `sourceUri` is the emulator loaded by `emulatorBench`: its collection UUID is the head
 * database's, so the oplog entries land on the documents built here.
 */
export async function daemonBench(options: { sourceUri: string; totalBytes: number }): Promise<Figure[]> {
  const dir = mkdtempSync(join(tmpdir(), "tidemark-bench-daemon-"));
  const client = new MongoClient(options.sourceUri);
  const head = HeadDatabase.open({ path: join(dir, "head") });
  const raw = openRawEnvironment(join(dir, "raw"));
  try {
    await client.connect();
    const [listed] = await client.db("bench").listCollections({ name: "docs" }).toArray();
    const uuid = new UUID(uuidBytes((listed as CollectionInfo).info!.uuid!));
    const uuidKey = uuidBytes(uuid);
    head.write(() => head.createCollection({ uuid, db: "bench", name: "docs" }));
    const count = benchDocumentCount(options.totalBytes);

    // Build.
    const buildHead = timer();
    const buildRaw = timer();
    let buildBytes = 0;
    let builtDocs = 0;
    let sequence = 0;
    const builder = new SliceBuilder({
      kind: "documents",
      deployment: "bench",
      stream: "documents/bench.docs",
    });
    const insertSlice = (slice: Buffer) => {
      const docs = [...decodeSlice(slice).documents()];
      const keys = docs.map((doc) => documentKey(uuidKey, idKeyOf(doc)));
      buildRaw.time(() =>
        raw.root.transactionSync(() => {
          for (let k = 0; k < docs.length; k++) raw.documents.putSync(keys[k], docs[k]);
        }),
      );
      const cursor = sequence++;
      buildHead.time(() =>
        head.write(() => {
          head.insertDocuments(uuid, docs);
          head.state.setSliceCursor("documents/bench.docs", cursor);
        }),
      );
      for (const doc of docs) buildBytes += doc.length;
      builtDocs += docs.length;
    };
    for (let i = 0; i < count; i++)
      for (const slice of builder.add(serialize(benchDocument(i)))) insertSlice(slice);
    for (const slice of builder.flush()) insertSlice(slice);

    // Apply.
    const coll = client.db("bench").collection<BenchDoc>("docs");
    const since = await newestTs(client);
    await runMixedWorkload(coll, count, Math.min(MAX_WORKLOAD_OPS, count));
    const entries = (await client
      .db("local")
      .collection("oplog.rs")
      .find({ ts: { $gt: since } }, { raw: true, batchSize: 10_000 })
      .toArray()) as unknown as Buffer[];
    const entryKeys = entries.map((bytes) => {
      const entry = new OplogEntry(bytes);
      const op = entry.op;
      if (op === "u") return documentKey(uuidKey, idKeyOf(entry.o2Bytes!));
      if (op === "i" || op === "d") return documentKey(uuidKey, idKeyOf(entry.oBytes!));
      return undefined;
    });
    const value = Buffer.alloc(Math.round(buildBytes / builtDocs), 0x61);
    const applier = new OplogApplier(head);
    // Steady state: once snapshots are taken, the applier also records each changed document.
    head.write(() => head.changes.startTracking());
    const applyHead = timer();
    const applyRaw = timer();
    let applied = 0;
    let rawPuts = 0;
    for (let from = 0, batch = 0; from < entries.length; from += APPLY_BATCH, batch++) {
      const keys = entryKeys.slice(from, from + APPLY_BATCH);
      applyRaw.time(() =>
        raw.root.transactionSync(() => {
          for (const key of keys) {
            if (!key) continue;
            raw.documents.putSync(key, value);
            rawPuts++;
          }
        }),
      );
      const result = applyHead.time(() =>
        applier.applyBatch(entries.slice(from, from + APPLY_BATCH), {
          sliceCursor: { stream: "oplog", sequence: batch },
        }),
      );
      applied += result.applied;
    }
    if (head.missing.count() !== 0)
      throw new Error(
        `the workload left ${head.missing.count()} missing documents: the head database is not the emulator's`,
      );

    const mb = (bytes: number) => bytes / 1024 / 1024;
    const buildMbPerSecond = mb(buildBytes) / buildHead.seconds;
    const rawMbPerSecond = mb(buildBytes) / buildRaw.seconds;
    const applyPerSecond = applied / applyHead.seconds;
    const rawPutsPerSecond = rawPuts / applyRaw.seconds;
    return [
      { name: "daemon.build_mb_per_s", value: round(buildMbPerSecond), unit: "MB/s" },
      { name: "daemon.raw_put_mb_per_s", value: round(rawMbPerSecond), unit: "MB/s" },
      { name: "daemon.build_ratio", value: round(buildMbPerSecond / rawMbPerSecond, 3), unit: "ratio" },
      { name: "daemon.apply_entries_per_s", value: round(applyPerSecond, 0), unit: "entries/s" },
      { name: "daemon.raw_put_ops_per_s", value: round(rawPutsPerSecond, 0), unit: "ops/s" },
      { name: "daemon.apply_ratio", value: round(applyPerSecond / rawPutsPerSecond, 3), unit: "ratio" },
    ];
  } finally {
    await client.close();
    await head.close();
    await raw.root.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
