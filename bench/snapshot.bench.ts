/**
 * Snapshot benchmarks: a head database of bench documents is written as a snapshot to each store
 * kind (blockstore, s3 on s3rver over HTTP, fs), each compared with a raw read of the head
 * database in the same run; then incremental snapshots after changing 1% and 10% of the
 * documents, spread evenly (storedBytes ÷ logicalBytes); then a verify of the last one.
 */
import { fork } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { CreateBucketCommand, S3Client } from "@aws-sdk/client-s3";
import { Long, serialize, Timestamp, UUID } from "bson";
import { HeadDatabase } from "../src/headdb/headDatabase.js";
import { FsSnapshotStore } from "../src/snapshot/fsStore/index.js";
import type { SnapshotManifest } from "../src/snapshot/manifest.js";
import { SnapshotSchedule } from "../src/snapshot/policy.js";
import { openBlockStore, type BlockStore } from "../src/snapshot/stores/index.js";
import { verifySnapshot } from "../src/snapshot/verify.js";
import { writeSnapshot, type SnapshotTarget, type WrittenSnapshot } from "../src/snapshot/writer.js";
import { benchDocument, benchDocumentCount } from "./emulator.bench.js";
import { round, type Figure } from "./figures.js";

const MB = 1024 * 1024;
const INSERT_BATCH = 5000;
const CHAIN = SnapshotSchedule.parse({});

interface S3rverProcess {
  endpoint: string;
  stop(): Promise<void>;
}

/** s3rver in a child process (the test suite's launcher), so it does not share our event loop. */
async function startS3rver(directory: string): Promise<S3rverProcess> {
  const script = fileURLToPath(new URL("../../test/oplogstore/s3rverProcess.mjs", import.meta.url));
  const child = fork(script, [directory], {
    execArgv: ["--openssl-legacy-provider"],
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  const port = await new Promise<number>((resolve, reject) => {
    child.once("message", (message: { type: string; port: number }) => resolve(message.port));
    child.once("exit", (code) => reject(new Error(`s3rver exited (code ${code})`)));
  });
  return {
    endpoint: `http://127.0.0.1:${port}`,
    async stop() {
      const exited = new Promise((resolve) => child.once("exit", resolve));
      child.send({ type: "stop" });
      await exited;
    },
  };
}

function loadHead(head: HeadDatabase, uuid: UUID, count: number): void {
  head.write(() => head.createCollection({ uuid, db: "bench", name: "orders" }));
  for (let i = 0; i < count; i += INSERT_BATCH) {
    const docs = Array.from({ length: Math.min(INSERT_BATCH, count - i) }, (_, k) =>
      serialize(benchDocument(i + k)),
    );
    head.write(() => head.insertDocuments(uuid, docs));
  }
  // As if the daemon had applied the oplog up to now: a snapshot is taken at an applied optime.
  const ts = Timestamp.fromBits(1, Math.floor(Date.now() / 1000));
  head.write(() => head.state.setAppliedOptime({ ts, t: Long.fromNumber(1) }));
}

/** Changes every `step`-th document (a field rewritten): `1 / step` of them, spread evenly. */
function changeEvenly(head: HeadDatabase, uuid: UUID, count: number, step: number, round: number): void {
  for (let i = 0; i < count; i += step * INSERT_BATCH) {
    const docs: Uint8Array[] = [];
    for (let k = i; k < Math.min(count, i + step * INSERT_BATCH); k += step)
      docs.push(serialize({ ...benchDocument(k), edited: round }));
    head.write(() => head.insertDocuments(uuid, docs));
  }
}

function rawReadSeconds(head: HeadDatabase, uuid: UUID): { seconds: number; bytes: number } {
  const started = performance.now();
  let bytes = 0;
  head.readSnapshot((snapshot) => {
    for (const { raw } of snapshot.documents.scan(uuid)) bytes += raw.length;
  });
  return { seconds: (performance.now() - started) / 1000, bytes };
}

async function timedSnapshot(
  head: HeadDatabase,
  target: SnapshotTarget,
  id: string,
  previous?: SnapshotManifest,
): Promise<{ written: WrittenSnapshot; seconds: number }> {
  const started = performance.now();
  const written = await writeSnapshot({
    snapshotId: id,
    deploymentId: "bench",
    deploymentName: "bench",
    head,
    target,
    previous,
    chain: CHAIN,
    referBlocks: () => {},
  });
  return { written, seconds: (performance.now() - started) / 1000 };
}

export async function snapshotBench(options: { totalBytes: number }): Promise<Figure[]> {
  const dir = mkdtempSync(join(tmpdir(), "tidemark-bench-snapshot-"));
  const figures: Figure[] = [];
  const stores: BlockStore[] = [];
  let s3rver: S3rverProcess | undefined;
  const head = HeadDatabase.open({ path: join(dir, "head") });
  try {
    const uuid = new UUID();
    const count = benchDocumentCount(options.totalBytes);
    loadHead(head, uuid, count);
    const raw = rawReadSeconds(head, uuid);
    const rawMbPerS = raw.bytes / MB / raw.seconds;
    figures.push({ name: "snapshot.raw_read_mb_per_s", value: round(rawMbPerS), unit: "MB/s" });

    s3rver = await startS3rver(join(dir, "s3rver"));
    const credentials = { accessKeyId: "S3RVER", secretAccessKey: "S3RVER" };
    const client = new S3Client({
      endpoint: s3rver.endpoint,
      region: "us-east-1",
      forcePathStyle: true,
      credentials,
    });
    await client.send(new CreateBucketCommand({ Bucket: "bench" }));
    client.destroy();
    const blockstore = await openBlockStore(join(dir, "blockstore.sqlite"));
    const s3 = await openBlockStore("s3://bench/snapshots", {
      s3: { endpoint: s3rver.endpoint, region: "us-east-1", forcePathStyle: true, ...credentials },
    });
    stores.push(blockstore, s3);
    const files = await FsSnapshotStore.open(join(dir, "fs"));
    const targets: Array<[string, SnapshotTarget]> = [
      ["blockstore", { kind: "blockstore", blocks: blockstore }],
      ["s3", { kind: "s3", blocks: s3 }],
      ["fs", { kind: "fs", files, location: `fs:${join(dir, "fs")}` }],
    ];
    let base: SnapshotManifest | undefined;
    for (const [kind, target] of targets) {
      const { written, seconds } = await timedSnapshot(head, target, `full-${kind}`);
      const mbPerS = written.logicalBytes / MB / seconds;
      figures.push(
        { name: `snapshot.write_mb_per_s.${kind}`, value: round(mbPerS), unit: "MB/s" },
        { name: `snapshot.write_ratio.${kind}`, value: round(mbPerS / rawMbPerS, 3), unit: "ratio" },
      );
      if (kind === "blockstore") base = written.manifest;
    }

    // Incremental snapshots on the blockstore: 1% changed since the base, then 10% since that one.
    const blockTarget: SnapshotTarget = { kind: "blockstore", blocks: blockstore };
    changeEvenly(head, uuid, count, 100, 1);
    const onePct = await timedSnapshot(head, blockTarget, "delta-1pct", base);
    figures.push({
      name: "snapshot.dedup_stored_fraction.1pct",
      value: round(onePct.written.storedBytes / onePct.written.logicalBytes, 4),
      unit: "ratio",
    });
    changeEvenly(head, uuid, count, 10, 2);
    const tenPct = await timedSnapshot(head, blockTarget, "delta-10pct", onePct.written.manifest);
    figures.push({
      name: "snapshot.dedup_stored_fraction.10pct",
      value: round(tenPct.written.storedBytes / tenPct.written.logicalBytes, 4),
      unit: "ratio",
    });

    const started = performance.now();
    const verified = await verifySnapshot(tenPct.written.manifest, { kind: "blocks", blocks: blockstore });
    const verifySeconds = (performance.now() - started) / 1000;
    if (!verified.ok) throw new Error(`bench snapshot does not verify: ${verified.firstProblem}`);
    figures.push({
      name: "snapshot.verify_mb_per_s",
      value: round(verified.bytesRead / MB / verifySeconds),
      unit: "MB/s",
    });
    return figures;
  } finally {
    for (const store of stores) await store.close();
    await head.close();
    await s3rver?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
