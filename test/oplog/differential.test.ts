/**
 * THE differential test: a seeded random workload runs on the emulator through the driver; at T0
 * a clone starts (catalog, then every collection in `_id` order, raw batches) while the workload
 * keeps writing; after the clone, more writes; then writes stop. A fresh head database gets the
 * clone and the oplog from T0 to the end, applied in random batches (each batch twice), and must
 * then equal the emulator: the emulator's own `dbHash` per database (collection hashes, UUIDs,
 * md5), collections, views, options and indexes, with no missing ids, held transactions or
 * detached collections left. A second head database gets a clone taken at the end, and the whole
 * oplog from T0 replayed over it: every operation applied over its own effects (idempotence).
 */
import { deserialize } from "bson";
import { Timestamp, type MongoClient } from "mongodb";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import type { HeadDatabase } from "../../src/headdb/headDatabase.js";
import { OplogApplier } from "../../src/oplog/apply/applier.js";
import { defaultNamespaceFilter } from "../../src/oplog/apply/context.js";
import { tempHead, type TempHead } from "../headdb/helpers.js";
import { withEmulator, type EmulatorFixture } from "../helpers/emulator.js";
import { newestTs } from "../helpers/oplog.js";
import { DifferentialCloner, type CloneResult } from "./differential/clone.js";
import { compareWithEmulator } from "./differential/compare.js";
import { Random } from "./differential/random.js";
import { Workload } from "./differential/workload.js";

/** Seeds 1..10, or 1..N with TIDEMARK_DIFFERENTIAL_SEEDS=N for a longer hunt. */
const SEEDS = Array.from({ length: Number(process.env.TIDEMARK_DIFFERENTIAL_SEEDS ?? 10) }, (_, i) => i + 1);
const STEPS_BEFORE_T0 = 600;
const STEPS_AFTER_CLONE = 300;

async function oplogFrom(client: MongoClient, t0: Timestamp): Promise<Buffer[]> {
  const docs = await client
    .db("local")
    .collection("oplog.rs")
    .find({ ts: { $gte: t0 } }, { raw: true, sort: { $natural: 1 } })
    .toArray();
  return docs.map((doc) => Buffer.from(doc as unknown as Uint8Array));
}

function load(head: HeadDatabase, clone: CloneResult): void {
  head.write(() => {
    for (const { db, entry } of clone.catalog)
      if (defaultNamespaceFilter(db, entry.name as string)) head.importCatalogEntry(db, entry);
    for (const { uuid, docs } of clone.documents)
      if (head.catalog.collection(uuid)) head.insertDocuments(uuid, docs);
  });
}

/**
 * Applies `entries` in random batches of 1..40, each batch twice (the second must change nothing);
 * returns how many `_id`s went to the missing set on the way.
 */
function applyInBatches(head: HeadDatabase, entries: Buffer[], rng: Random): number {
  const applier = new OplogApplier(head);
  let missing = 0;
  for (let at = 0; at < entries.length;) {
    const batch = entries.slice(at, at + 1 + rng.int(40));
    at += batch.length;
    const first = applier.applyBatch(batch);
    expect(first.applied + first.skipped).toBe(batch.length);
    missing += first.missingRecorded;
    const again = applier.applyBatch(batch);
    expect(again.skipped).toBe(batch.length);
  }
  return missing;
}

/** Entry kinds (op, or c:<command>) seen from T0 over all seeds. */
const seenKinds = new Set<string>();
let seedsRun = 0;

let fixture: EmulatorFixture | undefined;
const heads: TempHead[] = [];
afterEach(async () => {
  for (const temp of heads.splice(0)) await temp.dispose();
  await fixture?.close();
  fixture = undefined;
});

describe("differential: head database vs the emulator's dbHash", () => {
  afterAll(() => {
    // Over all seeds, the oplog windows held every kind of entry the workload is meant to make.
    if (seedsRun < SEEDS.length) return;
    for (const kind of [
      "i",
      "u",
      "d",
      "c:create",
      "c:drop",
      "c:dropDatabase",
      "c:renameCollection",
      "c:collMod",
      "c:createIndexes",
      "c:startIndexBuild",
      "c:commitIndexBuild",
      "c:dropIndexes",
      "c:applyOps",
    ])
      expect(seenKinds, kind).toContain(kind);
  });

  it.each(SEEDS)(
    "seed %i",
    async (seed) => {
      fixture = await withEmulator({ oplogSizeMb: 1024, noopIntervalSeconds: 3600 });
      const { client } = fixture;
      const rng = new Random(seed);
      const workload = new Workload(client, rng);
      await workload.refresh();
      await workload.run(STEPS_BEFORE_T0);

      const t0 = await newestTs(client);
      workload.freshNamesOnly = true;
      const clone = await new DifferentialCloner(client, () => workload.run(rng.int(6)), 2).run();
      workload.freshNamesOnly = false;
      await workload.run(STEPS_AFTER_CLONE);
      const entries = await oplogFrom(client, t0);

      const fuzzy = tempHead();
      heads.push(fuzzy);
      load(fuzzy.head, clone);
      const missingFuzzy = applyInBatches(fuzzy.head, entries, rng);
      expect(await compareWithEmulator(client, fuzzy.head)).toEqual([]);

      const atEnd = tempHead();
      heads.push(atEnd);
      load(atEnd.head, await new DifferentialCloner(client, async () => {}, 100).run());
      const missingAtEnd = applyInBatches(atEnd.head, entries, rng);
      expect(await compareWithEmulator(client, atEnd.head)).toEqual([]);

      // The workload must have exercised what it is meant to.
      expect(workload.counts.ok).toBeGreaterThan(STEPS_BEFORE_T0);
      for (const raw of entries) {
        const op = deserialize(raw);
        seenKinds.add(op.op === "c" ? `c:${Object.keys(op.o)[0]}` : op.op);
      }
      seedsRun++;
      console.info(
        `seed ${seed}: ${entries.length} entries from T0, workload ${workload.counts.ok} ok / ${workload.counts.failed} failed, ` +
          `clone ${clone.documents.reduce((n, c) => n + c.docs.length, 0)} documents, ${clone.relocations} relocations, ` +
          `missing ids recorded ${missingFuzzy} (clone at T0) / ${missingAtEnd} (clone at the end)`,
      );
    },
    180_000,
  );
});
