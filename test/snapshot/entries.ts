/**
 * Builders and checks shared by the tests of blocks, runs and merged chains (block.test.ts,
 * run.test.ts, merge.test.ts): run entries from documents, a seeded PRNG, a block store in memory,
 * and the assertions those tests make on entries and run errors.
 */
import { serialize, type Document } from "bson";
import { expect } from "vitest";
import { encodeIdKeyFromDocument } from "../../src/bson/keyEncoding.js";
import { decodeBlock, type DocumentEntry, type RunEntry } from "../../src/snapshot/block.js";
import { blockHash } from "../../src/snapshot/stores/blockStore.js";
import { RunError, type RunErrorCode } from "../../src/snapshot/errors.js";
import type { BlockSink, EncodedBlock, GetBlock, RunDescriptor } from "../../src/snapshot/run.js";

/** mulberry32: a small seeded PRNG, so every run of these tests sees the same data. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

/** Raw BSON as a Buffer (bson types it as a Uint8Array; under Node it is a Buffer already). */
export function bson(doc: Document): Buffer {
  return Buffer.from(serialize(doc));
}

/** The entry of a document: its `_id` key and its raw BSON. */
export function documentEntry(doc: Document): DocumentEntry {
  const bytes = bson(doc);
  return { key: encodeIdKeyFromDocument(bytes), doc: bytes };
}

/** The deletion marker of the document with `_id` `id`. */
export function deletion(id: unknown): RunEntry {
  return { key: encodeIdKeyFromDocument(serialize({ _id: id })), deleted: true };
}

/** The entries sorted by key, as a run holds them. */
export function byKey<T extends RunEntry>(entries: Iterable<T>): T[] {
  return [...entries].sort((a, b) => Buffer.compare(a.key, b.key));
}

/** The descriptor of a run with nothing in it. */
export function emptyRun(kind: "base" | "delta"): RunDescriptor {
  return {
    format: 1,
    kind,
    codec: "zstd",
    count: 0,
    deletions: 0,
    logicalBytes: 0,
    storedBytes: 0,
    blocks: [],
  };
}

/**
 * A block store in a Map: the sink checks each block's address (and, with `checkStoredBytes`,
 * that it stores as many bytes as it has), getBlock records every fetch.
 */
export class MemoryStore {
  readonly blocks = new Map<string, Buffer>();
  readonly fetched: string[] = [];

  constructor(private readonly options: { checkStoredBytes?: boolean } = {}) {}

  readonly sink: BlockSink = (block: EncodedBlock) => {
    expect(block.hash).toBe(blockHash(block.bytes));
    if (this.options.checkStoredBytes) expect(block.storedBytes).toBe(block.bytes.length);
    this.blocks.set(block.hash, Buffer.from(block.bytes));
  };

  readonly getBlock: GetBlock = async (hash: string) => {
    this.fetched.push(hash);
    const bytes = this.blocks.get(hash);
    if (!bytes) throw new Error(`no block ${hash}`);
    return bytes;
  };

  /** The uncompressed body length of a stored block. */
  bodyLength(hash: string): number {
    return decodeBlock(this.blocks.get(hash)!).body.length;
  }
}

/** The same entries in the same order: keys, kinds (document or deletion) and documents. */
export function expectSameEntries(actual: readonly RunEntry[], expected: readonly RunEntry[]): void {
  expect(actual.length).toBe(expected.length);
  actual.forEach((entry, i) => {
    const want = expected[i];
    expect(entry.key.equals(want.key), `key ${i}`).toBe(true);
    expect(entry.deleted === true, `kind ${i}`).toBe(want.deleted === true);
    if (!entry.deleted && !want.deleted) expect(entry.doc.equals(want.doc), `doc ${i}`).toBe(true);
  });
}

/** `promise` rejects with a RunError of `code`; returns the error. */
export async function rejectsWith(promise: Promise<unknown>, code: RunErrorCode): Promise<RunError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(RunError);
  expect((error as RunError).code).toBe(code);
  return error as RunError;
}
