import { MongoClient, type Collection } from "mongodb";
import { startEmulatorProcess, type EmulatorProcess } from "./emulatorProcess.js";
import { round, type Figure } from "./figures.js";

export interface EmulatorBenchOptions {
  /** Bytes of data to load; the issue asks for 1 GiB. */
  totalBytes: number;
}

const DOC_BYTES = 1024;
const BATCH = 1000;

const WORDS =
  "order shipped paid pending refund customer invoice parcel express standard return gift card discount warehouse lyon porto oslo kyoto blue green large small".split(
    " ",
  );

/** Text that compresses like real prose (a few times), not like a run of one letter. */
function prose(seed: number, length: number): string {
  let state = seed * 2654435761;
  let text = "";
  while (text.length < length) {
    state = (state * 1103515245 + 12345) >>> 0;
    text += `${WORDS[state % WORDS.length]}${state % 7 === 0 ? ` ${state % 100000}` : ""} `;
  }
  return text.slice(0, length);
}

/** A ~1 KiB document with a few realistic fields and some prose. */
export function benchDocument(i: number): Record<string, unknown> {
  return {
    _id: i,
    customer: { name: `customer ${i % 10_000}`, city: ["Lyon", "Porto", "Oslo", "Kyoto"][i % 4] },
    total: (i % 997) * 1.25,
    items: [i % 13, i % 17, i % 19],
    createdAt: new Date(1_700_000_000_000 + i * 1000),
    notes: prose(i, DOC_BYTES - 190),
  };
}

/** How many bench documents make `totalBytes` of data. */
export function benchDocumentCount(totalBytes: number): number {
  return Math.floor(totalBytes / DOC_BYTES);
}

/** Inserts `benchDocument(0 .. count - 1)`, the data every benchmark reads. */
export async function loadBenchDocuments(
  coll: Collection<Record<string, unknown>>,
  count: number,
): Promise<void> {
  for (let i = 0; i < count; i += BATCH) {
    const batch = Array.from({ length: Math.min(BATCH, count - i) }, (_, k) => benchDocument(i + k));
    await coll.insertMany(batch, { ordered: true });
  }
}

export interface EmulatorBenchResult {
  figures: Figure[];
  /** The loaded emulator, still running, for the benchmarks that read the same data. */
  emulator: EmulatorProcess;
  /** Raw driver scan throughput, the denominator of the other figures' ratios. */
  scanBytesPerSecond: number;
  dataBytes: number;
}

export async function emulatorBench(options: EmulatorBenchOptions): Promise<EmulatorBenchResult> {
  const emulator = await startEmulatorProcess(["--oplog-size-mb", "64"]);
  const client = new MongoClient(emulator.uri);
  try {
    await client.connect();
    const coll = client.db("bench").collection<Record<string, unknown>>("docs");
    const count = benchDocumentCount(options.totalBytes);

    const insertStart = performance.now();
    await loadBenchDocuments(coll, count);
    const insertSeconds = (performance.now() - insertStart) / 1000;
    const rssMb = emulator.rssMb();

    const scanStart = performance.now();
    let bytes = 0;
    for await (const raw of coll.find({}, { raw: true, batchSize: 10_000 }))
      bytes += (raw as unknown as Uint8Array).length;
    const scanSeconds = (performance.now() - scanStart) / 1000;

    const figures = [
      { name: "emulator.insert_docs_per_s", value: round(count / insertSeconds, 0), unit: "docs/s" },
      { name: "emulator.scan_mb_per_s", value: round(bytes / 1024 / 1024 / scanSeconds), unit: "MB/s" },
      { name: "emulator.rss_mb", value: round(rssMb, 0), unit: "MB" },
      { name: "emulator.data_mb", value: round(bytes / 1024 / 1024, 0), unit: "MB" },
    ];
    return { figures, emulator, scanBytesPerSecond: bytes / scanSeconds, dataBytes: bytes };
  } catch (error) {
    await emulator.stop();
    throw error;
  } finally {
    await client.close();
  }
}
