import { mkdirSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { cloneBench } from "./clone.bench.js";
import { daemonBench } from "./daemon.bench.js";
import { emulatorBench } from "./emulator.bench.js";
import {
  initialSyncFigures,
  initialSyncRun,
  initialSyncRunOfSize,
  type InitialSyncRun,
} from "./initialSync.bench.js";
import { pointInTimeBench } from "./pointInTime.bench.js";
import { restoreBench } from "./restore.bench.js";
import { sliceBench } from "./slice.bench.js";
import { snapshotBench } from "./snapshot.bench.js";
import type { Figure } from "./figures.js";

/**
 * `npm run bench`: runs every benchmark and writes bench/results/latest.json. TIDEMARK_BENCH_MB
 * sets the data size (default 1024, as the issues ask); smaller is handy on a busy machine.
 */
async function main(): Promise<void> {
  const megabytes = Number(process.env.TIDEMARK_BENCH_MB ?? 1024);
  const totalBytes = megabytes * 1024 * 1024;
  const figures: Figure[] = [];
  const add = (more: Figure[]) => {
    for (const figure of more) {
      figures.push(figure);
      process.stdout.write(`${figure.name} ${figure.value} ${figure.unit}\n`);
    }
  };
  // TIDEMARK_BENCH_ONLY=snapshot runs just that benchmark (it needs no emulator).
  if (process.env.TIDEMARK_BENCH_ONLY === "snapshot") {
    add(await snapshotBench({ totalBytes: Math.min(totalBytes, SNAPSHOT_BENCH_BYTES) }));
    return write(figures, "snapshot");
  }
  // TIDEMARK_BENCH_ONLY=restore runs just the restore benchmark (its own server and emulators).
  if (process.env.TIDEMARK_BENCH_ONLY === "restore") {
    add(await restoreBench({ totalBytes }));
    add(await pointInTimeBench(POINT_IN_TIME_BENCH));
    return write(figures, "restore");
  }
  const loaded = await emulatorBench({ totalBytes });
  add(loaded.figures);
  let initialSync: InitialSyncRun;
  try {
    add(await cloneBench({ sourceUri: loaded.emulator.uri, scanBytesPerSecond: loaded.scanBytesPerSecond }));
    add(await daemonBench({ sourceUri: loaded.emulator.uri, totalBytes }));
    initialSync = await initialSyncRun(loaded.emulator.uri);
  } finally {
    await loaded.emulator.stop();
  }
  // A quarter of the data, on an emulator of its own: the server's anonymous memory should not
  // follow the data (see initialSyncFigures).
  add(initialSyncFigures(initialSync, await initialSyncRunOfSize(totalBytes / 4)));
  add(sliceBench({ totalBytes: Math.min(totalBytes, 256 * 1024 * 1024) }));
  add(await snapshotBench({ totalBytes: Math.min(totalBytes, SNAPSHOT_BENCH_BYTES) }));
  add(await restoreBench({ totalBytes }));
  add(await pointInTimeBench(POINT_IN_TIME_BENCH));
  write(figures);
}

/** A 64 MiB snapshot and 200k oplog entries after it (updates, one insert in ten). */
const POINT_IN_TIME_BENCH = { totalBytes: 64 * 1024 * 1024, entries: 200_000 };

/** Snapshots are measured on up to 512 MiB: three full copies, two increments and a verify. */
const SNAPSHOT_BENCH_BYTES = 512 * 1024 * 1024;

/** Writes bench/results/<name>.json (latest.json for a full run). */
function write(figures: Figure[], name = "latest"): void {
  const dir = fileURLToPath(new URL("../../bench/results/", import.meta.url));
  mkdirSync(dir, { recursive: true });
  writeFileSync(`${dir}${name}.json`, `${JSON.stringify(figures, null, 2)}\n`);
  process.stdout.write(`wrote ${dir}${name}.json\n`);
}

main().catch((error: unknown) => {
  process.stderr.write(`bench failed: ${error instanceof Error ? error.stack : String(error)}\n`);
  process.exit(1);
});
