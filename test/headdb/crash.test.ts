/**
 * Crash safety at the library level. A child process applies an oplog to a head database, one
 * batch (slice) per write transaction, and is killed with SIGKILL at random moments; the parent
 * reopens the environment each time and checks that it holds exactly the state after the last
 * committed batch (slice cursor, applied optime, every database's dbHash, missing ids, held
 * transaction entries, catalog), then lets a new child resume after the slice cursor. The
 * oplog has large transactions whose partialTxn chains cross batch boundaries.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Int32, Long, Timestamp, UUID, type Document } from "bson";
import { afterAll, describe, expect, it } from "vitest";
import { HeadDatabase } from "../../src/headdb/headDatabase.js";
import { OplogApplier } from "../../src/oplog/apply/applier.js";
import { Random } from "../oplog/differential/random.js";
import { entry, type EntryWithoutTs } from "../oplog/entries.js";

const BATCH = 150;
const here = path.dirname(fileURLToPath(import.meta.url));
const work = mkdtempSync(path.join(tmpdir(), "tidemark-crash-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** A deterministic oplog: CRUD on three collections, drops and re-creates, chained transactions. */
function workload(): Buffer[] {
  const rng = new Random(42);
  const uuids = [new UUID(), new UUID(), new UUID()];
  const names = ["a", "b", "c"];
  const entries: Buffer[] = [];
  let ts = 1000;
  const add = (fields: EntryWithoutTs) => entries.push(entry({ ...fields, ts: ts++ }));
  const padding = "x".repeat(1500);
  uuids.forEach((ui, i) => add({ op: "c", ns: "crash.$cmd", ui, o: { create: names[i] } }));
  let txn = 0;
  while (entries.length < 6000) {
    const c = rng.int(3);
    const ns = `crash.${names[c]}`;
    const ui = uuids[c];
    const id = rng.int(300);
    const roll = rng.next();
    if (roll < 0.45) add({ op: "i", ns, ui, o: { _id: id, n: new Int32(rng.int(100)), padding } });
    else if (roll < 0.8)
      add({
        op: "u",
        ns,
        ui,
        o: { $v: new Int32(2), diff: { u: { n: new Int32(rng.int(100)) }, i: { at: ts } } },
        o2: { _id: id },
      });
    else if (roll < 0.93) add({ op: "d", ns, ui, o: { _id: id } });
    else if (roll < 0.94) {
      // Drop and re-create under a new UUID.
      add({ op: "c", ns: "crash.$cmd", ui, o: { drop: names[c] } });
      uuids[c] = new UUID();
      add({ op: "c", ns: "crash.$cmd", ui: uuids[c], o: { create: names[c] } });
    } else {
      // A large transaction: a chain of partialTxn entries, then the last applyOps with count.
      const lsid = { id: new UUID() };
      const txnNumber = Long.fromNumber(++txn);
      const parts = 2 + rng.int(4);
      let prev = { ts: new Timestamp({ t: 0, i: 0 }), t: Long.fromNumber(-1) };
      for (let part = 0; part < parts; part++) {
        const ops = Array.from({ length: 3 }, () => ({
          op: "i",
          ns,
          ui,
          o: { _id: 1000 + rng.int(50), txn },
        }));
        const o: Document = { applyOps: ops };
        if (part < parts - 1) o.partialTxn = true;
        else o.count = Long.fromNumber(parts * 3);
        const at = ts;
        add({ op: "c", ns: "admin.$cmd", o, lsid, txnNumber, prevOpTime: prev });
        prev = { ts: new Timestamp({ t: at, i: 1 }), t: Long.fromNumber(1) };
      }
    }
  }
  return entries;
}

/** Everything the resume depends on, as one comparable value. */
function snapshot(head: HeadDatabase): Document {
  const databases = head.catalog.databases().map((db) => ({ db, hash: head.dbHash(db) }));
  return {
    cursor: head.state.sliceCursor("oplog") ?? -1,
    optime: head.state.appliedOptime()?.ts.toString(),
    databases: databases.map(({ db, hash }) => ({ db, md5: hash.md5, collections: hash.collections })),
    missing: [...head.missing.list()].map((m) => m.idKey.toString("hex")),
    pending: head.pending.transactions().map((id) => [id, head.pending.entries(id).length]),
    catalog: head.catalog.collections().map((r) => `${r.db}.${r.name}:${r.uuid.toHexString()}`),
  };
}

/** Runs the child; kills it `killAfterMs` after it starts applying (its "start" line). */
function runChild(
  dir: string,
  file: string,
  killAfterMs: number,
): Promise<{ done: boolean; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(here, "crashChild.mjs"), dir, file, String(BATCH)], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    let errors = "";
    let timer: NodeJS.Timeout | undefined;
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
      output += chunk;
      if (!timer && output.includes("start")) timer = setTimeout(() => child.kill("SIGKILL"), killAfterMs);
    });
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (errors += chunk));
    child.on("error", reject);
    child.on("exit", (code, signal) => {
      clearTimeout(timer);
      if (signal === "SIGKILL" || code === 0) resolve({ done: output.includes("done\n"), output });
      else reject(new Error(`child exited with ${code}: ${errors}`));
    });
  });
}

describe("crash safety", () => {
  it("a head database killed at random moments always reopens at a committed batch and resumes exactly", async () => {
    const entries = workload();
    const file = path.join(work, "oplog.bson");
    writeFileSync(file, Buffer.concat(entries));
    const batches = Math.ceil(entries.length / BATCH);

    // The reference: the state after each batch, applied in-process.
    const referenceDir = path.join(work, "reference");
    const reference = HeadDatabase.open({ path: referenceDir, noSync: true });
    const applier = new OplogApplier(reference, { include: () => true });
    const expected: Document[] = [snapshot(reference)];
    for (let batch = 0; batch < batches; batch++) {
      applier.applyBatch(entries.slice(batch * BATCH, (batch + 1) * BATCH), {
        sliceCursor: { stream: "oplog", sequence: batch },
      });
      expected.push(snapshot(reference));
    }
    await reference.close();
    // Chains do cross batches: some states hold transaction entries.
    expect(expected.some((state) => (state.pending as unknown[]).length > 0)).toBe(true);

    const dir = path.join(work, "crashing");
    const rng = new Random(7);
    const seen = new Set<number>();
    let kills = 0;
    // A busy machine commits fewer batches per millisecond: a kill that found no progress waits
    // longer the next time, so the kills still spread over the batches.
    let stalls = 0;
    let previous = -2;
    for (let attempt = 0; attempt < 40; attempt++) {
      const { done } = await runChild(dir, file, rng.int(120) + stalls * 60);
      const head = HeadDatabase.open({ path: dir });
      const state = snapshot(head);
      await head.close();
      const cursor = state.cursor as number;
      expect(state).toEqual(expected[cursor + 1]);
      seen.add(cursor);
      if (done) break;
      kills++;
      stalls = cursor === previous ? stalls + 1 : 0;
      previous = cursor;
    }
    // The last run is not killed.
    expect((await runChild(dir, file, 3_600_000)).done).toBe(true);
    const head = HeadDatabase.open({ path: dir });
    expect(snapshot(head)).toEqual(expected[batches]);
    await head.close();
    expect(kills).toBeGreaterThan(2);
    expect(seen.size).toBeGreaterThan(5);
  }, 120_000);
});
