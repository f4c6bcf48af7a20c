import { once } from "node:events";
import { finished } from "node:stream/promises";
import type { Writable } from "node:stream";
import { createGzip, type Gzip } from "node:zlib";
import { BSON, Int32, Long, type Document } from "bson";
import { parseMetadataJson } from "../../snapshot/fsStore/metadata.js";
import { documentFramingProblem } from "../../snapshot/fsStore/streams.js";
import { Crc64 } from "./crc.js";
import { ArchiveError, namespaceName } from "./errors.js";
import { ARCHIVE_MAGIC, ARCHIVE_VERSION, BUCKETS_PREFIX, TERMINATOR, namespaceKey } from "./format.js";

export interface ArchiveWriterOptions {
  /** The header's `server_version` (the source deployment's MongoDB version). Default "". */
  serverVersion?: string;
  /** The header's `tool_version`. Default "tidemark". */
  toolVersion?: string;
  /**
   * The header's `concurrent_collections`, and the most namespaces the writer keeps open at once
   * (further `writeDocuments` calls wait). mongorestore restores at least this many namespaces in
   * parallel, which it needs to read interleaved segments. Default 4, as mongodump.
   */
  concurrentCollections?: number;
  /** Gzip the whole archive, as `mongodump --archive --gzip` does (true, or a zlib level). */
  gzip?: boolean | { level: number };
  /** A segment is written once this many document bytes are buffered for it. Default 1 MiB. */
  segmentBytes?: number;
}

/** A namespace for the prelude. */
export interface ArchiveNamespaceInput {
  db: string;
  /** The collection, view or timeseries collection name; "oplog" with db "" for an oplog. */
  collection: string;
  /** The `<coll>.metadata.json` text (see `metadataJson` of the fsStore); "" for the oplog. */
  metadataJson: string;
  /**
   * The prelude's `type`; default the metadata's type ("" for the oplog). null leaves the field
   * out, as mongodump before 100.x did.
   */
  type?: string | null;
  /** The prelude's `size`; default 0, as mongodump writes. */
  size?: number;
}

/** What `writeDocuments` wrote for a namespace. */
export interface ArchiveNamespaceWritten {
  db: string;
  collection: string;
  documents: number;
  bytes: number;
  segments: number;
  /** The CRC-64 written in the EOF block (signed int64). */
  crc: bigint;
}

interface Declared {
  kind: "collection" | "view" | "timeseries" | "oplog";
  written: boolean;
}

const DEFAULT_SEGMENT_BYTES = 1024 * 1024;

/**
 * Streams a mongodump archive (mongo-tools `common/archive`) into `sink`: magic, header, prelude
 * (`addNamespaces`), then each namespace's documents (`writeDocuments`, which may run for several
 * namespaces at once: their segments interleave, as mongodump's do), then `finish`. Writes wait for
 * the sink to drain, and each namespace buffers at most one segment, so memory stays bounded.
 */
export class ArchiveWriter {
  readonly #sink: Writable;
  readonly #out: Writable;
  readonly #gzip: Gzip | undefined;
  readonly #options: Required<Omit<ArchiveWriterOptions, "gzip">>;
  readonly #declared = new Map<string, Declared>();
  /** Data collections (`system.buckets.x` for timeseries) -> their prelude entry's key. */
  readonly #dataNamespaces = new Map<string, string>();
  #started = false;
  #finished = false;
  #lock: Promise<void> = Promise.resolve();
  #open = 0;
  readonly #waiting: Array<() => void> = [];
  #failure: ArchiveError | undefined;
  #offset = 0;

  constructor(sink: Writable, options: ArchiveWriterOptions = {}) {
    this.#sink = sink;
    const concurrentCollections = options.concurrentCollections ?? 4;
    if (
      !Number.isInteger(concurrentCollections) ||
      concurrentCollections < 1 ||
      concurrentCollections > 0x7fffffff
    )
      throw new TypeError("concurrentCollections must be a positive integer");
    const segmentBytes = options.segmentBytes ?? DEFAULT_SEGMENT_BYTES;
    if (!Number.isInteger(segmentBytes) || segmentBytes < 1)
      throw new TypeError("segmentBytes must be a positive integer");
    this.#options = {
      serverVersion: options.serverVersion ?? "",
      toolVersion: options.toolVersion ?? "tidemark",
      concurrentCollections,
      segmentBytes,
    };
    if (options.gzip) {
      const level = typeof options.gzip === "object" ? options.gzip.level : undefined;
      this.#gzip = createGzip(level === undefined ? {} : { level });
      this.#gzip.pipe(sink);
      sink.on("error", (err) => this.#gzip?.destroy(err));
      this.#out = this.#gzip;
    } else {
      this.#out = sink;
    }
    const onError = (err: Error): void => {
      this.#failure ??= new ArchiveError("SINK", {
        problem: `writing the archive failed: ${err.message}`,
        cause: err,
      });
    };
    this.#out.on("error", onError);
    if (this.#out !== sink) sink.on("error", onError);
  }

  /** Uncompressed bytes written so far. */
  get bytesWritten(): number {
    return this.#offset;
  }

  /**
   * Writes the magic, header and prelude: one entry per namespace the archive will hold (views
   * and timeseries collections included; the oplog as db "", collection "oplog", metadata "").
   * Called once, before any `writeDocuments`.
   */
  async addNamespaces(namespaces: Iterable<ArchiveNamespaceInput>): Promise<void> {
    if (this.#started)
      throw new ArchiveError("INVALID_INPUT", { problem: "addNamespaces was already called" });
    this.#started = true;
    const parts: Buffer[] = [
      ARCHIVE_MAGIC,
      serialize({
        concurrent_collections: new Int32(this.#options.concurrentCollections),
        version: ARCHIVE_VERSION,
        server_version: this.#options.serverVersion,
        tool_version: this.#options.toolVersion,
      }),
    ];
    for (const ns of namespaces) {
      const { db, collection, metadataJson } = ns;
      if (typeof db !== "string" || typeof collection !== "string" || typeof metadataJson !== "string")
        throw new TypeError("a namespace needs string db, collection and metadataJson");
      const invalid = (problem: string): ArchiveError =>
        new ArchiveError("INVALID_INPUT", { problem, db, collection });
      if (collection === "" || collection.includes("\0") || db.includes("\0"))
        throw invalid("the namespace name is empty or contains NUL");
      const key = namespaceKey(db, collection);
      if (this.#declared.has(key)) throw invalid("the namespace is listed twice");
      let kind: Declared["kind"];
      let type: string | null;
      if (metadataJson === "") {
        if (db !== "" || collection !== "oplog")
          throw invalid('only the oplog (db "", collection "oplog") may have empty metadata');
        kind = "oplog";
        type = ns.type === undefined ? "" : ns.type;
      } else {
        let meta;
        try {
          meta = parseMetadataJson(metadataJson, collection);
        } catch (err) {
          throw new ArchiveError("INVALID_INPUT", {
            problem: `metadataJson is not valid metadata.json: ${(err as Error).message}`,
            db,
            collection,
            cause: err,
          });
        }
        if (meta.collectionName !== collection)
          throw invalid(`metadataJson names collection ${JSON.stringify(meta.collectionName)}`);
        kind = meta.type;
        type = ns.type === undefined ? meta.type : ns.type;
      }
      const size = ns.size ?? 0;
      if (!Number.isSafeInteger(size) || size < 0) throw invalid("size must be a non-negative integer");
      this.#declared.set(key, { kind, written: false });
      if (kind !== "view") {
        const dataKey = namespaceKey(db, kind === "timeseries" ? BUCKETS_PREFIX + collection : collection);
        if (kind === "timeseries" && this.#declared.has(dataKey))
          throw invalid(`its buckets collection ${BUCKETS_PREFIX + collection} is listed as well`);
        if (this.#dataNamespaces.has(dataKey)) throw invalid("the namespace is listed twice");
        this.#dataNamespaces.set(dataKey, key);
      }
      const entry: Document = {
        db,
        collection,
        metadata: metadataJson,
        size: size <= 0x7fffffff ? new Int32(size) : Long.fromNumber(size),
      };
      if (type !== null) entry.type = type;
      parts.push(serialize(entry));
    }
    parts.push(TERMINATOR);
    await this.#withLock(() => this.#write(Buffer.concat(parts)));
  }

  /**
   * Writes all documents of one namespace (raw BSON, in order) and its EOF block with their
   * CRC-64. A timeseries collection's documents are its buckets: pass `system.buckets.<name>`.
   * Each namespace is written once; several namespaces may be written concurrently.
   */
  async writeDocuments(
    db: string,
    collection: string,
    documents: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  ): Promise<ArchiveNamespaceWritten> {
    if (!this.#started) throw new ArchiveError("INVALID_INPUT", { problem: "call addNamespaces first" });
    if (this.#finished) throw new ArchiveError("INVALID_INPUT", { problem: "the archive is finished" });
    const invalid = (problem: string): ArchiveError =>
      new ArchiveError("INVALID_INPUT", { problem, db, collection });
    const dataKey = namespaceKey(db, collection);
    const declaredKey = this.#dataNamespaces.get(dataKey);
    if (declaredKey === undefined) {
      const declared = this.#declared.get(dataKey);
      if (declared?.kind === "view") throw invalid("a view has no documents");
      if (declared?.kind === "timeseries")
        throw invalid(`a timeseries collection's documents are written as ${BUCKETS_PREFIX}${collection}`);
      throw invalid("the namespace is not in the prelude (addNamespaces)");
    }
    const declared = this.#declared.get(declaredKey) as Declared;
    if (declared.written) throw invalid("the namespace's documents were already written");
    declared.written = true;

    const crc = new Crc64();
    const header = serialize({ db, collection, EOF: false, CRC: Long.ZERO });
    let batch: Buffer[] = [];
    let batchBytes = 0;
    let documentCount = 0;
    let bytes = 0;
    let segments = 0;
    let opened = false;
    const flush = async (): Promise<void> => {
      if (!opened) {
        await this.#acquireSlot();
        opened = true;
      }
      const segment = Buffer.concat([header, ...batch, TERMINATOR]);
      batch = [];
      batchBytes = 0;
      segments++;
      await this.#withLock(() => this.#write(segment));
    };
    try {
      try {
        for await (const doc of documents) {
          if (!(doc instanceof Uint8Array)) throw new TypeError("documents must be Uint8Arrays of BSON");
          const problem = documentFramingProblem(doc);
          if (problem !== undefined) throw invalid(`document ${documentCount} is not BSON: ${problem}`);
          const copy = Buffer.from(doc); // the source may reuse its buffer once we ask for the next one
          crc.update(copy);
          batch.push(copy);
          batchBytes += copy.length;
          documentCount++;
          bytes += copy.length;
          if (batchBytes >= this.#options.segmentBytes) await flush();
        }
      } catch (err) {
        if (err instanceof ArchiveError) throw err;
        throw new ArchiveError("SOURCE", {
          problem: `reading the documents to write failed: ${err instanceof Error ? err.message : String(err)}`,
          db,
          collection,
          cause: err,
        });
      }
      // mongodump writes a (possibly empty) segment for every namespace before its EOF block.
      if (batch.length > 0 || segments === 0) await flush();
      const value = crc.digestInt64();
      const eof = Buffer.concat([
        serialize({ db, collection, EOF: true, CRC: Long.fromBigInt(value) }),
        TERMINATOR,
      ]);
      await this.#withLock(() => this.#write(eof));
      return { db, collection, documents: documentCount, bytes, segments, crc: value };
    } finally {
      if (opened) this.#releaseSlot();
    }
  }

  /**
   * Checks that every namespace with data was written, then ends the archive (and the sink) and
   * waits until the sink has flushed.
   */
  async finish(): Promise<void> {
    if (!this.#started) throw new ArchiveError("INVALID_INPUT", { problem: "call addNamespaces first" });
    if (this.#finished) return;
    await this.#lock;
    const missing = [...this.#dataNamespaces.entries()].filter(
      ([, key]) => !(this.#declared.get(key) as Declared).written,
    );
    if (missing.length > 0) {
      const [db, collection] = JSON.parse(missing[0][0]) as [string, string];
      throw new ArchiveError("INVALID_INPUT", {
        problem:
          `the documents of ${missing.length} namespace(s) in the prelude were not written ` +
          `(write an empty iterable for an empty collection), the first is ${namespaceName(db, collection)}`,
        db,
        collection,
      });
    }
    if (this.#open > 0)
      throw new ArchiveError("INVALID_INPUT", { problem: "writeDocuments calls are still running" });
    this.#finished = true;
    this.#check();
    try {
      this.#out.end();
      await finished(this.#sink, { readable: false });
    } catch (err) {
      throw (
        this.#failure ??
        new ArchiveError("SINK", {
          problem: `finishing the archive failed: ${(err as Error).message}`,
          cause: err,
        })
      );
    }
    if (this.#failure) throw this.#failure;
  }

  async #acquireSlot(): Promise<void> {
    while (this.#open >= this.#options.concurrentCollections) {
      await new Promise<void>((resolve) => this.#waiting.push(resolve));
    }
    this.#open++;
  }

  #releaseSlot(): void {
    this.#open--;
    this.#waiting.shift()?.();
  }

  /** Runs `fn` after every earlier locked call, so segments are written whole and in order. */
  #withLock(fn: () => Promise<void>): Promise<void> {
    const run = this.#lock.then(fn);
    this.#lock = run.catch(() => {});
    return run;
  }

  async #write(chunk: Buffer): Promise<void> {
    this.#check();
    this.#offset += chunk.length;
    if (!this.#out.write(chunk)) {
      try {
        await once(this.#out, "drain");
      } catch (err) {
        throw (
          this.#failure ??
          new ArchiveError("SINK", {
            problem: `writing the archive failed: ${(err as Error).message}`,
            cause: err,
          })
        );
      }
    }
    this.#check();
  }

  #check(): void {
    if (this.#failure) throw this.#failure;
    if (this.#out.destroyed || this.#sink.destroyed) {
      throw new ArchiveError("SINK", { problem: "the archive's sink was closed or destroyed" });
    }
  }
}

function serialize(doc: Document): Buffer {
  return Buffer.from(BSON.serialize(doc));
}
