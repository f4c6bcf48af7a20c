import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MongoClient, ObjectId } from "mongodb";
import { newestOplogOpTime } from "../src/agent/oplogQueries.js";
import { compareOpTimes } from "../src/protocol/optime.js";
import type { DeploymentView } from "../src/server/deploymentView.js";
import { benchDocumentCount, loadBenchDocuments } from "./emulator.bench.js";
import { BENCH_ADMIN_KEY, spawnCli, startServerProcess, stopProcess, type CliProcess } from "./cliProcess.js";
import { startEmulatorProcess } from "./emulatorProcess.js";
import { round, type Figure } from "./figures.js";

const GIB = 1024 * 1024 * 1024;
/** A run that takes this long is stuck, not slow. */
const DEADLINE_MS = 60 * 60 * 1000;

/** Peak and current memory of a process in MiB, from /proc/<pid>/status. */
export interface ProcessMemory {
  /** VmHWM: the peak resident set size since the process started. */
  peakRss: number;
  /** RssAnon: heap, stacks, buffers (what memory bounds are about). */
  anon: number;
  /** RssFile: mapped file pages, here mostly the head database's LMDB map (page cache). */
  file: number;
}

export function memoryOf(pid: number): ProcessMemory {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const mb = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+)`).exec(status)?.[1] ?? 0) / 1024;
  return { peakRss: mb("VmHWM"), anon: mb("RssAnon"), file: mb("RssFile") };
}

/**
 * The light write load of a live deployment during its initial sync: `$inc` updates of random
 * documents, inserts into a collection the clone may or may not have seen, a few deletes. One
 * client, one write at a time (about two hundred per second), so the oplog the daemon replays is
 * a live deployment's, not a flood.
 */
function startWriteLoad(client: MongoClient, documents: number): WriteLoad {
  let writing = true;
  const load: WriteLoad = {
    error: undefined,
    writes: 0,
    async stop() {
      writing = false;
      await done;
    },
  };
  const done = (async () => {
    const bench = client.db("bench");
    for (let i = 0; writing; i++) {
      await bench
        .collection("docs")
        .updateOne({ _id: (i * 7919) % documents } as never, { $inc: { visits: 1 } });
      load.writes++;
      if (i % 3 === 0) {
        await bench.collection("events").insertOne({ _id: new ObjectId(), n: i, at: new Date() });
        load.writes++;
      }
      if (i % 11 === 0) {
        await bench.collection("docs").deleteOne({ _id: (i * 104729) % documents } as never);
        load.writes++;
      }
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  })().catch((error: unknown) => {
    // Checked by the run's loop: without its load, the run would measure something else.
    load.error = error;
  });
  return load;
}

interface WriteLoad {
  error: unknown;
  writes: number;
  stop(): Promise<void>;
}

export interface InitialSyncRun {
  seconds: number;
  /** BSON bytes cloned. */
  dataBytes: number;
  /** The write load's rate during the run. */
  writesPerSecond: number;
  /** The server's peak RSS (VmHWM) and the peaks of its anonymous and file-backed parts, in MiB. */
  peakRssMb: number;
  peakAnonMb: number;
  peakFileMb: number;
}

/**
 * One initial sync end to end: a server process (with its daemon) and an agent process back up
 * the emulator at `sourceUri` while a light write load runs. Timed from `backup start` until the
 * job is `active` and the head database has applied the oplog up to the newest entry the
 * deployment had when the job became active (the write load goes on throughout).
 */
export async function initialSyncRun(sourceUri: string): Promise<InitialSyncRun> {
  const dataDir = mkdtempSync(join(tmpdir(), "tidemark-bench-sync-"));
  const client = new MongoClient(sourceUri);
  let server: (CliProcess & { url: string }) | undefined;
  let agent: CliProcess | undefined;
  let load: WriteLoad | undefined;
  try {
    await client.connect();
    server = await startServerProcess(dataDir);
    const { url } = server;
    const api = async <T>(method: string, path: string): Promise<T> => {
      const response = await fetch(`${url}${path}`, {
        method,
        headers: { authorization: `Bearer ${BENCH_ADMIN_KEY}` },
      });
      if (!response.ok)
        throw new Error(`${method} ${path}: HTTP ${response.status} ${await response.text()}`);
      return (await response.json()) as T;
    };
    const created = await fetch(`${url}/api/v1/deployments`, {
      method: "POST",
      headers: { authorization: `Bearer ${BENCH_ADMIN_KEY}`, "content-type": "application/json" },
      body: JSON.stringify({ name: "bench" }),
    });
    const { id, agentKey } = (await created.json()) as { id: string; agentKey: string };
    agent = spawnCli([
      "agent",
      "--server",
      url,
      "--key",
      agentKey,
      "--deployment",
      id,
      "--source",
      sourceUri,
    ]);
    const documents = await client.db("bench").collection("docs").estimatedDocumentCount();
    load = startWriteLoad(client, Math.max(1, documents));

    const serverPid = server.child.pid!;
    let peakAnonMb = 0;
    let peakFileMb = 0;
    const started = performance.now();
    await api("POST", `/api/v1/deployments/${id}/backup/start`);
    let target: Awaited<ReturnType<typeof newestOplogOpTime>>;
    let view: DeploymentView;
    while (true) {
      const memory = memoryOf(serverPid);
      peakAnonMb = Math.max(peakAnonMb, memory.anon);
      peakFileMb = Math.max(peakFileMb, memory.file);
      view = await api<DeploymentView>("GET", `/api/v1/deployments/${id}`);
      if (view.daemon.error) throw new Error(`daemon error: ${view.daemon.error}`);
      if (load.error) throw new Error("the write load failed", { cause: load.error });
      if (view.state === "active") {
        target ??= await newestOplogOpTime(client);
        if (view.head.appliedTs && target && compareOpTimes(view.head.appliedTs, target) >= 0) break;
      }
      for (const [name, child] of [
        ["server", server],
        ["agent", agent],
      ] as const)
        if (child.child.exitCode !== null)
          throw new Error(`the ${name} exited with code ${child.child.exitCode}:\n${child.tail.join("\n")}`);
      if (performance.now() - started > DEADLINE_MS)
        throw new Error(`no active job after ${DEADLINE_MS / 1000} s`);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    const seconds = (performance.now() - started) / 1000;
    return {
      seconds,
      dataBytes: view.phases[1].done,
      writesPerSecond: load.writes / seconds,
      peakRssMb: memoryOf(serverPid).peakRss,
      peakAnonMb,
      peakFileMb,
    };
  } finally {
    await load?.stop();
    if (agent) await stopProcess(agent);
    if (server) await stopProcess(server);
    await client.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

/** As `initialSyncRun`, of an emulator of its own loaded with `totalBytes` of bench documents. */
export async function initialSyncRunOfSize(totalBytes: number): Promise<InitialSyncRun> {
  const emulator = await startEmulatorProcess(["--oplog-size-mb", "64"]);
  try {
    const client = new MongoClient(emulator.uri);
    try {
      await client.connect();
      await loadBenchDocuments(client.db("bench").collection("docs"), benchDocumentCount(totalBytes));
    } finally {
      await client.close();
    }
    return await initialSyncRun(emulator.uri);
  } finally {
    await emulator.stop();
  }
}

/**
 * `large` at the bench size, `small` at a quarter of it. The server's anonymous memory is bounded
 * by slice sizes and uploads in flight, so it should be about the same in both; its file-backed
 * pages are mostly the head database's LMDB map (page cache the kernel can take back), which
 * follow the pages the daemon has touched, so they grow with the data.
 */
export function initialSyncFigures(large: InitialSyncRun, small: InitialSyncRun): Figure[] {
  return [
    {
      name: "initial_sync.seconds_per_gib",
      value: round(large.seconds / (large.dataBytes / GIB), 1),
      unit: "s/GiB",
    },
    { name: "initial_sync.data_mb", value: round(large.dataBytes / 1024 / 1024, 0), unit: "MB" },
    { name: "initial_sync.write_load_per_s", value: round(large.writesPerSecond, 0), unit: "writes/s" },
    { name: "daemon.rss_mb", value: round(large.peakRssMb, 0), unit: "MB" },
    { name: "daemon.rss_anon_mb", value: round(large.peakAnonMb, 0), unit: "MB" },
    { name: "daemon.rss_file_mb", value: round(large.peakFileMb, 0), unit: "MB" },
    { name: "daemon.rss_mb_small", value: round(small.peakRssMb, 0), unit: "MB" },
    { name: "daemon.rss_anon_mb_small", value: round(small.peakAnonMb, 0), unit: "MB" },
    { name: "daemon.rss_file_mb_small", value: round(small.peakFileMb, 0), unit: "MB" },
    { name: "initial_sync.data_mb_small", value: round(small.dataBytes / 1024 / 1024, 0), unit: "MB" },
  ];
}
