import { serialize } from "bson";
import { generateSampleData } from "../src/emulator/sampleData.js";
import { CODECS, compress } from "../src/slice/codecs.js";
import { round, type Figure } from "./figures.js";

/**
 * Compression speed and ratio of each slice codec on realistic documents (the demo data set:
 * nested documents, arrays, dates, decimals, binaries), cut into 10 MB bodies as slices are.
 */
export function sliceBench(options: { totalBytes: number }): Figure[] {
  const documents: Buffer[] = [];
  let bytes = 0;
  for (let seed = 1; bytes < options.totalBytes; seed++) {
    for (const database of generateSampleData({ seed, scale: 4 })) {
      for (const collection of database.collections) {
        for (const doc of collection.documents) {
          const raw = Buffer.from(serialize(doc));
          documents.push(raw);
          bytes += raw.length;
        }
      }
    }
  }
  const bodies: Buffer[] = [];
  for (let start = 0, size = 0, i = 0; i <= documents.length; i++) {
    if (i === documents.length || size >= 10 * 1024 * 1024) {
      bodies.push(Buffer.concat(documents.slice(start, i)));
      start = i;
      size = 0;
    }
    if (i < documents.length) size += documents[i].length;
  }
  const figures: Figure[] = [];
  for (const codec of CODECS) {
    let input = 0;
    let output = 0;
    const started = performance.now();
    for (const body of bodies) {
      input += body.length;
      output += compress(codec, body).length;
    }
    const seconds = (performance.now() - started) / 1000;
    figures.push({
      name: `slice.compress_mb_per_s.${codec}`,
      value: round(input / 1024 / 1024 / seconds),
      unit: "MB/s",
    });
    figures.push({ name: `slice.ratio.${codec}`, value: round(input / output, 3), unit: "x" });
  }
  return figures;
}
