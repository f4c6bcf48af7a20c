import { MongoClient } from "mongodb";
import { startEmulatorProcess } from "./emulatorProcess.js";
import { round, type Figure } from "./figures.js";

export interface EmulatorBenchOptions {
  /** Bytes of data to load; the issue asks for 1 GiB. */
  totalBytes: number;
}

const DOC_BYTES = 1024;
const BATCH = 1000;

/** A ~1 KiB document with a few realistic fields and a padding string. */
export function benchDocument(i: number): Record<string, unknown> {
  return {
    _id: i,
    customer: { name: `customer ${i % 10_000}`, city: ["Lyon", "Porto", "Oslo", "Kyoto"][i % 4] },
    total: (i % 997) * 1.25,
    items: [i % 13, i % 17, i % 19],
    createdAt: new Date(1_700_000_000_000 + i * 1000),
    pad: "x".repeat(DOC_BYTES - 190),
  };
}

export async function emulatorBench(options: EmulatorBenchOptions): Promise<Figure[]> {
  const emulator = await startEmulatorProcess();
  const client = new MongoClient(emulator.uri);
  try {
    await client.connect();
    const coll = client.db("bench").collection<Record<string, unknown>>("docs");
    const count = Math.floor(options.totalBytes / DOC_BYTES);

    const insertStart = performance.now();
    for (let i = 0; i < count; i += BATCH) {
      const batch = Array.from({ length: Math.min(BATCH, count - i) }, (_, k) => benchDocument(i + k));
      await coll.insertMany(batch, { ordered: true });
    }
    const insertSeconds = (performance.now() - insertStart) / 1000;
    const rssMb = emulator.rssMb();

    const scanStart = performance.now();
    let bytes = 0;
    for await (const raw of coll.find({}, { raw: true, batchSize: 10_000 }))
      bytes += (raw as unknown as Uint8Array).length;
    const scanSeconds = (performance.now() - scanStart) / 1000;

    return [
      { name: "emulator.insert_docs_per_s", value: round(count / insertSeconds, 0), unit: "docs/s" },
      { name: "emulator.scan_mb_per_s", value: round(bytes / 1024 / 1024 / scanSeconds), unit: "MB/s" },
      { name: "emulator.rss_mb", value: round(rssMb, 0), unit: "MB" },
      { name: "emulator.data_mb", value: round(bytes / 1024 / 1024, 0), unit: "MB" },
    ];
  } finally {
    await client.close();
    await emulator.stop();
  }
}
