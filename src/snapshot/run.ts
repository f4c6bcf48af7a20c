import { z } from "zod";
import { encodeIdKeyFromDocument } from "../bson/keyEncoding.js";
import { CODECS, type Codec } from "../slice/codecs.js";
import {
  BLOCK_HEADER_SIZE,
  BlockBodyBuilder,
  decodeBlock,
  encodeBlock,
  encodedEntrySize,
  type DecodeBlockOptions,
  type RunEntry,
} from "./block.js";
import { corruptBlock, RunError } from "./errors.js";
import { blockHash } from "./stores/blockStore.js";

/*
 * A sorted run: entries in strictly increasing `_id` key order, cut into blocks (block.ts). A
 * collection's snapshot is a chain of runs, a base (every document) and deltas (changed documents
 * and deletion markers); merge.ts reads a chain back in `_id` order.
 *
 * Block boundaries are content-defined at entry granularity: after each entry, once the block
 * holds at least a quarter of the target, the block ends if a hash of the entry's key falls under
 * a threshold proportional to the entry's size, so blocks average about `targetBlockBytes`. A
 * boundary depends only on the entries near it, not on where the run starts, so a new base written
 * after documents were deleted at the front (a TTL collection) or inserted in the middle shares
 * every block away from the changes with the base before it. Limits: a block never exceeds twice
 * the target, except that an entry larger than the target is a block of its own.
 */

export const DEFAULT_TARGET_BLOCK_BYTES = 1024 * 1024;

export type RunKind = "base" | "delta";

const HEX = /^[0-9a-f]*$/;
const hex = (what: string) => z.string().regex(HEX, `${what} must be lowercase hex`);
const count = z.number().int().nonnegative();

export const BlockRef = z.object({
  /** SHA-256 of the stored bytes, hex: the block's address. */
  hash: hex("hash").length(64),
  storedBytes: count,
  /** First and last key in the block, hex. */
  firstKey: hex("firstKey").min(2),
  lastKey: hex("lastKey").min(2),
  /** Entries (documents and deletion markers). */
  count: count.min(1),
  deletions: count,
  /** Sum of the documents' BSON sizes. */
  logicalBytes: count,
});
export type BlockRef = z.infer<typeof BlockRef>;

/** What a manifest holds for one run: JSON-serialisable, keys in hex. */
export const RunDescriptor = z.object({
  format: z.literal(1),
  kind: z.enum(["base", "delta"]),
  codec: z.enum(CODECS as [Codec, ...Codec[]]),
  count,
  deletions: count,
  logicalBytes: count,
  storedBytes: count,
  blocks: z.array(BlockRef),
});
export type RunDescriptor = z.infer<typeof RunDescriptor>;

/** One block as the writer hands it to a store: its ref and its stored bytes. */
export interface EncodedBlock extends BlockRef {
  bytes: Buffer;
}

/** Where the writer puts each block (a store's put); awaited before the next block is built. */
export type BlockSink = (block: EncodedBlock) => void | Promise<void>;

export interface RunWriterOptions {
  kind: RunKind;
  /** Target uncompressed block size (default 1 MiB). */
  targetBlockBytes?: number;
  /** Block codec (default zstd). */
  codec?: Codec;
  /** Check that each document's key is the key of its `_id` (costs an encoding per document). */
  checkIdKeys?: boolean;
  /**
   * Encrypts each encoded block (src/snapshot/encryption); the block's address is then the hash
   * of the sealed bytes, which is what the store checks. Deterministic sealing keeps identical
   * blocks identical, so they still deduplicate.
   */
  seal?: (encoded: Buffer) => Buffer;
}

function badDescriptor(what: string): RunError {
  return new RunError("BAD_DESCRIPTOR", `the run descriptor ${what}; the manifest holding it is damaged`);
}

/**
 * Checks a descriptor read from a manifest: its shape, that its totals are the sums of its blocks,
 * that blocks are in key order without overlap, and that a base run has no deletion markers.
 */
export function parseRunDescriptor(value: unknown): RunDescriptor {
  const parsed = RunDescriptor.safeParse(value);
  if (!parsed.success) throw badDescriptor(`is malformed (${z.prettifyError(parsed.error)})`);
  const run = parsed.data;
  const sum = (field: "count" | "deletions" | "logicalBytes" | "storedBytes") =>
    run.blocks.reduce((total, block) => total + block[field], 0);
  for (const field of ["count", "deletions", "logicalBytes", "storedBytes"] as const) {
    if (sum(field) !== run[field])
      throw badDescriptor(`says ${field} ${run[field]}, its blocks add up to ${sum(field)}`);
  }
  if (run.kind === "base" && run.deletions > 0) throw badDescriptor("is a base run with deletion markers");
  let previousLast: string | undefined;
  run.blocks.forEach((block, i) => {
    if (block.deletions > block.count) throw badDescriptor(`block ${i} has more deletions than entries`);
    if (block.storedBytes < BLOCK_HEADER_SIZE)
      throw badDescriptor(`block ${i} is smaller than a block header`);
    // Every document is at least 5 bytes of BSON, and deletion markers have none.
    const documents = block.count - block.deletions;
    if (block.logicalBytes < 5 * documents || (documents === 0 && block.logicalBytes > 0)) {
      throw badDescriptor(
        `block ${i}'s ${block.logicalBytes} document bytes do not fit its ${documents} documents`,
      );
    }
    if (block.firstKey.length % 2 || block.lastKey.length % 2)
      throw badDescriptor(`block ${i} has odd-length keys`);
    const first = Buffer.from(block.firstKey, "hex");
    if (
      Buffer.compare(first, Buffer.from(block.lastKey, "hex")) > 0 ||
      (block.count === 1) !== (block.firstKey === block.lastKey)
    ) {
      throw badDescriptor(`block ${i}'s first and last keys do not fit its ${block.count} entries`);
    }
    if (previousLast !== undefined && Buffer.compare(Buffer.from(previousLast, "hex"), first) >= 0) {
      throw badDescriptor(`block ${i} does not start after block ${i - 1} ends`);
    }
    previousLast = block.lastKey;
  });
  return run;
}

/** A 32-bit hash of a key (FNV-1a, then murmur3's finaliser to spread sequential keys). Fixed forever: it places block boundaries. */
function keyHash(key: Buffer): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key[i], 0x01000193);
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * Writes one run: entries in strictly increasing key order, cut into blocks that go to `sink` one
 * at a time. Memory is one block (the body being filled, then its compressed copy).
 */
export class RunWriter {
  readonly kind: RunKind;
  readonly codec: Codec;
  private readonly target: number;
  private readonly minBlock: number;
  private readonly maxBlock: number;
  private readonly checkIdKeys: boolean;
  private readonly seal: ((encoded: Buffer) => Buffer) | undefined;
  private readonly builder: BlockBodyBuilder;
  private readonly blocks: BlockRef[] = [];
  /** The last key of the previous block (the builder's lastKey covers the current one). */
  private previousKey: Buffer | undefined;
  private finished = false;
  private failed: unknown;
  /** Set while an add or finish waits for the sink: a second call then would reorder blocks. */
  private busy = false;

  constructor(
    private readonly sink: BlockSink,
    options: RunWriterOptions,
  ) {
    this.kind = options.kind;
    this.codec = options.codec ?? "zstd";
    this.target = options.targetBlockBytes ?? DEFAULT_TARGET_BLOCK_BYTES;
    if (!Number.isSafeInteger(this.target) || this.target < 64) {
      throw new RangeError(`targetBlockBytes must be a whole number of at least 64, not ${this.target}`);
    }
    this.minBlock = Math.floor(this.target / 4);
    this.maxBlock = 2 * this.target;
    this.checkIdKeys = options.checkIdKeys ?? false;
    this.seal = options.seal;
    this.builder = new BlockBodyBuilder(this.maxBlock + 1024);
  }

  /** Adds the next entry; resolves once any block it completed is in the sink. Refuses misuse. */
  async add(entry: RunEntry): Promise<void> {
    this.checkUsable();
    this.checkEntry(entry);
    this.busy = true;
    try {
      const size = encodedEntrySize(entry);
      const builder = this.builder;
      if (size >= this.target || builder.length + size > this.maxBlock) {
        if (builder.count > 0) await this.flush();
      }
      builder.add(entry);
      if (size >= this.target) await this.flush();
      else if (
        builder.length >= this.minBlock &&
        keyHash(entry.key) / 2 ** 32 < size / (this.target - this.minBlock)
      ) {
        await this.flush();
      }
    } finally {
      this.busy = false;
    }
  }

  /** Writes the last block and returns the run's descriptor. */
  async finish(): Promise<RunDescriptor> {
    this.checkUsable();
    this.busy = true;
    try {
      if (this.builder.count > 0) await this.flush();
    } finally {
      this.busy = false;
    }
    this.finished = true;
    const total = (field: "count" | "deletions" | "logicalBytes" | "storedBytes") =>
      this.blocks.reduce((sum, block) => sum + block[field], 0);
    return {
      format: 1,
      kind: this.kind,
      codec: this.codec,
      count: total("count"),
      deletions: total("deletions"),
      logicalBytes: total("logicalBytes"),
      storedBytes: total("storedBytes"),
      blocks: this.blocks,
    };
  }

  private checkUsable(): void {
    if (this.failed !== undefined) {
      throw new RunError("FINISHED", "the run writer failed earlier (its sink threw); start a new run");
    }
    if (this.finished) throw new RunError("FINISHED", "the run is finished; start a new run writer");
    if (this.busy) {
      throw new RunError(
        "BUSY",
        "the run writer is still writing a block; await each add before the next (and before finish)",
      );
    }
  }

  private checkEntry(entry: RunEntry): void {
    if (!Buffer.isBuffer(entry.key) || entry.key.length === 0) {
      throw new RunError("BAD_ENTRY", "an entry's key must be a non-empty Buffer (an encoded _id key)");
    }
    if (entry.deleted === true) {
      if (this.kind === "base") {
        throw new RunError(
          "DELETION_IN_BASE",
          "a base run holds every document; it cannot hold deletion markers",
        );
      }
    } else {
      const doc = entry.doc;
      if (
        !Buffer.isBuffer(doc) ||
        doc.length < 5 ||
        doc.readInt32LE(0) !== doc.length ||
        doc[doc.length - 1] !== 0
      ) {
        throw new RunError("BAD_ENTRY", "an entry's doc must be one whole raw BSON document (a Buffer)");
      }
      if (this.checkIdKeys) {
        let idKey: Buffer;
        try {
          idKey = encodeIdKeyFromDocument(doc);
        } catch (error) {
          const reason = error instanceof Error ? error.message : String(error);
          throw new RunError("BAD_ENTRY", `an entry's document has no readable _id (${reason})`);
        }
        if (!idKey.equals(entry.key)) {
          throw new RunError("BAD_ENTRY", "an entry's key is not the key of its document's _id");
        }
      }
    }
    const previous = this.builder.lastKey ?? this.previousKey;
    if (previous !== undefined) {
      const order = Buffer.compare(previous, entry.key);
      if (order === 0) {
        throw new RunError(
          "DUPLICATE_KEY",
          `key ${entry.key.toString("hex")} was added twice; a run holds each _id once`,
        );
      }
      if (order > 0) {
        throw new RunError(
          "OUT_OF_ORDER",
          `key ${entry.key.toString("hex")} comes before the previous key ${previous.toString("hex")}; ` +
            "a run's entries must be added in increasing _id key order",
        );
      }
    }
  }

  private async flush(): Promise<void> {
    const builder = this.builder;
    const encoded = encodeBlock(builder.body(), builder.count, this.codec);
    const bytes = this.seal ? this.seal(encoded) : encoded;
    const lastKey = Buffer.from(builder.lastKey!);
    const block: EncodedBlock = {
      hash: blockHash(bytes),
      storedBytes: bytes.length,
      firstKey: builder.firstKey!.toString("hex"),
      lastKey: lastKey.toString("hex"),
      count: builder.count,
      deletions: builder.deletions,
      logicalBytes: builder.logicalBytes,
      bytes,
    };
    this.previousKey = lastKey;
    builder.reset();
    try {
      await this.sink(block);
    } catch (error) {
      this.failed = error;
      throw error;
    }
    const { bytes: _bytes, ...ref } = block;
    this.blocks.push(ref);
  }
}

/** Writes `entries` (in key order) as one run. */
export async function writeRun(
  entries: Iterable<RunEntry> | AsyncIterable<RunEntry>,
  sink: BlockSink,
  options: RunWriterOptions,
): Promise<RunDescriptor> {
  const writer = new RunWriter(sink, options);
  for await (const entry of entries) await writer.add(entry);
  return writer.finish();
}

/** Fetches a block's stored bytes by its address (a store's get). */
export type GetBlock = (hash: string) => Promise<Uint8Array>;

export type RunReaderOptions = Pick<DecodeBlockOptions, "checkIdKeys" | "maxUncompressedBytes"> & {
  /** Decrypts sealed blocks (the inverse of RunWriterOptions.seal); their address is checked before. */
  open?: (sealed: Buffer) => Buffer;
};

/**
 * Iterates a run's entries in key order, fetching one block at a time and checking each against
 * its address and its ref in the descriptor. Keys and documents are views into the block's
 * decompressed body (kept alive only while the caller holds them).
 */
export class RunReader implements AsyncIterable<RunEntry> {
  constructor(
    readonly run: RunDescriptor,
    private readonly getBlock: GetBlock,
    private readonly options: RunReaderOptions = {},
  ) {}

  async *[Symbol.asyncIterator](): AsyncGenerator<RunEntry> {
    for await (const entries of this.blocks()) yield* entries;
  }

  /** The run's entries a block at a time (fewer steps than an entry at a time, for bulk reads). */
  async *blocks(): AsyncGenerator<readonly RunEntry[]> {
    const blocks = this.run.blocks;
    for (let i = 0; i < blocks.length; i++) {
      const ref = blocks[i];
      const label = `${this.run.kind} run block ${i + 1} of ${blocks.length} (${ref.hash.slice(0, 16)})`;
      const { open, ...decodeOptions } = this.options;
      const fetched = await this.getBlock(ref.hash);
      const decoded = open
        ? decodeBlock(open(sealedBytes(fetched, ref.hash, label)), { ...decodeOptions, label })
        : decodeBlock(fetched, { ...decodeOptions, expectedHash: ref.hash, label });
      const differs = (what: string, actual: unknown, expected: unknown) =>
        corruptBlock(
          "REF_MISMATCH",
          label,
          `it holds ${what} ${String(actual)}, the run descriptor says ${String(expected)}`,
        );
      if (decoded.codec !== this.run.codec) throw differs("codec", decoded.codec, this.run.codec);
      if (decoded.count !== ref.count || decoded.count === 0)
        throw differs("entries:", decoded.count, ref.count);
      if (decoded.deletions !== ref.deletions)
        throw differs("deletion markers:", decoded.deletions, ref.deletions);
      if (decoded.logicalBytes !== ref.logicalBytes)
        throw differs("document bytes:", decoded.logicalBytes, ref.logicalBytes);
      const first = decoded.entries[0].key.toString("hex");
      const last = decoded.entries[decoded.entries.length - 1].key.toString("hex");
      if (first !== ref.firstKey) throw differs("first key", first, ref.firstKey);
      if (last !== ref.lastKey) throw differs("last key", last, ref.lastKey);
      if (i > 0 && Buffer.compare(Buffer.from(blocks[i - 1].lastKey, "hex"), decoded.entries[0].key) >= 0) {
        throw new RunError("BAD_DESCRIPTOR", `${label} does not start after the block before it ends`);
      }
      yield decoded.entries;
    }
  }
}

/** Sealed bytes after checking they are the ones addressed (before spending a decryption on them). */
function sealedBytes(fetched: Uint8Array, hash: string, label: string): Buffer {
  const bytes = Buffer.from(fetched.buffer, fetched.byteOffset, fetched.byteLength);
  const actual = blockHash(bytes);
  if (actual !== hash)
    throw corruptBlock(
      "HASH_MISMATCH",
      label,
      `its ${bytes.length} bytes hash to ${actual}, not to its address`,
    );
  return bytes;
}
