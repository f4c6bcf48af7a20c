import { deserialize, ObjectId } from "bson";
import { describe, expect, it } from "vitest";
import { encodeIdKeyFromDocument } from "../../src/bson/keyEncoding.js";
import type { Codec } from "../../src/slice/codecs.js";
import type { DocumentEntry, RunEntry } from "../../src/snapshot/block.js";
import { BlockError, RunError } from "../../src/snapshot/errors.js";
import { DOCUMENTS_PER_BATCH } from "../../src/snapshot/batches.js";
import type { ManifestCollection, SnapshotManifest } from "../../src/snapshot/manifest.js";
import { checkChain, compactChain, mergeChain, mergeEntries } from "../../src/snapshot/merge.js";
import { readCollection, readCollectionBatches, type SnapshotSource } from "../../src/snapshot/reader.js";
import type { BlockStore } from "../../src/snapshot/stores/index.js";
import {
  parseRunDescriptor,
  RunReader,
  writeRun,
  type GetBlock,
  type RunDescriptor,
} from "../../src/snapshot/run.js";
import { byKey, deletion, documentEntry, emptyRun, MemoryStore, prng, rejectsWith } from "./entries.js";

/** The `n`th `_id` of the test's pool: ints, strings (some with keys over 127 bytes), ObjectIds, documents. */
function idOf(n: number): unknown {
  switch (n % 5) {
    case 0:
      return n;
    case 1:
      return `s-${n}`;
    case 2: {
      const bytes = Buffer.alloc(12);
      bytes.writeUInt32BE(0x65f0a1b2, 0);
      bytes.writeUInt32BE(n, 8);
      return new ObjectId(bytes);
    }
    case 3:
      return { g: n % 7, n, tag: "t" };
    default:
      return n % 2 ? `long-${n}-${"x".repeat(140)}` : n + 0.5;
  }
}

async function collect<T>(source: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of source) out.push(item);
  return out;
}

function expectDocuments(actual: readonly DocumentEntry[], expected: readonly DocumentEntry[]): void {
  expect(actual.length).toBe(expected.length);
  actual.forEach((entry, i) => {
    expect(entry.deleted).not.toBe(true);
    expect(entry.key.toString("hex"), `key ${i}`).toBe(expected[i].key.toString("hex"));
    expect(entry.doc.equals(expected[i].doc), `doc ${i}`).toBe(true);
  });
}

interface Chain {
  store: MemoryStore;
  runs: RunDescriptor[];
  /** The live documents after every run, by hex key. */
  model: Map<string, DocumentEntry>;
  options: { targetBlockBytes: number; codec: Codec };
}

/**
 * A base of `baseSize` documents from the id pool, then `deltas` deltas of updates, inserts and
 * deletions (of live keys and of keys that never existed or are already gone), applied one by
 * one to a Map model. With more than three deltas, the third is empty.
 */
async function randomChain(seed: number, codec: Codec, baseSize = 500, deltas = 6): Promise<Chain> {
  const random = prng(seed);
  const store = new MemoryStore();
  const options = { targetBlockBytes: 1024, codec };
  const pool = 2 * baseSize;
  let version = 0;
  const docFor = (n: number) =>
    documentEntry({ _id: idOf(n), v: ++version, seed, payload: "q".repeat(Math.floor(random() * 200)) });

  const model = new Map<string, DocumentEntry>();
  const live = new Map<string, number>(); // hex key -> pool index
  for (let n = 0; n < pool && model.size < baseSize; n++) {
    if (random() < 0.6) {
      const entry = docFor(n);
      model.set(entry.key.toString("hex"), entry);
      live.set(entry.key.toString("hex"), n);
    }
  }
  const runs = [await writeRun(byKey(model.values()), store.sink, { ...options, kind: "base" })];

  for (let d = 0; d < deltas; d++) {
    const changes = new Map<string, RunEntry>();
    const operations = d === 2 && deltas > 3 ? 0 : 20 + Math.floor(random() * 120); // delta 2 is empty
    for (let op = 0; op < operations; op++) {
      const r = random();
      const liveKeys = [...live.keys()];
      if (r < 0.35 && liveKeys.length > 0) {
        // Update a live document.
        const entry = docFor(live.get(liveKeys[Math.floor(random() * liveKeys.length)])!);
        changes.set(entry.key.toString("hex"), entry);
        model.set(entry.key.toString("hex"), entry);
      } else if (r < 0.6) {
        // Insert (or re-insert, or overwrite) any id of the pool.
        const n = Math.floor(random() * pool);
        const entry = docFor(n);
        const hex = entry.key.toString("hex");
        changes.set(hex, entry);
        model.set(hex, entry);
        live.set(hex, n);
      } else if (r < 0.85 && liveKeys.length > 0) {
        // Delete a live document.
        const hex = liveKeys[Math.floor(random() * liveKeys.length)];
        changes.set(hex, { key: Buffer.from(hex, "hex"), deleted: true });
        model.delete(hex);
        live.delete(hex);
      } else {
        // Delete a key that is not live: never existed, or already deleted.
        const n = random() < 0.5 ? pool + Math.floor(random() * 1000) : Math.floor(random() * pool);
        const marker = deletion(idOf(n));
        const hex = marker.key.toString("hex");
        if (live.has(hex)) continue;
        changes.set(hex, marker);
      }
    }
    runs.push(await writeRun(byKey(changes.values()), store.sink, { ...options, kind: "delta" }));
  }
  return { store, runs, model, options };
}

/** Sources that record, by index, when they are closed. */
function trackedSources(): {
  closed: number[];
  tracked: (index: number, entries: RunEntry[]) => Generator<RunEntry>;
} {
  const closed: number[] = [];
  function* tracked(index: number, entries: RunEntry[]): Generator<RunEntry> {
    try {
      yield* entries;
    } finally {
      closed.push(index);
    }
  }
  return { closed, tracked };
}

describe("mergeEntries", () => {
  const a1 = documentEntry({ _id: 1, v: "a1" });
  const b1 = documentEntry({ _id: 2, v: "b1" });
  const c1 = documentEntry({ _id: 3, v: "c1" });
  const b2 = documentEntry({ _id: 2, v: "b2" });
  const d2 = documentEntry({ _id: 4, v: "d2" });
  const b3 = documentEntry({ _id: 2, v: "b3" });

  it("lets the newest entry win and deletion markers remove keys", async () => {
    const base = [a1, b1, c1];
    const delta1 = [deletion(2), d2];
    const delta2 = byKey([b2, deletion(3), deletion(5)]);
    expectDocuments(await collect(mergeEntries([base, delta1, delta2])), [a1, b2, d2]);
    // Without the second delta, 2 stays deleted.
    expectDocuments(await collect(mergeEntries([base, delta1])), [a1, c1, d2]);
    // Three versions of one key: only the newest.
    expectDocuments(await collect(mergeEntries([[b1], [b2], [b3]])), [b3]);
    expectDocuments(await collect(mergeEntries([[b1], [b3], [b2]])), [b2]);
    // A deletion marker newer than every version.
    expectDocuments(await collect(mergeEntries([[b1], [b2], [deletion(2)]])), []);
  });

  it("merges nothing to nothing", async () => {
    expect(await collect(mergeEntries([]))).toEqual([]);
    expect(await collect(mergeEntries([[], [], []]))).toEqual([]);
    expect(await collect(mergeEntries([[], [deletion(1)]]))).toEqual([]);
  });

  it("merges async sources", async () => {
    async function* slowly(entries: RunEntry[]): AsyncGenerator<RunEntry> {
      for (const entry of entries) {
        await new Promise((resolve) => setTimeout(resolve, 0));
        yield entry;
      }
    }
    expectDocuments(await collect(mergeEntries([slowly([a1, b1, c1]), [deletion(1), d2]])), [b1, c1, d2]);
  });

  it("refuses a source out of key order, and closes every source", async () => {
    const { closed, tracked } = trackedSources();
    await rejectsWith(
      collect(mergeEntries([tracked(0, [a1, b1, c1]), tracked(1, [d2, b2])])),
      "OUT_OF_ORDER",
    );
    expect(closed.sort()).toEqual([0, 1]);
    await rejectsWith(collect(mergeEntries([[b1, b1]])), "OUT_OF_ORDER");
  });

  it("reads a single source straight through: live entries only, in order, closed at the end", async () => {
    expectDocuments(await collect(mergeEntries([[a1, deletion(2), c1]])), [a1, c1]);
    const { closed, tracked } = trackedSources();
    await rejectsWith(collect(mergeEntries([tracked(0, [b1, a1])])), "OUT_OF_ORDER");
    expect(closed).toEqual([0]);
    for await (const entry of mergeEntries([tracked(1, [a1, b1])])) {
      expect(entry.key.equals(a1.key)).toBe(true);
      break;
    }
    expect(closed).toEqual([0, 1]);
  });

  it("closes every source when the consumer stops early", async () => {
    const { closed, tracked } = trackedSources();
    for await (const entry of mergeEntries([tracked(0, [a1, b1, c1]), tracked(1, [b2, d2])])) {
      expect(entry.key.equals(a1.key)).toBe(true);
      break;
    }
    expect(closed.sort()).toEqual([0, 1]);
  });
});

/**
 * How many blocks of each run a merge that has just yielded `key` must have fetched: every block
 * up to the one holding the run's first key after `key` (where its reader now stands).
 */
function blocksNeeded(runs: readonly RunDescriptor[], key: Buffer): number[] {
  return runs.map((run) => {
    let n = 1;
    while (n < run.blocks.length && Buffer.compare(Buffer.from(run.blocks[n - 1].lastKey, "hex"), key) <= 0) {
      n++;
    }
    return Math.min(n, run.blocks.length);
  });
}

describe("mergeChain", () => {
  for (const [seed, codec] of [
    [1, "zstd"],
    [2, "none"],
    [3, "snappy"],
  ] as const) {
    it(`gives exactly the model's live documents in key order (seed ${seed}, ${codec})`, async () => {
      const { store, runs, model } = await randomChain(seed, codec);
      expect(runs.length).toBe(7);
      expect(runs.slice(1).some((run) => run.deletions > 0)).toBe(true);
      expect(runs[3].count).toBe(0);
      for (const run of runs) expect(parseRunDescriptor(JSON.parse(JSON.stringify(run)))).toEqual(run);
      const merged = await collect(mergeChain(runs, store.getBlock, { checkIdKeys: true }));
      expectDocuments(merged, byKey(model.values()));
      // The documents are real: their _id gives their key.
      for (const entry of merged) {
        expect(encodeIdKeyFromDocument(entry.doc).equals(entry.key)).toBe(true);
        expect(deserialize(entry.doc).seed).toBe(seed);
      }
      // Every prefix of the chain is a snapshot too.
      const partial = await collect(mergeChain(runs.slice(0, 1), store.getBlock));
      expect(partial.length).toBe(runs[0].count);
    });
  }

  it("fetches lazily: one block per run, each block once, no read-ahead", async () => {
    const { store, runs } = await randomChain(4, "zstd", 400, 3);
    for (const run of runs) expect(run.blocks.length).toBeGreaterThan(2);
    const owner = new Map<string, { run: number; index: number }>();
    runs.forEach((run, r) => run.blocks.forEach((block, index) => owner.set(block.hash, { run: r, index })));
    expect(owner.size).toBe(runs.reduce((n, run) => n + run.blocks.length, 0));

    let inFlight = 0;
    let maxInFlight = 0;
    const getBlock: GetBlock = async (hash) => {
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      await new Promise((resolve) => setTimeout(resolve, 0));
      inFlight--;
      return store.getBlock(hash);
    };

    const iterator = mergeChain(runs, getBlock);
    const first = await iterator.next();
    expect(first.done).toBe(false);
    expect(store.fetched.sort()).toEqual(runs.map((run) => run.blocks[0].hash).sort());

    // After each entry, a run has fetched exactly the blocks up to the one holding its first key
    // past that entry: the block it is reading, none ahead.
    const fetchedPerRun = () => {
      const counts = runs.map(() => 0);
      for (const hash of store.fetched) counts[owner.get(hash)!.run]++;
      return counts;
    };
    let entry = first;
    let checked = 0;
    while (!entry.done) {
      expect(fetchedPerRun()).toEqual(blocksNeeded(runs, entry.value.key));
      checked++;
      entry = await iterator.next();
    }
    expect(checked).toBeGreaterThan(100);
    expect(maxInFlight).toBeLessThanOrEqual(runs.length);
    expect(store.fetched.length).toBe(owner.size);
    expect(new Set(store.fetched).size).toBe(owner.size);
  });

  it("stops fetching when the consumer stops", async () => {
    const { store, runs } = await randomChain(5, "zstd", 300, 2);
    let seen = 0;
    let last: Buffer | undefined;
    for await (const entry of mergeChain(runs, store.getBlock)) {
      last = entry.key;
      if (++seen === 20) break;
    }
    const expected = blocksNeeded(runs, last!).reduce((a, b) => a + b, 0);
    expect(store.fetched.length).toBe(expected);
    expect(expected).toBeLessThan(runs.reduce((n, run) => n + run.blocks.length, 0));
    await new Promise((resolve) => setTimeout(resolve, 10));
    expect(store.fetched.length).toBe(expected);
  });

  it("passes on a damaged block, naming it", async () => {
    const { store, runs } = await randomChain(6, "zstd", 300, 3);
    const target = runs[2].blocks[1].hash;
    const damaged: GetBlock = async (hash) => {
      const bytes = Buffer.from(await store.getBlock(hash));
      if (hash === target) bytes[bytes.length - 1] ^= 1;
      return bytes;
    };
    const error = await collect(mergeChain(runs, damaged)).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(BlockError);
    expect((error as BlockError).code).toBe("HASH_MISMATCH");
    expect((error as Error).message).toMatch(/^delta run block 2 of/);
  });
});

describe("readCollectionBatches", () => {
  const read = (chain: Chain, runs: RunDescriptor[]) => {
    const manifest = { snapshotId: "s", encrypted: false } as unknown as SnapshotManifest;
    const collection = { namespace: "db.c", type: "collection", runs } as unknown as ManifestCollection;
    const source: SnapshotSource = {
      kind: "blocks",
      blocks: { get: chain.store.getBlock } as unknown as BlockStore,
    };
    return {
      batches: readCollectionBatches(manifest, collection, source),
      documents: readCollection(manifest, collection, source),
    };
  };

  it("gives a base alone a block at a time, and a chain in batches, the same documents as the merge", async () => {
    const chain = await randomChain(5, "zstd", 600, 4);
    const base = read(chain, chain.runs.slice(0, 1));
    const baseBatches = await collect(base.batches);
    expect(baseBatches.length).toBe(chain.runs[0].blocks.length);
    const baseDocs = (await collect(mergeChain(chain.runs.slice(0, 1), chain.store.getBlock))).map(
      (e) => e.doc,
    );
    expect(baseBatches.flat()).toEqual(baseDocs);
    expect(await collect(base.documents)).toEqual(baseDocs);

    const whole = read(chain, chain.runs);
    const batches = await collect(whole.batches);
    expect(batches.every((batch) => batch.length > 0 && batch.length <= DOCUMENTS_PER_BATCH)).toBe(true);
    const merged = (await collect(mergeChain(chain.runs, chain.store.getBlock))).map((e) => e.doc);
    expect(merged.length).toBeGreaterThan(DOCUMENTS_PER_BATCH);
    expect(batches.flat()).toEqual(merged);
    expect(await collect(whole.documents)).toEqual(merged);
  });
});

describe("checkChain", () => {
  const base = emptyRun("base");
  const delta = emptyRun("delta");

  it("accepts a base followed by deltas", () => {
    expect(() => checkChain([base])).not.toThrow();
    expect(() => checkChain([base, delta, delta])).not.toThrow();
  });

  it("refuses chains that are not one base then deltas", () => {
    for (const [chain, message] of [
      [[], /at least its base/],
      [[delta], /must start with a base/],
      [[delta, base], /must start with a base/],
      [[base, base], /run 1 of the chain is a base/],
      [[base, delta, delta, base], /run 3 of the chain is a base/],
    ] as const) {
      let error: unknown;
      try {
        checkChain(chain);
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(RunError);
      expect((error as RunError).code).toBe("BAD_CHAIN");
      expect((error as Error).message).toMatch(message);
      // mergeChain refuses before fetching anything.
      const store = new MemoryStore();
      expect(() => mergeChain(chain, store.getBlock)).toThrow(RunError);
      expect(store.fetched).toEqual([]);
    }
  });
});

describe("compactChain", () => {
  for (const codec of ["zstd", "gzip"] as const) {
    it(`writes the merged chain as a base, the same base as writing the model (${codec})`, async () => {
      const { store, runs, model, options } = await randomChain(7, codec);
      const compacted = await compactChain(runs, store.getBlock, store.sink, {
        ...options,
        checkIdKeys: true,
      });
      expect(parseRunDescriptor(compacted)).toEqual(compacted);
      expect(compacted).toMatchObject({ kind: "base", codec, deletions: 0, count: model.size });
      expectDocuments(
        (await collect(new RunReader(compacted, store.getBlock))) as DocumentEntry[],
        byKey(model.values()),
      );
      // Deterministic: exactly the blocks of a base written straight from the model.
      const direct = await writeRun(byKey(model.values()), () => {}, { ...options, kind: "base" });
      expect(compacted).toEqual(direct);
      // And the compacted base alone merges to the same documents as the chain.
      expectDocuments(
        await collect(mergeChain([compacted], store.getBlock)),
        await collect(mergeChain(runs, store.getBlock)),
      );
    });
  }

  it("shares blocks with the old base where nothing changed", async () => {
    const store = new MemoryStore();
    const options = { targetBlockBytes: 1024 };
    const base = await writeRun(
      Array.from({ length: 600 }, (_, i) => documentEntry({ _id: i, payload: "b".repeat(100 + (i % 50)) })),
      store.sink,
      { ...options, kind: "base" },
    );
    const delta = await writeRun(
      [documentEntry({ _id: 300, payload: "changed" }), deletion(301)],
      store.sink,
      {
        ...options,
        kind: "delta",
      },
    );
    const compacted = await compactChain([base, delta], store.getBlock, store.sink, options);
    expect(compacted.count).toBe(599);
    const old = new Set(base.blocks.map((block) => block.hash));
    const shared = compacted.blocks.filter((block) => old.has(block.hash)).length;
    expect(shared).toBeGreaterThanOrEqual(compacted.blocks.length - 3);
  });

  it("refuses a bad chain and leaves nothing half written", async () => {
    const store = new MemoryStore();
    const delta = await writeRun([deletion(1)], store.sink, { kind: "delta" });
    const before = store.blocks.size;
    await rejectsWith(compactChain([delta], store.getBlock, store.sink), "BAD_CHAIN");
    expect(store.blocks.size).toBe(before);
  });
});
