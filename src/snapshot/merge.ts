import type { DocumentEntry, RunEntry } from "./block.js";
import { RunError } from "./errors.js";
import {
  RunReader,
  RunWriter,
  type BlockSink,
  type GetBlock,
  type RunDescriptor,
  type RunReaderOptions,
  type RunWriterOptions,
} from "./run.js";

type EntrySource = Iterable<RunEntry> | AsyncIterable<RunEntry>;

interface Head {
  iterator: Iterator<RunEntry> | AsyncIterator<RunEntry>;
  entry: RunEntry | undefined;
  index: number;
}

function iteratorOf(source: EntrySource): Iterator<RunEntry> | AsyncIterator<RunEntry> {
  return Symbol.asyncIterator in source ? source[Symbol.asyncIterator]() : source[Symbol.iterator]();
}

async function advance(head: Head): Promise<void> {
  const previous = head.entry;
  const next = await head.iterator.next();
  head.entry = next.done ? undefined : next.value;
  if (head.entry && previous && Buffer.compare(previous.key, head.entry.key) >= 0) {
    throw new RunError(
      "OUT_OF_ORDER",
      `run ${head.index} of the chain yields key ${head.entry.key.toString("hex")} after ` +
        `${previous.key.toString("hex")}; runs must be in strictly increasing key order`,
    );
  }
}

/**
 * Merges entry streams, oldest first and newest last, into the live documents in key order: for
 * a key in several streams the newest entry wins, and a deletion marker removes the key. Holds one
 * entry per stream (with RunReaders, one block per run). A chain is short (a new base is written
 * after a few deltas), so the smallest key is found by a scan rather than a heap.
 */
export async function* mergeEntries(sources: readonly EntrySource[]): AsyncGenerator<DocumentEntry> {
  const heads: Head[] = sources.map((source, index) => ({
    iterator: iteratorOf(source),
    entry: undefined,
    index,
  }));
  try {
    await Promise.all(heads.map(advance));
    while (true) {
      let smallest: Buffer | undefined;
      let winner: RunEntry | undefined;
      for (const head of heads) {
        if (!head.entry) continue;
        const order = smallest === undefined ? -1 : Buffer.compare(head.entry.key, smallest);
        // Later heads are newer: on a tie the later one wins.
        if (order <= 0) {
          smallest = head.entry.key;
          winner = head.entry;
        }
      }
      if (winner === undefined || smallest === undefined) return;
      const key = smallest;
      await Promise.all(heads.filter((head) => head.entry?.key.equals(key)).map(advance));
      if (!winner.deleted) yield winner;
    }
  } finally {
    await Promise.all(heads.map((head) => head.iterator.return?.()));
  }
}

/** Checks that `runs` (oldest first) is a chain: one base, then deltas. */
export function checkChain(runs: readonly RunDescriptor[]): void {
  if (runs.length === 0) throw new RunError("BAD_CHAIN", "a chain needs at least its base run");
  if (runs[0].kind !== "base") throw new RunError("BAD_CHAIN", "a chain must start with a base run");
  const laterBase = runs.findIndex((run, i) => i > 0 && run.kind === "base");
  // A base in the middle would not remove the keys of the runs before it: the merge would be wrong.
  if (laterBase > 0)
    throw new RunError("BAD_CHAIN", `run ${laterBase} of the chain is a base run; only the first may be`);
}

/**
 * The documents of a collection whose snapshot is the chain `runs` (base first, newest delta
 * last), in `_id` key order. Streams: one block per run in memory.
 */
export function mergeChain(
  runs: readonly RunDescriptor[],
  getBlock: GetBlock,
  options: RunReaderOptions = {},
): AsyncGenerator<DocumentEntry> {
  checkChain(runs);
  return mergeEntries(runs.map((run) => new RunReader(run, getBlock, options)));
}

/** Writes the merged chain as one new base run (compaction): the chain's documents, in order. */
export async function compactChain(
  runs: readonly RunDescriptor[],
  getBlock: GetBlock,
  sink: BlockSink,
  options: Omit<RunWriterOptions, "kind"> & RunReaderOptions = {},
): Promise<RunDescriptor> {
  const writer = new RunWriter(sink, { ...options, kind: "base" });
  for await (const entry of mergeChain(runs, getBlock, options)) await writer.add(entry);
  return writer.finish();
}
