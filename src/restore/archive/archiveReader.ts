import { Readable, pipeline } from "node:stream";
import { createGunzip } from "node:zlib";
import { BSON, type Document } from "bson";
import { parseMetadataJson, type MongodumpMetadata } from "../../snapshot/fsStore/metadata.js";
import { MAX_DOCUMENT_BYTES } from "../../snapshot/fsStore/streams.js";
import { Crc64 } from "./crc.js";
import { ArchiveError, namespaceName, type ArchiveErrorCode } from "./errors.js";
import {
  ARCHIVE_MAGIC,
  ARCHIVE_VERSION,
  BUCKETS_PREFIX,
  GZIP_MAGIC,
  bsonProblem,
  namespaceKey,
} from "./format.js";

/** The archive's header document. */
export interface ArchiveHeader {
  /** How many namespaces mongodump wrote at once (`--numParallelCollections`). */
  concurrentCollections: number;
  /** Archive format version, always "0.1". */
  version: string;
  serverVersion: string;
  toolVersion: string;
}

/** One prelude entry: a namespace the archive holds, with its metadata. */
export interface ArchiveNamespace {
  db: string;
  /** The collection (or view, or timeseries collection) name; "oplog" with db "" for the oplog. */
  collection: string;
  /** The prelude's metadata string: the `<coll>.metadata.json` text ("" for the oplog). */
  metadataJson: string;
  /**
   * The parsed metadata; undefined when `metadataJson` is empty (the oplog) or, with
   * `strictMetadata: false`, cannot be parsed (then `metadataProblem` says why).
   */
  metadata: MongodumpMetadata | undefined;
  metadataProblem?: string;
  /** The prelude's `size` (mongodump writes 0). */
  size: number;
  /** The prelude's `type` as written ("collection", "view", "timeseries", ""), undefined if absent (old archives). */
  type: string | undefined;
  /** What the namespace is, from `type` or else the metadata. */
  kind: "collection" | "view" | "timeseries" | "oplog";
  /**
   * The collection whose segments hold this namespace's documents: the collection itself,
   * `system.buckets.<name>` for a timeseries collection, undefined for a view (no data).
   */
  dataCollection: string | undefined;
}

/** A document of a namespace, in archive order (segments of namespaces interleave). */
export interface ArchiveDocumentEvent {
  kind: "document";
  db: string;
  /** The collection the document belongs to (`system.buckets.<name>` for timeseries data). */
  collection: string;
  /** The raw BSON document (a view the caller may keep; nothing else writes to it). */
  doc: Buffer;
  /** Byte offset of the document in the (uncompressed) archive. */
  offset: number;
}

/** A namespace's EOF block: all its documents have been yielded and their CRC-64 matched. */
export interface ArchiveNamespaceEndEvent {
  kind: "namespaceEnd";
  db: string;
  collection: string;
  documents: number;
  bytes: number;
  /** The verified CRC-64 as stored in the archive (signed int64). */
  crc: bigint;
}

export type ArchiveEvent = ArchiveDocumentEvent | ArchiveNamespaceEndEvent;

export interface ArchiveReaderOptions {
  /**
   * Check every document's BSON structure (element types and lengths, embedded documents), not
   * only its length prefix and final NUL. Default true.
   */
  validateBson?: boolean;
  /** Throw (code METADATA) for a prelude metadata string that does not parse. Default true. */
  strictMetadata?: boolean;
}

type Chunk = Uint8Array | string;

/**
 * Opens a mongodump archive (plain or `--gzip`, told apart by the first bytes) and reads its header
 * and prelude. Iterate the returned reader for the documents, in archive order. Memory is bounded
 * by the largest document plus one input chunk.
 */
export async function openArchive(
  source: AsyncIterable<Chunk> | Iterable<Chunk>,
  options: ArchiveReaderOptions = {},
): Promise<ArchiveReader> {
  const raw = new ByteSource(toAsyncIterator(source), "raw");
  await raw.fill(4);
  const start = raw.peek(Math.min(4, raw.buffered));
  let bytes: ByteSource;
  let gzip = false;
  if (start.length >= 2 && start.subarray(0, 2).equals(GZIP_MAGIC)) {
    gzip = true;
    const gunzip = createGunzip();
    pipeline(Readable.from(raw.rest()), gunzip, () => {});
    bytes = new ByteSource(gunzip[Symbol.asyncIterator]() as AsyncIterator<Chunk>, "gzip");
  } else {
    bytes = raw;
  }
  if (!(await bytes.fill(4)) || !bytes.peek(4).equals(ARCHIVE_MAGIC)) {
    const seen = bytes.peek(Math.min(4, bytes.buffered));
    throw new ArchiveError(seen.length < 4 && gzip ? "TRUNCATED" : "BAD_MAGIC", {
      problem:
        `not a mongodump archive: it starts with ${hex(seen) || "nothing"}, not 6d e2 99 81 ` +
        (gzip ? "(after gunzip)" : "(the archive magic) or 1f 8b (gzip)"),
      offset: 0,
    });
  }
  bytes.take(4);
  const reader = new ArchiveReader(bytes, gzip, options);
  await reader._readPrelude();
  return reader;
}

interface NamespaceState {
  db: string;
  collection: string;
  crc: Crc64;
  documents: number;
  bytes: number;
  opened: boolean;
  ended: boolean;
}

/** Reads a mongodump archive; created by `openArchive`. Iterate it once for the documents. */
export class ArchiveReader implements AsyncIterable<ArchiveEvent> {
  /** True if the archive was gzipped. */
  readonly gzip: boolean;
  #header: ArchiveHeader | undefined;
  #namespaces: ArchiveNamespace[] = [];
  readonly #source: ByteSource;
  readonly #options: Required<ArchiveReaderOptions>;
  readonly #states = new Map<string, NamespaceState>();
  readonly #results: ArchiveNamespaceEndEvent[] = [];
  #iterated = false;
  #complete = false;

  /** @internal use `openArchive` */
  constructor(source: ByteSource, gzip: boolean, options: ArchiveReaderOptions) {
    this.#source = source;
    this.gzip = gzip;
    this.#options = {
      validateBson: options.validateBson ?? true,
      strictMetadata: options.strictMetadata ?? true,
    };
  }

  get header(): ArchiveHeader {
    if (!this.#header) throw new Error("the archive is not open");
    return this.#header;
  }

  /** The prelude: every namespace of the archive, in prelude order. */
  get namespaces(): readonly ArchiveNamespace[] {
    return this.#namespaces;
  }

  /** Each namespace's verified EOF block, in archive order (complete once iteration has ended). */
  get results(): readonly ArchiveNamespaceEndEvent[] {
    return this.#results;
  }

  /** True once iteration reached the end of a complete, verified archive. */
  get complete(): boolean {
    return this.#complete;
  }

  /** @internal */
  async _readPrelude(): Promise<void> {
    const headerDoc = await this.#readStructure("the archive header");
    if (headerDoc === undefined)
      throw this.#error("MALFORMED", "a terminator where the archive header should be");
    const version = headerDoc.value.version;
    if (version !== ARCHIVE_VERSION) {
      throw this.#error("UNSUPPORTED", `archive format version ${JSON.stringify(version)} is not "0.1"`, {
        offset: headerDoc.offset,
      });
    }
    this.#header = {
      concurrentCollections: toNumber(headerDoc.value.concurrent_collections) ?? 1,
      version,
      serverVersion: stringOr(headerDoc.value.server_version, ""),
      toolVersion: stringOr(headerDoc.value.tool_version, ""),
    };
    const seen = new Set<string>();
    while (true) {
      const entry = await this.#readStructure("a prelude entry");
      if (entry === undefined) break;
      const namespace = this.#preludeEntry(entry.value, entry.offset);
      const key = namespaceKey(namespace.db, namespace.collection);
      if (seen.has(key)) {
        throw this.#error("MALFORMED", "the prelude names this namespace twice", {
          db: namespace.db,
          collection: namespace.collection,
          offset: entry.offset,
        });
      }
      seen.add(key);
      this.#namespaces.push(namespace);
      if (namespace.dataCollection !== undefined) {
        const dataKey = namespaceKey(namespace.db, namespace.dataCollection);
        this.#states.set(dataKey, {
          db: namespace.db,
          collection: namespace.dataCollection,
          crc: new Crc64(),
          documents: 0,
          bytes: 0,
          opened: false,
          ended: false,
        });
      }
    }
  }

  #preludeEntry(doc: Document, offset: number): ArchiveNamespace {
    const { db, collection, metadata } = doc;
    if (typeof db !== "string" || typeof collection !== "string" || typeof metadata !== "string") {
      throw this.#error("MALFORMED", "a prelude entry lacks a string db, collection or metadata", { offset });
    }
    const type = typeof doc.type === "string" ? doc.type : undefined;
    let parsed: MongodumpMetadata | undefined;
    let metadataProblem: string | undefined;
    if (metadata !== "") {
      try {
        parsed = parseMetadataJson(metadata, collection);
      } catch (err) {
        metadataProblem = `its metadata is not valid metadata.json: ${err instanceof Error ? err.message : String(err)}`;
        if (this.#options.strictMetadata) {
          throw this.#error("METADATA", metadataProblem, { db, collection, offset, cause: err });
        }
      }
    }
    let kind: ArchiveNamespace["kind"];
    if (type === "view" || type === "timeseries" || type === "collection") kind = type;
    else if (parsed) kind = parsed.type;
    else if (db === "" && collection === "oplog") kind = "oplog";
    else kind = "collection";
    const dataCollection =
      kind === "view" ? undefined : kind === "timeseries" ? BUCKETS_PREFIX + collection : collection;
    const namespace: ArchiveNamespace = {
      db,
      collection,
      metadataJson: metadata,
      metadata: parsed,
      size: toNumber(doc.size) ?? 0,
      type,
      kind,
      dataCollection,
    };
    if (metadataProblem !== undefined) namespace.metadataProblem = metadataProblem;
    return namespace;
  }

  [Symbol.asyncIterator](): AsyncIterator<ArchiveEvent> {
    if (this.#iterated) throw new TypeError("an ArchiveReader can be iterated only once");
    this.#iterated = true;
    return this.#events();
  }

  async *#events(): AsyncGenerator<ArchiveEvent> {
    try {
      yield* this.#readSegments();
    } finally {
      // Stopping early (or failing) releases the input stream (and the gunzip stream).
      await this.#source.close();
    }
  }

  async *#readSegments(): AsyncGenerator<ArchiveEvent> {
    const source = this.#source;
    while (await source.fill(1)) {
      const segment = await this.#readStructure("a namespace header");
      if (segment === undefined) {
        throw this.#error("MALFORMED", "a terminator where a namespace header should be", {
          offset: source.offset - 4,
        });
      }
      const { db, collection, EOF: eof, CRC: crc } = segment.value;
      if (typeof db !== "string" || typeof collection !== "string" || typeof eof !== "boolean") {
        throw this.#error("MALFORMED", "a namespace header lacks a string db, collection or boolean EOF", {
          offset: segment.offset,
        });
      }
      const state = this.#states.get(namespaceKey(db, collection));
      if (!state) {
        throw this.#error("MALFORMED", "the archive has data for a namespace its prelude does not list", {
          db,
          collection,
          offset: segment.offset,
        });
      }
      if (state.ended) {
        throw this.#error("MALFORMED", "a segment after the namespace's EOF block", {
          db,
          collection,
          offset: segment.offset,
        });
      }
      state.opened = true;
      if (eof) {
        if (typeof crc !== "bigint" && typeof crc !== "number") {
          throw this.#error("MALFORMED", "the EOF block has no integer CRC", {
            db,
            collection,
            offset: segment.offset,
          });
        }
        const stored = BigInt.asIntN(64, BigInt(crc));
        const computed = state.crc.digestInt64();
        if (stored !== computed) {
          throw this.#error(
            "CRC",
            `CRC-64 mismatch: the ${state.documents} documents (${state.bytes} bytes) read have CRC ${computed} ` +
              `but the EOF block says ${stored}; the archive is corrupt`,
            { db, collection, offset: segment.offset },
          );
        }
        await this.#expectTerminator(db, collection, "after the EOF block");
        state.ended = true;
        const end: ArchiveNamespaceEndEvent = {
          kind: "namespaceEnd",
          db,
          collection,
          documents: state.documents,
          bytes: state.bytes,
          crc: stored,
        };
        this.#results.push(end);
        yield end;
        continue;
      }
      while (true) {
        if (!(await source.fill(4))) this.#truncated(db, collection, "inside a segment");
        const length = source.peek(4).readInt32LE(0);
        if (length === -1) {
          source.take(4);
          break;
        }
        const offset = source.offset;
        const doc = await this.#readDocument(length, db, collection, "a document");
        state.crc.update(doc);
        state.documents++;
        state.bytes += doc.length;
        yield { kind: "document", db, collection, doc, offset };
      }
    }
    const unfinished = [...this.#states.values()].filter((s) => !s.ended);
    if (unfinished.length > 0) {
      const names = unfinished.map((s) => JSON.stringify(namespaceName(s.db, s.collection)));
      const first = unfinished[0];
      throw this.#error(
        "TRUNCATED",
        `the archive ends before the EOF block of ${unfinished.length} namespace(s): ` +
          `${names.slice(0, 10).join(", ")}${names.length > 10 ? ", ..." : ""}`,
        { db: first.db, collection: first.collection, offset: source.offset },
      );
    }
    this.#complete = true;
  }

  async #expectTerminator(db: string, collection: string, where: string): Promise<void> {
    const source = this.#source;
    if (!(await source.fill(4))) this.#truncated(db, collection, where);
    const offset = source.offset;
    if (source.take(4).readInt32LE(0) !== -1) {
      throw this.#error("MALFORMED", `no terminator ${where}`, { db, collection, offset });
    }
  }

  #truncated(db: string | undefined, collection: string | undefined, where: string): never {
    throw this.#error("TRUNCATED", `the archive ends ${where}`, {
      db,
      collection,
      offset: this.#source.offset,
    });
  }

  /** Reads a structural document (header, prelude entry, namespace header), or undefined at a terminator. */
  async #readStructure(what: string): Promise<{ value: Document; offset: number } | undefined> {
    const source = this.#source;
    if (!(await source.fill(4))) this.#truncated(undefined, undefined, `before ${what}`);
    const length = source.peek(4).readInt32LE(0);
    if (length === -1) {
      source.take(4);
      return undefined;
    }
    const offset = source.offset;
    const doc = await this.#readDocument(length, undefined, undefined, what);
    try {
      return { value: BSON.deserialize(doc, { useBigInt64: true }), offset };
    } catch (err) {
      throw this.#error("MALFORMED", `${what} is not valid BSON: ${(err as Error).message}`, {
        offset,
        cause: err,
      });
    }
  }

  async #readDocument(
    length: number,
    db: string | undefined,
    collection: string | undefined,
    what: string,
  ): Promise<Buffer> {
    const source = this.#source;
    const offset = source.offset;
    if (length < 5 || length > MAX_DOCUMENT_BYTES) {
      throw this.#error("MALFORMED", `${what} has a bad BSON length ${length}`, { db, collection, offset });
    }
    if (!(await source.fill(length))) {
      this.#truncated(db, collection, `inside ${what} (${length} bytes from byte ${offset})`);
    }
    const doc = source.take(length);
    if (doc[length - 1] !== 0) {
      throw this.#error("MALFORMED", `${what} is not valid BSON: it does not end with a NUL byte`, {
        db,
        collection,
        offset,
      });
    }
    if (this.#options.validateBson) {
      const problem = bsonProblem(doc);
      if (problem) {
        throw this.#error(
          "MALFORMED",
          `${what} is not valid BSON: ${problem.problem} (byte ${problem.at} of the document)`,
          { db, collection, offset },
        );
      }
    }
    return doc;
  }

  #error(
    code: ArchiveErrorCode,
    problem: string,
    details: { db?: string; collection?: string; offset?: number; cause?: unknown } = {},
  ): ArchiveError {
    return new ArchiveError(code, { problem, ...details });
  }
}

function toNumber(value: unknown): number | undefined {
  if (typeof value === "number") return value;
  if (typeof value === "bigint") return Number(value);
  return undefined;
}

function stringOr(value: unknown, fallback: string): string {
  return typeof value === "string" ? value : fallback;
}

function hex(bytes: Uint8Array): string {
  return [...bytes].map((b) => b.toString(16).padStart(2, "0")).join(" ");
}

function toAsyncIterator(
  source: AsyncIterable<Chunk> | Iterable<Chunk>,
): AsyncIterator<Chunk> | Iterator<Chunk> {
  if (Symbol.asyncIterator in source) return (source as AsyncIterable<Chunk>)[Symbol.asyncIterator]();
  return (source as Iterable<Chunk>)[Symbol.iterator]();
}

/** Buffered reading of exact byte counts from a chunk iterator, tracking the stream offset. */
class ByteSource {
  #chunks: Buffer[] = [];
  #buffered = 0;
  #done = false;
  /** Offset of the next unread byte. */
  offset = 0;
  readonly #iterator: AsyncIterator<Chunk> | Iterator<Chunk>;
  readonly #kind: "raw" | "gzip";

  constructor(iterator: AsyncIterator<Chunk> | Iterator<Chunk>, kind: "raw" | "gzip") {
    this.#iterator = iterator;
    this.#kind = kind;
  }

  get buffered(): number {
    return this.#buffered;
  }

  /** Buffers at least `n` bytes; false if the stream ends first. */
  async fill(n: number): Promise<boolean> {
    while (this.#buffered < n && !this.#done) {
      let next: IteratorResult<Chunk>;
      try {
        next = await this.#iterator.next();
      } catch (err) {
        throw this.#sourceError(err);
      }
      if (next.done) {
        this.#done = true;
        break;
      }
      const value = next.value;
      const chunk =
        typeof value === "string"
          ? Buffer.from(value, "latin1")
          : Buffer.from(value.buffer, value.byteOffset, value.byteLength);
      if (chunk.length === 0) continue;
      this.#chunks.push(chunk);
      this.#buffered += chunk.length;
    }
    return this.#buffered >= n;
  }

  /** The next `n` buffered bytes, not consumed. */
  peek(n: number): Buffer {
    if (n === 0) return Buffer.alloc(0);
    if (this.#chunks[0].length < n) this.#merge();
    return this.#chunks[0].subarray(0, n);
  }

  /** Consumes the next `n` buffered bytes. */
  take(n: number): Buffer {
    if (this.#chunks[0].length < n) this.#merge(n);
    const first = this.#chunks[0];
    const out = first.subarray(0, n);
    if (first.length === n) this.#chunks.shift();
    else this.#chunks[0] = first.subarray(n);
    this.#buffered -= n;
    this.offset += n;
    return out;
  }

  /** Stops reading the input (lets a stream or generator clean up). */
  async close(): Promise<void> {
    if (this.#done) return;
    this.#done = true;
    try {
      await this.#iterator.return?.();
    } catch {
      // the input failed while closing; nothing more is read from it
    }
  }

  /** Everything not yet read, buffered bytes first. */
  async *rest(): AsyncGenerator<Buffer> {
    const chunks = this.#chunks;
    this.#chunks = [];
    this.#buffered = 0;
    try {
      yield* chunks;
      while (!this.#done) {
        const next = await this.#iterator.next();
        if (next.done) {
          this.#done = true;
          break;
        }
        yield typeof next.value === "string" ? Buffer.from(next.value, "latin1") : Buffer.from(next.value);
      }
    } finally {
      await this.close();
    }
  }

  /** Joins chunks so that the first holds at least `n` bytes (all buffered bytes by default). */
  #merge(n = this.#buffered): void {
    let size = 0;
    let count = 0;
    while (size < n) size += this.#chunks[count++].length;
    const merged = Buffer.concat(this.#chunks.slice(0, count), size);
    this.#chunks.splice(0, count, merged);
  }

  #sourceError(err: unknown): ArchiveError {
    const code = (err as { code?: unknown }).code;
    if (this.#kind === "gzip" && code === "Z_BUF_ERROR") {
      return new ArchiveError("TRUNCATED", {
        problem: "the gzip stream is cut off",
        offset: this.offset + this.#buffered,
        cause: err,
      });
    }
    if (this.#kind === "gzip" && typeof code === "string" && code.startsWith("Z_")) {
      return new ArchiveError("MALFORMED", {
        problem: `the gzip stream is corrupt: ${(err as Error).message}`,
        offset: this.offset + this.#buffered,
        cause: err,
      });
    }
    return new ArchiveError("SOURCE", {
      problem: `reading the archive failed: ${err instanceof Error ? err.message : String(err)}`,
      cause: err,
    });
  }
}
