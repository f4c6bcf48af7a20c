// Applies an oplog file to a head database in batches, one slice per batch, resuming after the
// slice cursor: what the daemon does after a restart. The crash test kills it at random moments.
// Runs the compiled code in dist/ (test/globalSetup.ts builds it).
import { readFileSync } from "node:fs";
import process from "node:process";
import { URL } from "node:url";

const [dir, entriesPath, batchSizeText] = process.argv.slice(2);
const batchSize = Number(batchSizeText);
const { HeadDatabase } = await import(new URL("../../dist/src/headdb/headDatabase.js", import.meta.url).href);
const { OplogApplier } = await import(new URL("../../dist/src/oplog/apply/applier.js", import.meta.url).href);

const bytes = readFileSync(entriesPath);
const entries = [];
for (let pos = 0; pos < bytes.length;) {
  const length = bytes.readInt32LE(pos);
  entries.push(bytes.subarray(pos, pos + length));
  pos += length;
}

const head = HeadDatabase.open({ path: dir });
const applier = new OplogApplier(head, { include: () => true });
const start = (head.state.sliceCursor("oplog") ?? -1) + 1;
process.stdout.write(`start ${start}\n`);
for (let batch = start; batch * batchSize < entries.length; batch++) {
  applier.applyBatch(entries.slice(batch * batchSize, (batch + 1) * batchSize), {
    sliceCursor: { stream: "oplog", sequence: batch },
  });
  process.stdout.write(`committed ${batch}\n`);
}
await head.close();
process.stdout.write("done\n");
