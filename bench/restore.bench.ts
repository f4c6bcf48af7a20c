/**
 * Restore benchmarks. A head database of bench documents is written as a snapshot into the
 * blockstore of a server data directory and recorded in its catalog, as the daemon records one;
 * then `tidemark server` runs on that directory as its own process, and the real CLI
 * (`tidemark restore --snapshot ID --to URI --json`, default options: --parallel 4, verification
 * on) runs as another process into a fresh emulator process. Timed from spawning the CLI to its
 * exit; its peak RSS (VmHWM) and the server's are sampled from /proc while it runs.
 *
 * The baseline, in the same run: the official driver's insertMany of the same documents (the same
 * bytes: both targets' dbHash equal the snapshot's MD5) into another fresh emulator process with
 * the same flags, ordered: false, 1000 documents a call, 4 calls in flight (the restore's
 * --parallel). throughput_ratio = restore MB/s ÷ insertMany MB/s. Restore and baseline alternate
 * ROUNDS times; the fastest of each counts.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Long, serialize, Timestamp, UUID } from "bson";
import { MongoClient } from "mongodb";
import { Catalog } from "../src/catalog/index.js";
import { rememberStore } from "../src/daemon/groom.js";
import { completionOf } from "../src/daemon/snapshots.js";
import { HeadDatabase } from "../src/headdb/headDatabase.js";
import { SnapshotSchedule } from "../src/snapshot/policy.js";
import { openBlockStore } from "../src/snapshot/stores/index.js";
import { writeSnapshot } from "../src/snapshot/writer.js";
import { benchDocument, benchDocumentCount } from "./emulator.bench.js";
import { BENCH_ADMIN_KEY, spawnCli, startServerProcess, stopProcess, type CliProcess } from "./cliProcess.js";
import { cpuSecondsOf, mainThreadCpuSecondsOf, startEmulatorProcess } from "./emulatorProcess.js";
import { round, type Figure } from "./figures.js";
import { memoryOf } from "./initialSync.bench.js";

const MB = 1024 * 1024;
const DB = "bench";
const COLLECTION = "docs";
/** Documents per head database write while building the snapshot. */
const HEAD_BATCH = 5000;
/** The baseline's insertMany batch (about 1 MiB of bench documents)... */
const INSERT_BATCH = 1000;
/** ...and batches in flight at once: the restore's default --parallel. */
const INSERTS_IN_FLIGHT = 4;
/** Baseline documents are made this many at a time, outside the timed inserts (~64 MiB). */
const GENERATE_CHUNK = 65_536;
/**
 * Restore and baseline alternate this many times and the fastest of each counts: the machine
 * may be shared, and a stretch of someone else's work should not decide the ratio.
 */
const ROUNDS = 2;
/** How often the restore's and the server's memory are sampled. */
const SAMPLE_MS = 50;
/** Target emulators: the same flags for the restore's and the baseline's. */
const TARGET_ARGS = ["--oplog-size-mb", "64"];

interface BenchSnapshot {
  id: string;
  count: number;
  /** BSON bytes of the documents (the manifest's `bytes`). */
  bytes: number;
  md5: string;
}

/**
 * Fills a head database with `count` bench documents and writes it as a complete on-demand
 * snapshot into `<dataDir>/blockstore.sqlite`, recorded in `<dataDir>/catalog.sqlite` with the
 * blocks it refers to, as SnapshotService.take does (the server is not running yet).
 */
async function buildSnapshot(dataDir: string, headPath: string, count: number): Promise<BenchSnapshot> {
  const head = HeadDatabase.open({ path: headPath });
  const catalog = Catalog.open(join(dataDir, "catalog.sqlite"));
  const blocks = await openBlockStore("blockstore", { dataDir });
  try {
    const uuid = new UUID();
    head.write(() => head.createCollection({ uuid, db: DB, name: COLLECTION }));
    for (let i = 0; i < count; i += HEAD_BATCH) {
      const docs = Array.from({ length: Math.min(HEAD_BATCH, count - i) }, (_, k) =>
        serialize(benchDocument(i + k)),
      );
      head.write(() => head.insertDocuments(uuid, docs));
    }
    // As if the daemon had applied the oplog up to now: a snapshot is taken at an applied optime.
    const ts = Timestamp.fromBits(1, Math.floor(Date.now() / 1000));
    head.write(() => head.state.setAppliedOptime({ ts, t: Long.fromNumber(1) }));

    const deployment = catalog.deployments.create("bench", "bench-agent-key-hash");
    rememberStore(catalog, blocks.location);
    const record = catalog.snapshots.create({
      deploymentId: deployment.id,
      deploymentName: deployment.name,
      trigger: "on_demand",
      store: blocks.location,
      storeKind: "blockstore",
      generation: deployment.generation,
      expiresAt: Date.now() + 7 * 86_400_000,
    });
    const written = await writeSnapshot({
      snapshotId: record.id,
      deploymentId: deployment.id,
      deploymentName: deployment.name,
      head,
      target: { kind: "blockstore", blocks },
      chain: SnapshotSchedule.parse({}),
      referBlocks: (hashes) => catalog.snapshots.referBlocks(record.id, blocks.location, hashes),
    });
    catalog.snapshots.complete(record.id, completionOf(written, ["on_demand"]));
    const [collection] = written.manifest.collections;
    if (collection?.count !== count || collection.md5 === null)
      throw new Error(`bench snapshot holds ${collection?.count} documents, not ${count}`);
    return { id: record.id, count, bytes: collection.bytes, md5: collection.md5 };
  } finally {
    await blocks.close();
    catalog.close();
    await head.close();
  }
}

interface RestoreRun {
  seconds: number;
  /** Peak RSS (VmHWM) of the restore CLI process, MiB. */
  cliPeakRssMb: number;
  /** The server's RSS before the restore and its peak (VmHWM) by the restore's end, MiB. */
  serverRssBeforeMb: number;
  serverPeakRssMb: number;
  /** CPU seconds each process spent on the restore: where the time goes on a shared machine. */
  cpu: { cli: number; server: number; target: number; targetMain: number };
}

/** `tidemark restore --snapshot ID --to URI --json` into a fresh emulator process. */
async function timedRestore(
  server: CliProcess & { url: string },
  snapshot: BenchSnapshot,
): Promise<RestoreRun> {
  const target = await startEmulatorProcess(TARGET_ARGS);
  try {
    const serverPid = server.child.pid!;
    const serverRssBeforeMb = memoryOf(serverPid).peakRss;
    const serverCpuBefore = cpuSecondsOf(serverPid);
    const targetCpuBefore = cpuSecondsOf(target.child.pid!);
    const targetMainBefore = mainThreadCpuSecondsOf(target.child.pid!);
    const started = performance.now();
    const restore = spawnCli(["restore", "--snapshot", snapshot.id, "--to", target.uri, "--json"], {
      ...process.env,
      TIDEMARK_URL: server.url,
      TIDEMARK_API_KEY: BENCH_ADMIN_KEY,
    });
    // VmHWM is a high-water mark: the last sample before the exit holds the peak (bar the last
    // SAMPLE_MS). /proc/<pid> goes once the process is reaped, so a sample may find it gone.
    let cliPeakRssMb = 0;
    let cliCpu = 0;
    const sample = () => {
      try {
        cliPeakRssMb = Math.max(cliPeakRssMb, memoryOf(restore.child.pid!).peakRss);
        cliCpu = cpuSecondsOf(restore.child.pid!);
      } catch {
        // exited between the check and the read
      }
    };
    const sampler = setInterval(sample, SAMPLE_MS);
    const code = await restore.exited;
    const seconds = (performance.now() - started) / 1000;
    clearInterval(sampler);
    if (code !== 0) throw new Error(`tidemark restore exited with code ${code}:\n${restore.tail.join("\n")}`);
    const result = JSON.parse(restore.stdout()) as {
      verified: boolean;
      collections: Array<{ namespace: string; documents: number; bytes: number }>;
    };
    const loaded = result.collections.find((c) => c.namespace === `${DB}.${COLLECTION}`);
    if (!result.verified || loaded?.documents !== snapshot.count || loaded.bytes !== snapshot.bytes)
      throw new Error(`the restore did not load the snapshot: ${restore.stdout()}`);
    return {
      seconds,
      cliPeakRssMb,
      serverRssBeforeMb,
      serverPeakRssMb: memoryOf(serverPid).peakRss,
      cpu: {
        cli: cliCpu,
        server: cpuSecondsOf(serverPid) - serverCpuBefore,
        target: cpuSecondsOf(target.child.pid!) - targetCpuBefore,
        targetMain: mainThreadCpuSecondsOf(target.child.pid!) - targetMainBefore,
      },
    };
  } finally {
    await target.stop();
  }
}

interface InsertManyRun {
  seconds: number;
  /** How long the target's dbHash of the collection took: what the restore's verification asks. */
  dbHashSeconds: number;
  /** CPU seconds of the timed inserts: this (the driver's) process and the target. */
  cpu: { client: number; target: number; targetMain: number };
}

/**
 * The baseline: insertMany of `benchDocument(0 .. count - 1)` (what the snapshot holds) into a
 * fresh emulator process, INSERT_BATCH documents a call, INSERTS_IN_FLIGHT calls at once,
 * ordered: false. The documents are made GENERATE_CHUNK at a time between timed stretches, so
 * only the driver and the target are timed. Then the target's dbHash (timed apart) must equal the
 * snapshot's MD5: both targets got the same bytes.
 */
async function timedInsertMany(snapshot: BenchSnapshot): Promise<InsertManyRun> {
  const target = await startEmulatorProcess(TARGET_ARGS);
  const client = new MongoClient(target.uri);
  try {
    await client.connect();
    const coll = client.db(DB).collection<Record<string, unknown>>(COLLECTION);
    let milliseconds = 0;
    let clientCpu = 0;
    const targetCpuBefore = cpuSecondsOf(target.child.pid!);
    const targetMainBefore = mainThreadCpuSecondsOf(target.child.pid!);
    for (let chunk = 0; chunk < snapshot.count; chunk += GENERATE_CHUNK) {
      const docs = Array.from({ length: Math.min(GENERATE_CHUNK, snapshot.count - chunk) }, (_, k) =>
        benchDocument(chunk + k),
      );
      const started = performance.now();
      const cpuStarted = process.cpuUsage();
      const inFlight = new Set<Promise<unknown>>();
      for (let i = 0; i < docs.length; i += INSERT_BATCH) {
        if (inFlight.size >= INSERTS_IN_FLIGHT) await Promise.race(inFlight);
        const insert = coll.insertMany(docs.slice(i, i + INSERT_BATCH), { ordered: false });
        inFlight.add(insert);
        void insert.then(
          () => inFlight.delete(insert),
          () => {},
        );
      }
      await Promise.all(inFlight);
      milliseconds += performance.now() - started;
      const used = process.cpuUsage(cpuStarted);
      clientCpu += (used.user + used.system) / 1e6;
    }
    const targetCpu = cpuSecondsOf(target.child.pid!) - targetCpuBefore;
    const targetMain = mainThreadCpuSecondsOf(target.child.pid!) - targetMainBefore;
    const hashStarted = performance.now();
    const hash = await client.db(DB).command({ dbHash: 1, collections: [COLLECTION] });
    const dbHashSeconds = (performance.now() - hashStarted) / 1000;
    const md5 = (hash.collections as Record<string, string>)[COLLECTION];
    if (md5 !== snapshot.md5)
      throw new Error(`the baseline's target holds other data (dbHash ${md5}, snapshot ${snapshot.md5})`);
    return {
      seconds: milliseconds / 1000,
      dbHashSeconds,
      cpu: { client: clientCpu, target: targetCpu, targetMain },
    };
  } finally {
    await client.close();
    await target.stop();
  }
}

export async function restoreBench(options: { totalBytes: number }): Promise<Figure[]> {
  const dir = mkdtempSync(join(tmpdir(), "tidemark-bench-restore-"));
  const dataDir = join(dir, "server");
  let server: (CliProcess & { url: string }) | undefined;
  try {
    const snapshot = await buildSnapshot(dataDir, join(dir, "head"), benchDocumentCount(options.totalBytes));
    rmSync(join(dir, "head"), { recursive: true, force: true });
    server = await startServerProcess(dataDir);
    const restores: RestoreRun[] = [];
    const inserts: InsertManyRun[] = [];
    for (let pass = 0; pass < ROUNDS; pass++) {
      restores.push(await timedRestore(server, snapshot));
      inserts.push(await timedInsertMany(snapshot));
    }
    const fastestRestore = restores.reduce((a, b) => (b.seconds < a.seconds ? b : a));
    const fastestInsert = inserts.reduce((a, b) => (b.seconds < a.seconds ? b : a));
    const restoreSeconds = fastestRestore.seconds;
    const insertSeconds = fastestInsert.seconds;
    const restoreMbPerS = snapshot.bytes / MB / restoreSeconds;
    const insertMbPerS = snapshot.bytes / MB / insertSeconds;
    const serverPeak = Math.max(...restores.map((r) => r.serverPeakRssMb));
    return [
      { name: "restore.data_mb", value: round(snapshot.bytes / MB, 0), unit: "MB" },
      { name: "restore.throughput_mb_per_s", value: round(restoreMbPerS), unit: "MB/s" },
      { name: "restore.insert_many_mb_per_s", value: round(insertMbPerS), unit: "MB/s" },
      { name: "restore.throughput_ratio", value: round(restoreMbPerS / insertMbPerS, 3), unit: "ratio" },
      // The restore ends with a dbHash of every collection on the target (its verification),
      // which the baseline does not do: the same dbHash on the baseline's target, timed alone.
      {
        name: "restore.target_dbhash_s",
        value: round(Math.min(...inserts.map((r) => r.dbHashSeconds))),
        unit: "s",
      },
      {
        name: "restore.rss_mb",
        value: round(Math.max(...restores.map((r) => r.cliPeakRssMb)), 0),
        unit: "MB",
      },
      { name: "restore.server_rss_mb", value: round(serverPeak, 0), unit: "MB" },
      {
        name: "restore.server_rss_growth_mb",
        value: round(serverPeak - restores[0].serverRssBeforeMb, 0),
        unit: "MB",
      },
      // Where the CPU went in the fastest of each (two cores are shared by all the processes).
      { name: "restore.cpu_s_cli", value: round(fastestRestore.cpu.cli), unit: "s" },
      { name: "restore.cpu_s_server", value: round(fastestRestore.cpu.server), unit: "s" },
      { name: "restore.cpu_s_target", value: round(fastestRestore.cpu.target), unit: "s" },
      { name: "restore.cpu_s_target_main_thread", value: round(fastestRestore.cpu.targetMain), unit: "s" },
      { name: "restore.insert_many_cpu_s_client", value: round(fastestInsert.cpu.client), unit: "s" },
      { name: "restore.insert_many_cpu_s_target", value: round(fastestInsert.cpu.target), unit: "s" },
      {
        name: "restore.insert_many_cpu_s_target_main_thread",
        value: round(fastestInsert.cpu.targetMain),
        unit: "s",
      },
      // restore.pitr_entries_per_s: bench/pointInTime.bench.ts.
    ];
  } finally {
    if (server) await stopProcess(server);
    rmSync(dir, { recursive: true, force: true });
  }
}
