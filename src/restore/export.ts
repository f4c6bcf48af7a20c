/**
 * Exports a snapshot in mongodump's formats, so mongorestore (or `tidemark import`) reads it: a
 * directory (`<out>/<db>/<coll>.bson[.gz]` and `<coll>.metadata.json[.gz]` with mongodump's file
 * names, views as metadata only, `prelude.json`) or an archive (`mongodump --archive [--gzip]`,
 * namespaces one after another). Documents are streamed, one batch in memory at a time. The
 * output is written under a temporary name beside the destination and renamed at the end, so an
 * export that was cut off never looks complete; an existing destination is never overwritten.
 */
import { createHash } from "node:crypto";
import { createWriteStream } from "node:fs";
import { mkdir, readdir, rename, rm, rmdir, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import { Readable, type Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { createGzip } from "node:zlib";
import { EJSON, type Document } from "bson";
import { metadataJson } from "../snapshot/fsStore/metadata.js";
import { collectionFileStem } from "../snapshot/fsStore/mongodumpNames.js";
import { batched } from "../snapshot/fsStore/streams.js";
import type { ManifestCollection, SnapshotManifest } from "../snapshot/manifest.js";
import { ArchiveWriter } from "./archive/index.js";

/** The destination exists (a non-empty directory, or any file): nothing was written. */
export class ExportTargetExistsError extends Error {
  override readonly name = "ExportTargetExistsError";
}

/** A collection's documents did not match the manifest (count or MD5): the export was removed. */
export class ExportMismatchError extends Error {
  override readonly name = "ExportMismatchError";
}

export interface ExportProgress {
  namespace: string;
  documents: number;
  bytes: number;
  totalDocuments: number;
  done: boolean;
}

export interface ExportOptions {
  /** Gzip the data and metadata files (directory) or the whole archive. */
  gzip?: boolean;
  /** `prelude.json`'s ServerVersion / the archive header's server_version. Default "". */
  serverVersion?: string;
  onProgress?: (progress: ExportProgress) => void;
}

export interface ExportedCollection {
  namespace: string;
  type: ManifestCollection["type"];
  documents: number;
  bytes: number;
  /** Directory export: the data file relative to the output directory (none for a view). */
  file?: string;
  /** Directory export: the metadata file relative to the output directory. */
  metadataFile?: string;
}

export interface ExportResult {
  format: "directory" | "archive";
  /** The output directory or archive file. */
  path: string;
  gzip: boolean;
  collections: ExportedCollection[];
  /** Bytes written to disk (compressed, when gzipped). */
  bytesWritten: number;
}

/** The documents of one collection of the snapshot (a timeseries collection's buckets), raw BSON in `_id` order. */
export type DocumentsOf = (collection: ManifestCollection) => AsyncIterable<Uint8Array>;

const TOOL_VERSION = "tidemark";

/** The `<coll>.metadata.json` text of a manifest collection, as mongodump writes it. */
export function manifestMetadataJson(collection: ManifestCollection): string {
  const canonical = (value: unknown): Document => EJSON.deserialize(value as Document, { relaxed: false });
  return metadataJson({
    options: canonical(collection.options),
    indexes: collection.indexes.map(canonical),
    uuid: collection.uuid ?? undefined,
    collectionName: collection.name,
    type: collection.type,
  });
}

/** Counts, hashes and reports the documents passing through; checks them against the manifest at the end. */
function checked(
  collection: ManifestCollection,
  documents: AsyncIterable<Uint8Array>,
  counts: { documents: number; bytes: number },
  onProgress: ExportOptions["onProgress"],
): AsyncGenerator<Buffer> {
  return (async function* () {
    const md5 = createHash("md5");
    let lastReport = 0;
    const report = (done: boolean) =>
      onProgress?.({
        namespace: collection.namespace,
        documents: counts.documents,
        bytes: counts.bytes,
        totalDocuments: collection.count,
        done,
      });
    for await (const doc of documents) {
      const buffer = Buffer.from(doc.buffer, doc.byteOffset, doc.byteLength);
      md5.update(buffer);
      counts.documents++;
      counts.bytes += buffer.length;
      if (counts.documents - lastReport >= 1000) {
        lastReport = counts.documents;
        report(false);
      }
      yield buffer;
    }
    if (counts.documents !== collection.count)
      throw new ExportMismatchError(
        `${collection.namespace}: got ${counts.documents} documents, the snapshot holds ${collection.count}`,
      );
    const digest = md5.digest("hex");
    if (collection.md5 && digest !== collection.md5)
      throw new ExportMismatchError(
        `${collection.namespace}: the documents' MD5 ${digest} is not the snapshot's ${collection.md5}`,
      );
    report(true);
  })();
}

/** Refuses an existing non-empty directory or any existing file; true if an empty directory is there. */
async function checkDestination(target: string, kind: "directory" | "archive"): Promise<boolean> {
  const info = await stat(target).catch((error: NodeJS.ErrnoException) => {
    if (error.code === "ENOENT") return undefined;
    throw error;
  });
  if (!info) return false;
  if (kind === "archive")
    throw new ExportTargetExistsError(`${target} exists; an export never overwrites a file`);
  if (!info.isDirectory()) throw new ExportTargetExistsError(`${target} exists and is not a directory`);
  if ((await readdir(target)).length > 0)
    throw new ExportTargetExistsError(`${target} is not empty; an export never writes into an existing dump`);
  return true;
}

function temporaryName(target: string): string {
  return path.join(path.dirname(target), `.${path.basename(target)}.partial-${process.pid}-${Date.now()}`);
}

async function writeFileFrom(file: string, source: AsyncIterable<Buffer>, gzip: boolean): Promise<number> {
  const sink = createWriteStream(file, { flags: "wx" });
  if (gzip) await pipeline(Readable.from(batched(source)), createGzip(), sink);
  else await pipeline(Readable.from(batched(source)), sink);
  return sink.bytesWritten;
}

/** Writes a mongodump directory at `out` (which must not exist, or be empty). */
export async function exportDirectory(
  out: string,
  manifest: Pick<SnapshotManifest, "collections">,
  documentsOf: DocumentsOf,
  options: ExportOptions = {},
): Promise<ExportResult> {
  const gzip = options.gzip ?? false;
  const emptyDirExists = await checkDestination(out, "directory");
  const partial = temporaryName(out);
  await mkdir(partial);
  const collections: ExportedCollection[] = [];
  let bytesWritten = 0;
  try {
    const prelude = JSON.stringify({ ServerVersion: options.serverVersion ?? "", ToolVersion: TOOL_VERSION });
    await writeFile(path.join(partial, "prelude.json"), prelude, { flag: "wx" });
    bytesWritten += Buffer.byteLength(prelude);
    const dbs = new Set<string>();
    for (const collection of manifest.collections) {
      if (!dbs.has(collection.db)) {
        await mkdir(path.join(partial, collection.db));
        dbs.add(collection.db);
      }
      const suffix = gzip ? ".gz" : "";
      const metadataFile = `${collection.db}/${collectionFileStem(collection.name)}.metadata.json${suffix}`;
      bytesWritten += await writeFileFrom(
        path.join(partial, metadataFile),
        (async function* () {
          yield Buffer.from(manifestMetadataJson(collection), "utf8");
        })(),
        gzip,
      );
      const exported: ExportedCollection = {
        namespace: collection.namespace,
        type: collection.type,
        documents: 0,
        bytes: 0,
        metadataFile,
      };
      if (collection.type !== "view") {
        const dataName =
          collection.type === "timeseries" ? `system.buckets.${collection.name}` : collection.name;
        exported.file = `${collection.db}/${collectionFileStem(dataName)}.bson${suffix}`;
        bytesWritten += await writeFileFrom(
          path.join(partial, exported.file),
          checked(collection, documentsOf(collection), exported, options.onProgress),
          gzip,
        );
      }
      collections.push(exported);
    }
    if (emptyDirExists) await rmdir(out);
    await rename(partial, out);
  } catch (error) {
    await rm(partial, { recursive: true, force: true });
    throw error;
  }
  return { format: "directory", path: out, gzip, collections, bytesWritten };
}

/** Writes a mongodump archive file at `file` (which must not exist), namespaces one after another. */
export async function exportArchive(
  file: string,
  manifest: Pick<SnapshotManifest, "collections">,
  documentsOf: DocumentsOf,
  options: ExportOptions = {},
): Promise<ExportResult> {
  const gzip = options.gzip ?? false;
  await checkDestination(file, "archive");
  const partial = temporaryName(file);
  const sink = createWriteStream(partial, { flags: "wx" });
  const collections: ExportedCollection[] = [];
  try {
    await new Promise<void>((resolve, reject) => {
      sink.once("open", () => resolve());
      sink.once("error", reject);
    });
    // One namespace at a time: a reader can then load the archive namespace by namespace.
    const writer = new ArchiveWriter(sink as Writable, {
      gzip,
      concurrentCollections: 1,
      serverVersion: options.serverVersion ?? "",
      toolVersion: TOOL_VERSION,
    });
    await writer.addNamespaces(
      manifest.collections.map((collection) => ({
        db: collection.db,
        collection: collection.name,
        metadataJson: manifestMetadataJson(collection),
        type: collection.type,
      })),
    );
    for (const collection of manifest.collections) {
      const exported: ExportedCollection = {
        namespace: collection.namespace,
        type: collection.type,
        documents: 0,
        bytes: 0,
      };
      if (collection.type !== "view") {
        const dataName =
          collection.type === "timeseries" ? `system.buckets.${collection.name}` : collection.name;
        await writer.writeDocuments(
          collection.db,
          dataName,
          checked(collection, documentsOf(collection), exported, options.onProgress),
        );
      }
      collections.push(exported);
    }
    await writer.finish();
    await rename(partial, file);
  } catch (error) {
    sink.destroy();
    await rm(partial, { force: true });
    throw unwrapSource(error);
  }
  return { format: "archive", path: file, gzip, collections, bytesWritten: sink.bytesWritten };
}

/** The archive writer wraps errors of the document source; the source's own error says more. */
function unwrapSource(error: unknown): unknown {
  const cause = (error as { code?: string; cause?: unknown }).cause;
  if ((error as { code?: string }).code === "SOURCE" && cause instanceof Error) return cause;
  return error;
}
