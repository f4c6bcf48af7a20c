/**
 * Imports mongodump output into a deployment with the restore loader: a dump directory
 * (`<dir>/<db>/<coll>.bson[.gz]` with `<coll>.metadata.json[.gz]`, as mongodump writes it, or as
 * `tidemark export --out` does) or an archive file (`mongodump --archive [--gzip]`). Collections
 * are created with the metadata's options, indexes are built after the data, views come from
 * their metadata. The documents' MD5 is computed as they are read and compared with the target's
 * dbHash at the end (dbHash hashes in `_id` order: a dump in another order does not match).
 * Not imported, each with a note: the oplog (`oplog.bson`, the archive's oplog), `admin.system.*`
 * (users, roles, the auth schema version), the `local` and `config` databases and other
 * `system.*` collections. Memory is bounded: each collection is streamed from its file; an archive
 * is read once per collection, stopping at that namespace's end (an archive written by
 * `tidemark export` holds its namespaces one after another, so each read stops early).
 */
import { createHash, type Hash } from "node:crypto";
import { createReadStream } from "node:fs";
import { readdir, readFile, stat } from "node:fs/promises";
import path from "node:path";
import { gunzipSync } from "node:zlib";
import { EJSON, type Document } from "bson";
import type { MongoClient } from "mongodb";
import { encodeIdKeyFromDocument } from "../bson/keyEncoding.js";
import { parseMetadataJson, type MongodumpMetadata } from "../snapshot/fsStore/metadata.js";
import { collectionFileStem, queryUnescape } from "../snapshot/fsStore/mongodumpNames.js";
import { gunzipped, splitDocuments } from "../snapshot/fsStore/streams.js";
import { openArchive, type ArchiveNamespace } from "./archive/index.js";
import {
  connectTarget,
  loadCollections,
  verifyTarget,
  type LoaderCollection,
  type LoaderOptions,
  type LoadResult,
} from "./loader/index.js";

/** The path is neither a dump directory nor a mongodump archive (or cannot be read). */
export class ImportSourceError extends Error {
  override readonly name = "ImportSourceError";
}

/** Something the dump holds that is not imported, and why. */
export interface ImportSkipped {
  namespace: string;
  reason: string;
}

/** What was read so far of one collection's documents. */
export interface ReadDigest {
  documents: number;
  bytes: number;
  /** Hex MD5 of the documents in the order read; set once they were all read. */
  md5?: string;
  /**
   * The documents came in ascending `_id` order, the order dbHash hashes them in (mongodump
   * usually reads in natural order, which need not be): only then can the MD5 be compared.
   */
  idOrder: boolean;
}

export interface ImportSource {
  format: "directory" | "archive";
  path: string;
  /** True for a gzipped archive (a directory's files are told apart one by one). */
  gzip: boolean;
  collections: LoaderCollection[];
  skipped: ImportSkipped[];
  /** Per source namespace, filled as its documents are read. */
  digests: Map<string, ReadDigest>;
}

const BUCKETS = "system.buckets.";

/** Why a namespace is not imported, or undefined if it is. */
function skipReason(db: string, collection: string): string | undefined {
  if (db === "admin" && collection.startsWith("system."))
    return "admin.system.* (users, roles, auth schema version) is not imported";
  if (db === "local" || db === "config") return `the ${db} database is not imported`;
  if (collection === "system.views") return undefined; // views come from their metadata
  if (collection.startsWith("system.") && !collection.startsWith(BUCKETS))
    return "system collections are not imported";
  return undefined;
}

function canonical(value: Document): Record<string, unknown> {
  return EJSON.serialize(value, { relaxed: false }) as Record<string, unknown>;
}

/** Wraps a document stream: hashes and counts it into `digest`. */
function digesting(
  digests: Map<string, ReadDigest>,
  namespace: string,
  source: () => AsyncIterable<Uint8Array>,
): () => AsyncIterable<Uint8Array> {
  return async function* () {
    const digest: ReadDigest = { documents: 0, bytes: 0, idOrder: true };
    digests.set(namespace, digest);
    const md5: Hash = createHash("md5");
    let previous: Buffer | undefined;
    for await (const doc of source()) {
      md5.update(doc);
      if (digest.idOrder) {
        try {
          const key = encodeIdKeyFromDocument(doc);
          if (previous && Buffer.compare(previous, key) >= 0) digest.idOrder = false;
          previous = key;
        } catch {
          digest.idOrder = false;
        }
      }
      digest.documents++;
      digest.bytes += doc.byteLength;
      yield doc;
    }
    digest.md5 = md5.digest("hex");
  };
}

function loaderCollection(
  namespace: string,
  metadata: MongodumpMetadata,
  documents: (() => AsyncIterable<Uint8Array>) | undefined,
): LoaderCollection {
  return {
    namespace,
    type: metadata.type,
    options: canonical(metadata.options),
    indexes: metadata.indexes.map(canonical),
    documents: metadata.type === "view" ? undefined : documents,
  };
}

// ---------------------------------------------------------------- directory

async function isGzipFile(file: string): Promise<boolean> {
  const stream = createReadStream(file, { start: 0, end: 1 });
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  const head = Buffer.concat(chunks);
  return head.length === 2 && head[0] === 0x1f && head[1] === 0x8b;
}

function fileDocuments(file: string): () => AsyncIterable<Uint8Array> {
  return async function* () {
    const gzip = await isGzipFile(file);
    const raw = createReadStream(file) as AsyncIterable<Buffer>;
    yield* splitDocuments(gzip ? (gunzipped(raw) as AsyncIterable<Buffer>) : raw);
  };
}

async function readMetadataFile(file: string, fallbackName: string): Promise<MongodumpMetadata> {
  let bytes = await readFile(file);
  if (file.endsWith(".gz")) bytes = gunzipSync(bytes);
  try {
    return parseMetadataJson(bytes.toString("utf8"), fallbackName);
  } catch (error) {
    throw new ImportSourceError(`${file}: not a mongodump metadata file: ${(error as Error).message}`);
  }
}

/** The collections of a dump directory: `<dir>/<db>/...`, or a single database's directory. */
async function openDirectory(dir: string): Promise<ImportSource> {
  const source: ImportSource = {
    format: "directory",
    path: dir,
    gzip: false,
    collections: [],
    skipped: [],
    digests: new Map(),
  };
  const entries = await readdir(dir, { withFileTypes: true });
  // Database names never contain a dot: `.x.partial-…` (an unfinished export) and the like are not databases.
  const subdirs = entries
    .filter((entry) => entry.isDirectory() && !entry.name.includes("."))
    .map((entry) => entry.name);
  const top = entries.filter((entry) => entry.isFile()).map((entry) => entry.name);
  if (top.some((name) => /^oplog\.bson(\.gz)?$/.test(name)))
    source.skipped.push({
      namespace: "oplog",
      reason: "oplog.bson (mongodump --oplog) is not replayed; the import is the dump's collections only",
    });
  const databases: Array<{ db: string; dir: string }> = subdirs.map((db) => ({
    db,
    dir: path.join(dir, db),
  }));
  // A single database's directory (mongodump --db x --out dir, then dir/x given): its own files.
  if (databases.length === 0 && top.some((name) => /\.(bson|metadata\.json)(\.gz)?$/.test(name)))
    databases.push({ db: path.basename(dir), dir });
  for (const { db, dir: dbDir } of databases) await readDatabase(source, db, dbDir);
  if (source.collections.length === 0 && source.skipped.length === 0)
    throw new ImportSourceError(`${dir} holds no mongodump collections (no <db>/<collection>.bson files)`);
  return source;
}

async function readDatabase(source: ImportSource, db: string, dir: string): Promise<void> {
  const names = (await readdir(dir, { withFileTypes: true }))
    .filter((entry) => entry.isFile())
    .map((entry) => entry.name)
    .sort();
  const dataFiles = new Map<string, string>(); // stem -> file name
  const metadataFiles = new Map<string, string>();
  for (const name of names) {
    const data = /^(.*)\.bson(\.gz)?$/.exec(name);
    if (data) dataFiles.set(data[1], name);
    const meta = /^(.*)\.metadata\.json(\.gz)?$/.exec(name);
    if (meta) metadataFiles.set(meta[1], name);
  }
  const used = new Set<string>();
  const add = (namespace: string, metadata: MongodumpMetadata, dataStem: string | undefined) => {
    const file = dataStem !== undefined ? dataFiles.get(dataStem) : undefined;
    if (dataStem !== undefined) used.add(dataStem);
    const reason = skipReason(db, metadata.collectionName);
    if (reason) {
      source.skipped.push({ namespace, reason });
      return;
    }
    const documents = digesting(
      source.digests,
      namespace,
      file ? fileDocuments(path.join(dir, file)) : async function* () {},
    );
    source.collections.push(loaderCollection(namespace, metadata, documents));
  };
  for (const [stem, name] of metadataFiles) {
    const metadata = await readMetadataFile(path.join(dir, name), unescape(stem));
    const namespace = `${db}.${metadata.collectionName}`;
    used.add(stem);
    if (metadata.type === "view") add(namespace, metadata, undefined);
    else if (metadata.type === "timeseries")
      add(namespace, metadata, collectionFileStem(BUCKETS + metadata.collectionName));
    else add(namespace, metadata, stem);
  }
  // Data without metadata (mongodump always writes both; be lenient): a plain collection.
  for (const stem of dataFiles.keys()) {
    if (used.has(stem)) continue;
    const name = unescape(stem);
    if (name === "system.views" || name.startsWith(BUCKETS)) continue;
    add(`${db}.${name}`, { options: {}, indexes: [], collectionName: name, type: "collection" }, stem);
  }
}

function unescape(stem: string): string {
  try {
    return queryUnescape(stem);
  } catch {
    return stem;
  }
}

// ---------------------------------------------------------------- archive

/** The documents of one data collection of the archive: reads it from the start, stops at that namespace's end. */
function archiveDocuments(file: string, db: string, dataCollection: string): () => AsyncIterable<Uint8Array> {
  return async function* () {
    const reader = await openArchive(createReadStream(file) as AsyncIterable<Buffer>);
    for await (const event of reader) {
      if (event.db !== db || event.collection !== dataCollection) continue;
      if (event.kind === "namespaceEnd") return; // its CRC-64 matched
      yield event.doc;
    }
    throw new ImportSourceError(`${file}: the archive ends before the end of ${db}.${dataCollection}`);
  };
}

async function openArchiveFile(file: string): Promise<ImportSource> {
  const stream = createReadStream(file);
  let namespaces: readonly ArchiveNamespace[];
  let gzip: boolean;
  try {
    const reader = await openArchive(stream as AsyncIterable<Buffer>);
    namespaces = reader.namespaces;
    gzip = reader.gzip;
  } catch (error) {
    throw new ImportSourceError(`${file}: ${(error as Error).message}`);
  } finally {
    stream.destroy();
  }
  const source: ImportSource = {
    format: "archive",
    path: file,
    gzip,
    collections: [],
    skipped: [],
    digests: new Map(),
  };
  for (const ns of namespaces) {
    if (ns.kind === "oplog") {
      source.skipped.push({
        namespace: "oplog",
        reason:
          "the archive's oplog (mongodump --oplog) is not replayed; the import is the dump's collections only",
      });
      continue;
    }
    const namespace = `${ns.db}.${ns.collection}`;
    const reason = skipReason(ns.db, ns.collection);
    if (reason) {
      source.skipped.push({ namespace, reason });
      continue;
    }
    const metadata: MongodumpMetadata = ns.metadata ?? {
      options: {},
      indexes: [],
      collectionName: ns.collection,
      type: ns.kind,
    };
    const documents =
      ns.dataCollection === undefined
        ? undefined
        : digesting(source.digests, namespace, archiveDocuments(file, ns.db, ns.dataCollection));
    source.collections.push(loaderCollection(namespace, { ...metadata, type: ns.kind }, documents));
  }
  return source;
}

// ---------------------------------------------------------------- import

/** Opens `location`: a dump directory or an archive file (plain or gzipped). */
export async function openImportSource(location: string): Promise<ImportSource> {
  const info = await stat(location).catch((error: NodeJS.ErrnoException) => {
    throw new ImportSourceError(
      error.code === "ENOENT" ? `${location} does not exist` : `cannot read ${location}: ${error.message}`,
    );
  });
  if (info.isDirectory()) return openDirectory(location);
  if (!info.isFile())
    throw new ImportSourceError(`${location} is neither a dump directory nor an archive file`);
  return openArchiveFile(location);
}

export interface ImportOptions extends Omit<
  LoaderOptions,
  "collections" | "verify" | "client" | "uri" | "rename"
> {
  /** The dump directory or archive file. */
  path: string;
  uri: string;
  /** Compare each collection's dbHash on the target with the MD5 of its documents as read. Default true. */
  verify?: boolean;
}

export interface ImportResult extends LoadResult {
  format: ImportSource["format"];
  path: string;
  gzip: boolean;
  skipped: ImportSkipped[];
  /** Collections loaded but not compared by dbHash (their counts are checked), and why. */
  unverified: ImportSkipped[];
}

/** Imports a dump into `uri`; see the module comment. */
export async function importDump(options: ImportOptions): Promise<ImportResult> {
  const source = await openImportSource(options.path);
  const log = options.log ?? (() => {});
  for (const skipped of source.skipped) log(`${skipped.namespace}: skipped, ${skipped.reason}`);
  const client: MongoClient = await connectTarget(options.uri, options);
  const unverified: ImportSkipped[] = [];
  try {
    const result = await loadCollections({
      ...options,
      client,
      uri: undefined,
      collections: source.collections,
      verify: false,
    });
    if (options.verify !== false) {
      for (const c of result.collections)
        if (c.status === "restored" && c.type === "timeseries")
          log(`${c.namespace}: time series collection, not verified by dbHash`);
      const expectations: Array<{ namespace: string; md5: string }> = [];
      for (const c of result.collections) {
        if (c.status !== "restored" || c.type !== "collection") continue;
        const digest = source.digests.get(c.source);
        if (!digest?.md5) continue;
        if (digest.idOrder) expectations.push({ namespace: c.namespace, md5: digest.md5 });
        else
          unverified.push({
            namespace: c.namespace,
            reason: `the dump is not in _id order (dbHash's order); ${c.documents} of ${digest.documents} documents loaded`,
          });
      }
      for (const u of unverified) log(`${u.namespace}: not verified by dbHash, ${u.reason}`);
      result.verification = await verifyTarget(client, expectations);
      result.verified = result.verification.every((v) => v.match);
    }
    // Counts are always checked: every document read must have been loaded.
    const short = result.collections.filter((c) => {
      const digest = source.digests.get(c.source);
      return c.status === "restored" && c.type === "collection" && digest && digest.documents !== c.documents;
    });
    if (short.length > 0)
      throw new Error(
        `${short.map((c) => c.namespace).join(", ")}: fewer documents loaded than read from the dump`,
      );
    return {
      ...result,
      format: source.format,
      path: source.path,
      gzip: source.gzip,
      skipped: source.skipped,
      unverified,
    };
  } finally {
    await client.close();
  }
}
