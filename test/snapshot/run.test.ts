import { ObjectId, serialize } from "bson";
import { describe, expect, it } from "vitest";
import { encodeIdKeyFromDocument } from "../../src/bson/keyEncoding.js";
import { CODECS } from "../../src/slice/codecs.js";
import { BLOCK_HEADER_SIZE, type DocumentEntry, type RunEntry } from "../../src/snapshot/block.js";
import { BlockError, RunError, type BlockErrorCode, type RunErrorCode } from "../../src/snapshot/errors.js";
import {
  parseRunDescriptor,
  RunReader,
  RunWriter,
  writeRun,
  type GetBlock,
  type RunDescriptor,
} from "../../src/snapshot/run.js";
import {
  byKey,
  deletion,
  documentEntry,
  emptyRun,
  expectSameEntries,
  MemoryStore,
  prng,
  rejectsWith,
} from "./entries.js";

/** `n` documents with int `_id`s `idOf(i)` and payloads of 50 to 450 bytes. */
function intDocuments(n: number, seed: number, idOf = (i: number) => i): DocumentEntry[] {
  const random = prng(seed);
  return Array.from({ length: n }, (_, i) =>
    documentEntry({ _id: idOf(i), payload: "p".repeat(50 + Math.floor(random() * 400)), r: random() }),
  );
}

async function readAll(run: RunDescriptor, getBlock: GetBlock): Promise<RunEntry[]> {
  const entries: RunEntry[] = [];
  for await (const entry of new RunReader(run, getBlock, { checkIdKeys: true })) entries.push(entry);
  return entries;
}

function throwsRun(fn: () => unknown, code: RunErrorCode): void {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(RunError);
    expect((error as RunError).code).toBe(code);
    return;
  }
  expect.fail(`expected RunError ${code}`);
}

async function blockErrorOf(promise: Promise<unknown>): Promise<BlockErrorCode | undefined> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof BlockError) return error.code;
    throw error;
  }
  return undefined;
}

describe("RunWriter block sizes", () => {
  const TARGET = 4096;

  it("averages blocks near the target and never exceeds twice it", async () => {
    const store = new MemoryStore({ checkStoredBytes: true });
    const entries = intDocuments(5000, 1);
    const run = await writeRun(entries, store.sink, { kind: "base", targetBlockBytes: TARGET });
    const sizes = run.blocks.map((block) => store.bodyLength(block.hash));
    expect(run.blocks.length).toBeGreaterThan(100);
    const average = sizes.reduce((a, b) => a + b, 0) / sizes.length;
    expect(average).toBeGreaterThan(0.8 * TARGET);
    expect(average).toBeLessThan(1.2 * TARGET);
    expect(Math.max(...sizes)).toBeLessThanOrEqual(2 * TARGET);
    // Only the last block may be shorter than the quarter-target minimum.
    expect(Math.min(...sizes.slice(0, -1))).toBeGreaterThanOrEqual(TARGET / 4);
    // Boundaries are not all forced by the maximum: most blocks end on a content-defined cut.
    expect(sizes.filter((size) => size > 2 * TARGET - 500).length).toBeLessThan(sizes.length / 4);
    expectSameEntries(await readAll(run, store.getBlock), entries);
  });

  it("gives an entry larger than the target a block of its own", async () => {
    const store = new MemoryStore({ checkStoredBytes: true });
    const before = intDocuments(300, 2);
    const huge = documentEntry({ _id: 1_000_000, payload: "h".repeat(3 * TARGET) });
    const after = intDocuments(300, 3, (i) => 2_000_000 + i);
    const entries = [...before, huge, ...after];
    const run = await writeRun(entries, store.sink, { kind: "base", targetBlockBytes: TARGET });
    const index = run.blocks.findIndex((block) => block.firstKey === huge.key.toString("hex"));
    expect(index).toBeGreaterThan(0);
    const block = run.blocks[index];
    expect(block.count).toBe(1);
    expect(block.lastKey).toBe(block.firstKey);
    expect(store.bodyLength(block.hash)).toBeGreaterThan(2 * TARGET);
    run.blocks.forEach((other, i) => {
      if (i !== index) expect(store.bodyLength(other.hash)).toBeLessThanOrEqual(2 * TARGET);
    });
    expect(run.blocks[index - 1].lastKey).toBe(before[before.length - 1].key.toString("hex"));
    expectSameEntries(await readAll(run, store.getBlock), entries);
  });

  it("refuses a target below 64 bytes", () => {
    for (const targetBlockBytes of [0, 63, 1.5, Number.NaN]) {
      expect(() => new RunWriter(() => {}, { kind: "base", targetBlockBytes })).toThrow(RangeError);
    }
  });
});

describe("RunWriter refuses misuse", () => {
  const a = documentEntry({ _id: 1, v: "a" });
  const b = documentEntry({ _id: 2, v: "b" });
  const c = documentEntry({ _id: 3, v: "c" });

  it("refuses keys out of order or repeated, within a block and across a boundary", async () => {
    for (const target of [1 << 20, 64]) {
      const store = new MemoryStore({ checkStoredBytes: true });
      const writer = new RunWriter(store.sink, { kind: "delta", targetBlockBytes: target });
      await writer.add(a);
      await writer.add(b);
      await rejectsWith(writer.add(a), "OUT_OF_ORDER");
      await rejectsWith(writer.add(b), "DUPLICATE_KEY");
      await rejectsWith(writer.add({ key: b.key, deleted: true }), "DUPLICATE_KEY");
      await rejectsWith(writer.add({ key: Buffer.from(b.key), doc: c.doc }), "DUPLICATE_KEY");
      // A refused entry leaves the writer as it was.
      await writer.add(c);
      const run = await writer.finish();
      expect(run.count).toBe(3);
      expectSameEntries(await readAll(run, store.getBlock), [a, b, c]);
    }
  });

  it("refuses deletion markers in a base run", async () => {
    const writer = new RunWriter(() => {}, { kind: "base" });
    await writer.add(a);
    const error = await rejectsWith(writer.add(deletion(2)), "DELETION_IN_BASE");
    expect(error.message).toMatch(/base run/);
    const delta = new RunWriter(() => {}, { kind: "delta" });
    await delta.add(deletion(2));
    expect((await delta.finish()).deletions).toBe(1);
  });

  it("refuses entries that are not a key and one whole BSON document", async () => {
    const writer = new RunWriter(() => {}, { kind: "delta" });
    const doc = b.doc;
    const wrongLength = Buffer.from(doc);
    wrongLength.writeInt32LE(doc.length + 1, 0);
    const noTerminator = Buffer.from(doc);
    noTerminator[doc.length - 1] = 1;
    const bad: unknown[] = [
      { key: Buffer.alloc(0), doc },
      { key: "02", doc },
      { key: b.key },
      { key: b.key, doc: new Uint8Array(doc) },
      { key: b.key, doc: doc.subarray(0, 4) },
      { key: b.key, doc: Buffer.concat([doc, Buffer.from([0])]) },
      { key: b.key, doc: wrongLength },
      { key: b.key, doc: noTerminator },
    ];
    for (const entry of bad) await rejectsWith(writer.add(entry as RunEntry), "BAD_ENTRY");
    await writer.add(b);
    expect((await writer.finish()).count).toBe(1);
  });

  it("checks keys against documents' _id when asked", async () => {
    const checking = new RunWriter(() => {}, { kind: "base", checkIdKeys: true });
    await rejectsWith(checking.add({ key: a.key, doc: b.doc }), "BAD_ENTRY");
    const noId = Buffer.from(serialize({ v: 1 }));
    const error = await rejectsWith(checking.add({ key: a.key, doc: noId }), "BAD_ENTRY");
    expect(error.message).toMatch(/no readable _id/);
    await checking.add(a);
    const trusting = new RunWriter(() => {}, { kind: "base" });
    await trusting.add({ key: a.key, doc: b.doc });
  });

  it("refuses adds after finish, and finishing twice", async () => {
    const writer = new RunWriter(() => {}, { kind: "base" });
    await writer.add(a);
    await writer.finish();
    await rejectsWith(writer.add(b), "FINISHED");
    await rejectsWith(writer.finish(), "FINISHED");
  });

  it("refuses a second add while the first still waits for the sink", async () => {
    const store = new MemoryStore({ checkStoredBytes: true });
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const writer = new RunWriter(
      async (block) => {
        await gate;
        store.sink(block);
      },
      { kind: "base", targetBlockBytes: 64 },
    );
    const big = documentEntry({ _id: 1, payload: "x".repeat(100) });
    const first = writer.add(big);
    await rejectsWith(writer.add(documentEntry({ _id: 2, payload: "y".repeat(100) })), "BUSY");
    await rejectsWith(writer.finish(), "BUSY");
    release();
    await first;
    await writer.add(documentEntry({ _id: 2, payload: "y".repeat(100) }));
    const run = await writer.finish();
    expect(run.blocks.map((block) => block.count)).toEqual([1, 1]);
    expect((await readAll(run, store.getBlock)).length).toBe(2);
  });

  it("becomes unusable once its sink fails", async () => {
    for (const async of [false, true]) {
      const failure = new Error("disk full");
      let calls = 0;
      const writer = new RunWriter(
        async () => {
          calls++;
          if (calls === 2) {
            if (async) await new Promise((resolve) => setTimeout(resolve, 1));
            throw failure;
          }
        },
        { kind: "base", targetBlockBytes: 64 },
      );
      const entries = intDocuments(10, 4);
      await writer.add(entries[0]);
      await expect(writer.add(entries[1])).rejects.toBe(failure);
      await rejectsWith(writer.add(entries[2]), "FINISHED");
      const error = await rejectsWith(writer.finish(), "FINISHED");
      expect(error.message).toMatch(/failed earlier/);
      expect(calls).toBe(2);
    }
  });

  it("becomes unusable when the sink fails on the last block", async () => {
    const writer = new RunWriter(
      () => {
        throw new Error("bucket gone");
      },
      { kind: "base" },
    );
    await writer.add(a);
    await expect(writer.finish()).rejects.toThrow("bucket gone");
    await rejectsWith(writer.finish(), "FINISHED");
    await rejectsWith(writer.add(b), "FINISHED");
  });

  it("copies entries, so callers may reuse their buffers", async () => {
    const store = new MemoryStore({ checkStoredBytes: true });
    const writer = new RunWriter(store.sink, { kind: "base" });
    const scratchKey = Buffer.alloc(a.key.length);
    const scratchDoc = Buffer.alloc(a.doc.length);
    for (const entry of [a, b]) {
      entry.key.copy(scratchKey);
      entry.doc.copy(scratchDoc);
      await writer.add({ key: scratchKey, doc: scratchDoc });
    }
    expectSameEntries(await readAll(await writer.finish(), store.getBlock), [a, b]);
  });
});

describe("RunWriter descriptors", () => {
  it("adds up: totals are the sums of the blocks and of the entries", async () => {
    for (const codec of CODECS) {
      const store = new MemoryStore({ checkStoredBytes: true });
      const random = prng(5);
      const entries = byKey(
        Array.from({ length: 400 }, (_, i) =>
          random() < 0.3
            ? deletion(`k${String(i).padStart(4, "0")}`)
            : documentEntry({ _id: `k${String(i).padStart(4, "0")}`, n: i, s: "z".repeat(i % 97) }),
        ),
      );
      const run = await writeRun(entries, store.sink, { kind: "delta", targetBlockBytes: 1024, codec });
      expect(run).toMatchObject({ format: 1, kind: "delta", codec });
      const documents = entries.filter((e): e is DocumentEntry => !e.deleted);
      expect(run.count).toBe(entries.length);
      expect(run.deletions).toBe(entries.length - documents.length);
      expect(run.logicalBytes).toBe(documents.reduce((n, e) => n + e.doc.length, 0));
      expect(run.storedBytes).toBe(
        run.blocks.reduce((n, block) => n + store.blocks.get(block.hash)!.length, 0),
      );
      for (const field of ["count", "deletions", "logicalBytes", "storedBytes"] as const) {
        expect(run.blocks.reduce((n, block) => n + block[field], 0)).toBe(run[field]);
      }
      expect(run.blocks[0].firstKey).toBe(entries[0].key.toString("hex"));
      expect(run.blocks.at(-1)!.lastKey).toBe(entries.at(-1)!.key.toString("hex"));
      // The descriptor survives a manifest's JSON round trip, and checks out.
      expect(parseRunDescriptor(JSON.parse(JSON.stringify(run)))).toEqual(run);
      expectSameEntries(await readAll(run, store.getBlock), entries);
    }
  });

  it("describes an empty run", async () => {
    const run = await new RunWriter(() => {}, { kind: "base" }).finish();
    expect(run).toEqual(emptyRun("base"));
    expect(parseRunDescriptor(run)).toEqual(run);
    expect(await readAll(run, new MemoryStore({ checkStoredBytes: true }).getBlock)).toEqual([]);
  });
});

describe("parseRunDescriptor refuses malformed and tampered descriptors", () => {
  async function sampleRuns(): Promise<{ base: RunDescriptor; delta: RunDescriptor }> {
    const base = await writeRun(intDocuments(200, 6), () => {}, { kind: "base", targetBlockBytes: 1024 });
    const delta = await writeRun(
      Array.from({ length: 200 }, (_, i) =>
        i % 3 === 0 ? deletion(i) : documentEntry({ _id: i, v: "w".repeat(i) }),
      ),
      () => {},
      { kind: "delta", targetBlockBytes: 1024 },
    );
    expect(base.blocks.length).toBeGreaterThan(3);
    expect(delta.blocks.length).toBeGreaterThan(3);
    return { base, delta };
  }

  function refuses(run: RunDescriptor, tamper: (run: RunDescriptor) => void, message?: RegExp): void {
    const copy = structuredClone(run) as RunDescriptor;
    tamper(copy);
    throwsRun(() => parseRunDescriptor(copy), "BAD_DESCRIPTOR");
    if (message) expect(() => parseRunDescriptor(copy)).toThrow(message);
  }

  it("accepts what the writer wrote", async () => {
    const { base, delta } = await sampleRuns();
    expect(parseRunDescriptor(base)).toEqual(base);
    expect(parseRunDescriptor(delta)).toEqual(delta);
  });

  it("refuses totals that are not the sums of the blocks", async () => {
    const { delta } = await sampleRuns();
    for (const field of ["count", "deletions", "logicalBytes", "storedBytes"] as const) {
      refuses(delta, (run) => (run[field] += 1), new RegExp(`says ${field}`));
      refuses(delta, (run) => (run.blocks[1][field] += 1));
    }
    refuses(delta, (run) => run.blocks.pop());
  });

  it("refuses blocks out of key order or overlapping", async () => {
    const { base } = await sampleRuns();
    refuses(base, (run) => run.blocks.reverse(), /does not start after/);
    refuses(base, (run) => ([run.blocks[1], run.blocks[2]] = [run.blocks[2], run.blocks[1]]));
    refuses(base, (run) => (run.blocks[2].firstKey = run.blocks[1].lastKey), /does not start after/);
    refuses(
      base,
      (run) => {
        run.blocks.splice(2, 0, structuredClone(run.blocks[1]));
        for (const field of ["count", "deletions", "logicalBytes", "storedBytes"] as const) {
          run[field] += run.blocks[1][field];
        }
      },
      /does not start after/,
    );
    refuses(base, (run) => {
      const block = run.blocks.find((b) => b.count > 1)!;
      [block.firstKey, block.lastKey] = [block.lastKey, block.firstKey];
    });
  });

  it("refuses first and last keys that do not fit the block's count", async () => {
    const { base } = await sampleRuns();
    const multi = base.blocks.findIndex((block) => block.count > 1);
    const single = base.blocks.findIndex((block) => block.count === 1);
    expect(multi).toBeGreaterThanOrEqual(0);
    refuses(base, (run) => {
      run.count -= run.blocks[multi].count - 1;
      run.blocks[multi].count = 1;
    });
    refuses(base, (run) => (run.blocks[multi].lastKey = run.blocks[multi].firstKey));
    if (single >= 0) {
      refuses(base, (run) => {
        run.blocks[single].count = 2;
        run.count += 1;
      });
    }
  });

  it("refuses deletion markers in a base, and more deletions than entries", async () => {
    const { base, delta } = await sampleRuns();
    refuses(
      base,
      (run) => {
        run.blocks[0].deletions = 1;
        run.deletions = 1;
      },
      /base run with deletion markers/,
    );
    // A delta relabelled as a base.
    refuses(delta, (run) => (run.kind = "base"), /base run with deletion markers/);
    refuses(delta, (run) => {
      const block = run.blocks[0];
      run.deletions += block.count + 1 - block.deletions;
      block.deletions = block.count + 1;
    });
  });

  it("refuses impossible byte counts", async () => {
    const { base, delta } = await sampleRuns();
    refuses(base, (run) => {
      run.storedBytes -= run.blocks[0].storedBytes - (BLOCK_HEADER_SIZE - 1);
      run.blocks[0].storedBytes = BLOCK_HEADER_SIZE - 1;
    });
    refuses(base, (run) => {
      const block = run.blocks[0];
      run.logicalBytes -= block.logicalBytes - (5 * block.count - 1);
      block.logicalBytes = 5 * block.count - 1;
    });
    // A block of nothing but deletion markers holds no document bytes.
    const allDeletions = await writeRun([deletion(1), deletion(2)], () => {}, { kind: "delta" });
    expect(parseRunDescriptor(allDeletions).deletions).toBe(2);
    refuses(allDeletions, (run) => {
      run.blocks[0].logicalBytes = 10;
      run.logicalBytes = 10;
    });
    expect(parseRunDescriptor(delta)).toEqual(delta);
  });

  it("refuses malformed shapes", async () => {
    const { base } = await sampleRuns();
    const cases: Array<(run: Record<string, unknown> & RunDescriptor) => void> = [
      (run) => ((run as Record<string, unknown>).format = 2),
      (run) => ((run as Record<string, unknown>).kind = "full"),
      (run) => ((run as Record<string, unknown>).codec = "lz4"),
      (run) => delete (run as Partial<RunDescriptor>).blocks,
      (run) => ((run as Record<string, unknown>).count = -1),
      (run) => ((run as Record<string, unknown>).count = 1.5),
      (run) => ((run as Record<string, unknown>).count = "200"),
      (run) => (run.blocks[0].hash = run.blocks[0].hash.slice(1)),
      (run) => (run.blocks[0].hash = run.blocks[0].hash.toUpperCase()),
      (run) => (run.blocks[0].firstKey = run.blocks[0].firstKey.toUpperCase() + "zz"),
      (run) => (run.blocks[0].firstKey = ""),
      (run) => (run.blocks[0].lastKey = run.blocks[0].lastKey + "0"),
      (run) => (run.blocks[0].count = 0),
    ];
    for (const tamper of cases) refuses(base, tamper as (run: RunDescriptor) => void);
    for (const value of [null, undefined, "run", 42, [], {}])
      throwsRun(() => parseRunDescriptor(value), "BAD_DESCRIPTOR");
  });
});

describe("deterministic, content-defined blocks", () => {
  it("gives the same blocks for the same entries, and the same boundaries with any codec", async () => {
    const entries = intDocuments(2000, 7);
    const runs = await Promise.all(
      CODECS.map((codec) => writeRun(entries, () => {}, { kind: "base", targetBlockBytes: 2048, codec })),
    );
    const again = await writeRun(entries, () => {}, {
      kind: "base",
      targetBlockBytes: 2048,
      codec: CODECS[0],
    });
    expect(again).toEqual(runs[0]);
    const boundaries = (run: RunDescriptor) => run.blocks.map((block) => [block.firstKey, block.lastKey]);
    for (const run of runs) expect(boundaries(run)).toEqual(boundaries(runs[0]));
    expect(new Set(runs.map((run) => run.blocks[0].hash)).size).toBe(CODECS.length);
  });

  it("shares most blocks with the previous base after deletions at the front and inserts in the middle", async () => {
    const target = 4096;
    const first = intDocuments(4000, 8, (i) => 2 * i);
    const inserted = intDocuments(100, 9, (i) => 4001 + 2 * i); // odd _ids between 4000 and 4200
    const second = byKey([...first.slice(400), ...inserted]);
    const a = await writeRun(first, () => {}, { kind: "base", targetBlockBytes: target });
    const b = await writeRun(second, () => {}, { kind: "base", targetBlockBytes: target });
    const hashes = new Set(a.blocks.map((block) => block.hash));
    const shared = b.blocks.filter((block) => hashes.has(block.hash)).length;
    expect(b.blocks.length).toBeGreaterThan(100);
    expect(shared / b.blocks.length).toBeGreaterThan(0.9);
    // The blocks that differ are the first and those around the inserts (which interleave with
    // the documents _id 4000 to 4200), not blocks spread through the run.
    const low = encodeIdKeyFromDocument(serialize({ _id: 4000 }));
    const high = encodeIdKeyFromDocument(serialize({ _id: 4200 }));
    const touched = b.blocks.flatMap((block, i) =>
      Buffer.compare(Buffer.from(block.lastKey, "hex"), low) >= 0 &&
      Buffer.compare(Buffer.from(block.firstKey, "hex"), high) <= 0
        ? [i]
        : [],
    );
    expect(touched.length).toBeGreaterThan(5);
    b.blocks.forEach((block, i) => {
      if (hashes.has(block.hash) || i === 0) return;
      expect(i, `changed block ${i}`).toBeGreaterThanOrEqual(touched[0] - 1);
      expect(i, `changed block ${i}`).toBeLessThanOrEqual(touched.at(-1)! + 1);
    });
  });
});

describe("RunReader", () => {
  async function sample(): Promise<{ store: MemoryStore; run: RunDescriptor; entries: RunEntry[] }> {
    const store = new MemoryStore({ checkStoredBytes: true });
    const entries = byKey([
      ...intDocuments(300, 10),
      ...Array.from({ length: 50 }, (_, i) => deletion(`gone-${i}`)),
      ...Array.from({ length: 50 }, (_, i) =>
        documentEntry({ _id: new ObjectId(Buffer.alloc(12, i + 1)), nested: { i } }),
      ),
    ]);
    const run = await writeRun(entries, store.sink, { kind: "delta", targetBlockBytes: 2048 });
    expect(run.blocks.length).toBeGreaterThan(4);
    return { store, run, entries };
  }

  it("reads back every entry, fetching one block at a time", async () => {
    const { store, run, entries } = await sample();
    const iterator = new RunReader(run, store.getBlock)[Symbol.asyncIterator]();
    const firstEntry = await iterator.next();
    expect(firstEntry.value?.key.equals(entries[0].key)).toBe(true);
    expect(store.fetched).toEqual([run.blocks[0].hash]);
    for (let i = 1; i < run.blocks[0].count; i++) await iterator.next();
    expect(store.fetched.length).toBe(1);
    await iterator.next();
    expect(store.fetched).toEqual([run.blocks[0].hash, run.blocks[1].hash]);
    await iterator.return(undefined);
    store.fetched.length = 0;
    expectSameEntries(await readAll(run, store.getBlock), entries);
    expect(store.fetched).toEqual(run.blocks.map((block) => block.hash));
  });

  it("reads a store that returns plain Uint8Arrays", async () => {
    const { store, run, entries } = await sample();
    const plain: GetBlock = async (hash) => new Uint8Array(await store.getBlock(hash));
    expectSameEntries(await readAll(run, plain), entries);
  });

  it("refuses a block whose content does not match its ref (REF_MISMATCH)", async () => {
    const { store, run } = await sample();
    const tampers: Array<(run: RunDescriptor) => void> = [
      (r) => (r.blocks[1].count += 1),
      (r) => (r.blocks[1].deletions += 1),
      (r) => (r.blocks[1].logicalBytes += 1),
      (r) => (r.blocks[1].firstKey = r.blocks[0].lastKey + "00"),
      (r) => (r.blocks[1].lastKey = r.blocks[1].lastKey + "00"),
      (r) => (r.codec = "gzip"),
    ];
    for (const tamper of tampers) {
      const copy = structuredClone(run);
      tamper(copy);
      expect(await blockErrorOf(readAll(copy, store.getBlock))).toBe("REF_MISMATCH");
    }
    // The entries before the mismatched block were read; the error names the block.
    const copy = structuredClone(run);
    copy.blocks[2].count += 1;
    const seen: RunEntry[] = [];
    await expect(
      (async () => {
        for await (const entry of new RunReader(copy, store.getBlock)) seen.push(entry);
      })(),
    ).rejects.toThrow(/delta run block 3 of \d+ .*it holds entries: \d+, the run descriptor says/);
    expect(seen.length).toBe(run.blocks[0].count + run.blocks[1].count);
  });

  it("refuses blocks listed out of order", async () => {
    const { store, run } = await sample();
    const copy = structuredClone(run);
    [copy.blocks[1], copy.blocks[2]] = [copy.blocks[2], copy.blocks[1]];
    await expect(readAll(copy, store.getBlock)).rejects.toSatisfy(
      (error) => error instanceof RunError && error.code === "BAD_DESCRIPTOR",
    );
  });

  it("refuses a store that returns the wrong bytes (HASH_MISMATCH)", async () => {
    const { store, run } = await sample();
    const other: GetBlock = async (hash) =>
      store.getBlock(hash === run.blocks[2].hash ? run.blocks[3].hash : hash);
    expect(await blockErrorOf(readAll(run, other))).toBe("HASH_MISMATCH");
    const flipped: GetBlock = async (hash) => {
      const bytes = Buffer.from(await store.getBlock(hash));
      if (hash === run.blocks[1].hash) bytes[bytes.length >> 1] ^= 0x10;
      return bytes;
    };
    expect(await blockErrorOf(readAll(run, flipped))).toBe("HASH_MISMATCH");
    const truncated: GetBlock = async (hash) => (await store.getBlock(hash)).subarray(0, 100);
    expect(await blockErrorOf(readAll(run, truncated))).toBe("HASH_MISMATCH");
  });

  it("checks documents' keys when asked", async () => {
    const store = new MemoryStore({ checkStoredBytes: true });
    const one = documentEntry({ _id: 1 });
    const run = await writeRun([{ key: one.key, doc: documentEntry({ _id: 2 }).doc }], store.sink, {
      kind: "base",
    });
    expect(await blockErrorOf(readAll(run, store.getBlock))).toBe("KEY_MISMATCH");
    const read: RunEntry[] = [];
    for await (const entry of new RunReader(run, store.getBlock)) read.push(entry);
    expect(read.length).toBe(1);
  });
});
