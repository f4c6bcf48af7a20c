import { createHash, type Hash } from "node:crypto";
import { createReadStream } from "node:fs";
import { mkdir, open, readdir, readFile, rename, rm, stat, type FileHandle } from "node:fs/promises";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { BSON, type Document } from "bson";
import { FsStoreError, isNoSpace, systemCode, type FsStoreErrorCode } from "./errors.js";
import {
  MANIFEST_FILE,
  MANIFEST_FORMAT,
  parseManifest,
  serializeManifest,
  type FsManifest,
  type FsManifestCollection,
  type FsManifestFile,
} from "./manifest.js";
import { isMetadataUuid, metadataJson, parseMetadataJson, type FsCollectionType } from "./metadata.js";
import {
  collectionNameProblem,
  databaseNameProblem,
  dataFileName,
  isSafeSnapshotId,
  metadataFileName,
} from "./mongodumpNames.js";
import {
  batched,
  documentFramingProblem,
  FramingError,
  gunzipped,
  gzipped,
  openFrames,
  sealFrames,
  splitDocuments,
} from "./streams.js";

/** One collection, view or timeseries collection to write into a snapshot. */
export interface FsCollectionInput {
  db: string;
  name: string;
  type: FsCollectionType;
  /** The collection UUID as 32 lower-case hex digits. */
  uuid?: string;
  /** `listCollections` options (for a view: viewOn, pipeline, collation). */
  options: Document;
  /** `listIndexes` specs (empty for a view). */
  indexes: Document[];
  /**
   * The documents' raw BSON, in the order to store them (`_id` order, so the MD5 equals `dbHash`);
   * for a timeseries collection, its buckets. Must be absent or empty for a view. Read once, one
   * document at a time.
   */
  documents?: AsyncIterable<Uint8Array> | Iterable<Uint8Array>;
}

/** Options of `FsSnapshotStore.open`. */
export interface FsSnapshotStoreOptions {
  /**
   * Encrypts stored bytes. Files are sealed in frames of `sealFrameBytes` plaintext bytes (one
   * call per frame, the file `TMSEAL01` + (u32 length, sealed frame)*) and their names end `.enc`.
   * The manifest itself is never sealed, so snapshots can be listed and checksummed without keys.
   */
  seal?: (plain: Buffer) => Buffer;
  /** Decrypts what `seal` produced; needed to read or verify sealed snapshots. */
  open?: (sealed: Buffer) => Buffer;
  /** Plaintext bytes per sealed frame (default 1 MiB). */
  sealFrameBytes?: number;
}

/** Options of `write`. */
export interface FsWriteOptions {
  /** Written as `prelude.json`, as newer mongodump versions do: {"ServerVersion":…,"ToolVersion":…}. */
  prelude?: { ServerVersion: string; ToolVersion?: string };
  /**
   * Leave the unfinished `.partial-<id>` directory behind on a failure (as a crash would), for
   * groom to remove; by default the store removes it before throwing.
   */
  keepPartialOnError?: boolean;
}

/** A collection as `write` reports it. */
export interface FsCollectionWritten {
  namespace: string;
  count: number;
  logicalBytes: number;
  /** MD5 (hex) of the concatenated raw BSON documents; null for a view. */
  md5: string | null;
}

/** What `write` stored. */
export interface FsSnapshotWritten {
  snapshotId: string;
  /** file:// URL of the snapshot directory. */
  location: string;
  /** Every file except the manifest (as listed in it). */
  files: FsManifestFile[];
  collections: FsCollectionWritten[];
  /** Bytes on disk, the manifest included. */
  storedBytes: number;
}

/** One thing `verify` found wrong. */
export interface FsVerifyProblem {
  /** The file, relative to the snapshot directory (the manifest is `tidemark-manifest.json`). */
  file: string;
  kind: "MANIFEST" | "MISSING" | "UNEXPECTED" | "SIZE" | "SHA256" | "UNREADABLE" | "CONTENT";
  message: string;
}

/** What `verify` found. */
export interface FsVerifyResult {
  ok: boolean;
  problems: FsVerifyProblem[];
  /** The first damaged file, in manifest order (the manifest itself if it is damaged). */
  firstBadFile?: string;
  /** Files and documents read. */
  filesChecked: number;
  documentsChecked: number;
}

const PARTIAL_PREFIX = ".partial-";
const DELETING_PREFIX = ".deleting-";
const SEALED_SUFFIX = ".enc";
const PRELUDE_FILE = "prelude.json";
const DEFAULT_FRAME_BYTES = 1024 * 1024;
const READ_CHUNK_BYTES = 256 * 1024;

/** An error thrown by the caller's iterables, told apart from the store's own I/O errors. */
class SourceFailure extends Error {
  constructor(readonly original: unknown) {
    super("source failed");
  }
}

async function* guardSource<T>(source: AsyncIterable<T> | Iterable<T>): AsyncGenerator<T> {
  const iterator =
    Symbol.asyncIterator in source
      ? (source as AsyncIterable<T>)[Symbol.asyncIterator]()
      : (source as Iterable<T>)[Symbol.iterator]();
  let finished = false;
  try {
    while (true) {
      let step: IteratorResult<T>;
      try {
        step = await iterator.next();
      } catch (err) {
        finished = true;
        throw new SourceFailure(err);
      }
      if (step.done) {
        finished = true;
        return;
      }
      yield step.value;
    }
  } finally {
    if (!finished) await iterator.return?.();
  }
}

async function syncDirectory(dir: string): Promise<void> {
  let handle: FileHandle | undefined;
  try {
    handle = await open(dir, "r");
    await handle.sync();
  } catch (err) {
    // Some platforms cannot fsync a directory; the rename is still atomic there.
    const code = systemCode(err);
    if (code !== "EISDIR" && code !== "EPERM" && code !== "EINVAL" && code !== "EBADF") throw err;
  } finally {
    await handle?.close();
  }
}

async function writeAll(handle: FileHandle, chunk: Buffer): Promise<void> {
  let offset = 0;
  while (offset < chunk.length) {
    const { bytesWritten } = await handle.write(chunk, offset, chunk.length - offset);
    offset += bytesWritten;
  }
}

async function* hashing(
  source: AsyncIterable<Buffer>,
  hash: Hash,
  size: { bytes: number },
): AsyncGenerator<Buffer> {
  for await (const chunk of source) {
    hash.update(chunk);
    size.bytes += chunk.length;
    yield chunk;
  }
}

async function* bufferOf(bytes: Buffer): AsyncGenerator<Buffer> {
  yield bytes;
}

async function collect(source: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const part of source) parts.push(part);
  return Buffer.concat(parts);
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * Snapshots as full copies in a directory, one mongodump directory per snapshot:
 *
 * ```
 * <root>/<snapshotId>/<db>/<coll>.bson.gz          gzip of the documents' raw BSON
 * <root>/<snapshotId>/<db>/<coll>.metadata.json    options, indexes, uuid, collectionName, type
 * <root>/<snapshotId>/prelude.json                 optional
 * <root>/<snapshotId>/tidemark-manifest.json       every file's SHA-256 and size, every collection's count and MD5
 * ```
 *
 * `mongorestore --gzip --dir <root>/<snapshotId>` can restore an unsealed snapshot (it ignores the
 * manifest). A snapshot is written in `<root>/.partial-<id>/`, fsynced, and renamed as the last
 * step, so a cut-off write is never listed; `partials()` finds such leftovers for groom.
 */
export class FsSnapshotStore {
  /** file:// URL of the store's root directory. */
  readonly location: string;
  private readonly writing = new Set<string>();

  private constructor(
    readonly root: string,
    private readonly options: FsSnapshotStoreOptions,
  ) {
    this.location = pathToFileURL(root).href;
  }

  /** Opens (creating if needed) a store rooted at directory `root`. */
  static async open(root: string, options: FsSnapshotStoreOptions = {}): Promise<FsSnapshotStore> {
    const frameBytes = options.sealFrameBytes ?? DEFAULT_FRAME_BYTES;
    if (!Number.isSafeInteger(frameBytes) || frameBytes < 1 || frameBytes > 64 * 1024 * 1024) {
      throw new TypeError("sealFrameBytes must be an integer from 1 to 64 MiB");
    }
    const resolved = path.resolve(root);
    const store = new FsSnapshotStore(resolved, { ...options, sealFrameBytes: frameBytes });
    try {
      await mkdir(resolved, { recursive: true });
    } catch (err) {
      throw store.ioError(err, { problem: `cannot create the store directory: ${describe(err)}` });
    }
    return store;
  }

  /**
   * Writes a complete snapshot. Collections are written in the order given, each document read
   * once; the snapshot appears in `list()` only when every file and the manifest are on disk.
   * Throws FsStoreError: EXISTS, INVALID_ID, INVALID_INPUT, NO_SPACE, IO, SOURCE (the iterables
   * threw); after a failure nothing complete-looking is left.
   */
  async write(
    snapshotId: string,
    collections: AsyncIterable<FsCollectionInput> | Iterable<FsCollectionInput>,
    extra: Record<string, unknown> = {},
    options: FsWriteOptions = {},
  ): Promise<FsSnapshotWritten> {
    this.checkId(snapshotId);
    if (typeof extra !== "object" || extra === null || Array.isArray(extra)) {
      throw new TypeError("extra must be an object");
    }
    const finalDir = path.join(this.root, snapshotId);
    const partialDir = path.join(this.root, PARTIAL_PREFIX + snapshotId);
    if (this.writing.has(snapshotId)) {
      throw this.error("EXISTS", { snapshotId, problem: "this snapshot is being written already" });
    }
    if (await this.exists(finalDir)) {
      throw this.error("EXISTS", {
        snapshotId,
        problem: "a snapshot with this id exists already",
        hint: "snapshot ids are never reused; delete the old one first if it is really meant to be replaced",
      });
    }
    try {
      await mkdir(partialDir);
    } catch (err) {
      if (systemCode(err) === "EEXIST") {
        throw this.error("EXISTS", {
          snapshotId,
          file: PARTIAL_PREFIX + snapshotId,
          problem: "an unfinished write of this snapshot is in the way",
          hint: "another process may be writing it; if not, groom (or removePartial) removes it",
        });
      }
      throw this.ioError(err, {
        snapshotId,
        file: PARTIAL_PREFIX + snapshotId,
        problem: `cannot create the snapshot directory: ${describe(err)}`,
      });
    }
    this.writing.add(snapshotId);
    let current: string | undefined;
    try {
      const files: FsManifestFile[] = [];
      const entries: FsManifestCollection[] = [];
      const namespaces = new Set<string>();
      const paths = new Set<string>();
      const dbDirs = new Set<string>();
      const claim = (rel: string, namespace: string): void => {
        if (paths.has(rel)) {
          throw this.error("INVALID_INPUT", {
            snapshotId,
            file: rel,
            problem: `${namespace} would be stored in a file another collection uses already`,
          });
        }
        paths.add(rel);
      };
      for await (const input of guardSource(collections)) {
        current = undefined;
        const c = this.checkInput(snapshotId, input);
        const namespace = `${c.db}.${c.name}`;
        if (namespaces.has(namespace)) {
          throw this.error("INVALID_INPUT", { snapshotId, problem: `${namespace} is given twice` });
        }
        namespaces.add(namespace);
        if (!dbDirs.has(c.db)) {
          current = c.db;
          await mkdir(path.join(partialDir, c.db));
          dbDirs.add(c.db);
        }

        const metadataRel = `${c.db}/${metadataFileName(c.name, this.sealed)}`;
        claim(metadataRel, namespace);
        current = metadataRel;
        const metadata = metadataJson({
          options: c.options,
          indexes: c.indexes,
          uuid: c.uuid,
          collectionName: c.name,
          type: c.type,
        });
        files.push(await this.writeFile(partialDir, metadataRel, bufferOf(Buffer.from(metadata, "utf8"))));

        const entry: FsManifestCollection = {
          namespace,
          db: c.db,
          name: c.name,
          type: c.type,
          ...(c.uuid !== undefined && c.uuid !== "" ? { uuid: c.uuid } : {}),
          metadataFile: metadataRel,
          count: 0,
          logicalBytes: 0,
          md5: null,
        };
        if (c.type === "view") {
          if (c.documents !== undefined) {
            for await (const _doc of guardSource(c.documents)) {
              throw this.error("INVALID_INPUT", {
                snapshotId,
                problem: `${namespace} is a view and cannot have documents`,
              });
            }
          }
        } else {
          const dataRel = `${c.db}/${dataFileName(c.name, c.type === "timeseries", this.sealed)}`;
          claim(dataRel, namespace);
          current = dataRel;
          const md5 = createHash("md5");
          const stats = { count: 0, logicalBytes: 0 };
          const documents = this.checkedDocuments(snapshotId, dataRel, c.documents ?? [], md5, stats);
          files.push(await this.writeFile(partialDir, dataRel, gzipped(batched(documents))));
          entry.dataFile = dataRel;
          entry.count = stats.count;
          entry.logicalBytes = stats.logicalBytes;
          entry.md5 = md5.digest("hex");
        }
        entries.push(entry);
      }

      if (options.prelude !== undefined) {
        const prelude = JSON.stringify({
          ServerVersion: options.prelude.ServerVersion,
          ToolVersion: options.prelude.ToolVersion ?? "",
        });
        current = PRELUDE_FILE + this.suffix;
        files.push(await this.writeFile(partialDir, current, bufferOf(Buffer.from(prelude, "utf8"))));
      }

      current = MANIFEST_FILE;
      const manifest: FsManifest = {
        format: MANIFEST_FORMAT,
        snapshotId,
        createdAt: new Date().toISOString(),
        files,
        collections: entries,
        extra,
      };
      const manifestBytes = serializeManifest(manifest);
      await this.writeFile(partialDir, MANIFEST_FILE, bufferOf(manifestBytes), false);

      current = undefined;
      for (const db of dbDirs) await syncDirectory(path.join(partialDir, db));
      await syncDirectory(partialDir);
      if (await this.exists(finalDir)) {
        throw this.error("EXISTS", {
          snapshotId,
          problem: "a snapshot with this id appeared while it was written",
        });
      }
      await rename(partialDir, finalDir);
      await syncDirectory(this.root);
      return {
        snapshotId,
        location: pathToFileURL(finalDir).href,
        files,
        collections: entries.map(({ namespace, count, logicalBytes, md5 }) => ({
          namespace,
          count,
          logicalBytes,
          md5,
        })),
        storedBytes: files.reduce((sum, f) => sum + f.bytes, manifestBytes.length),
      };
    } catch (err) {
      const failure = this.writeFailure(err, snapshotId, current, options.keepPartialOnError === true);
      if (options.keepPartialOnError !== true)
        await rm(partialDir, { recursive: true, force: true }).catch(() => {});
      throw failure;
    } finally {
      this.writing.delete(snapshotId);
    }
  }

  /**
   * The documents of `namespace` (`<db>.<coll>`; a timeseries collection's buckets also as
   * `<db>.system.buckets.<coll>`) in stored order, as raw BSON. The file's SHA-256 and size are
   * checked against the manifest before the first document (a read of the whole file), then the
   * file is streamed; its count and MD5 are checked at the end. Damage is an FsStoreError CORRUPT
   * naming the file. A view has no documents.
   */
  async *documents(snapshotId: string, namespace: string): AsyncGenerator<Buffer> {
    const manifest = await this.manifest(snapshotId);
    const entry = manifest.collections.find(
      (c) =>
        c.namespace === namespace ||
        (c.type === "timeseries" && `${c.db}.system.buckets.${c.name}` === namespace),
    );
    if (entry === undefined) {
      throw this.error("NOT_FOUND", {
        snapshotId,
        problem: `the snapshot has no collection ${JSON.stringify(namespace)}`,
      });
    }
    if (entry.dataFile === undefined) return;
    const file = manifest.files.find((f) => f.path === entry.dataFile) as FsManifestFile;
    const dir = path.join(this.root, snapshotId);
    const corrupt = (problem: string, cause?: unknown) =>
      this.error("CORRUPT", {
        snapshotId,
        file: file.path,
        problem,
        hint: "the snapshot cannot be restored from this copy; run verify to list every damaged file",
        cause,
      });

    const first = await this.hashFile(snapshotId, dir, file);
    if (first.bytes !== file.bytes)
      throw corrupt(`the file is ${first.bytes} bytes, the manifest says ${file.bytes}`);
    if (first.sha256 !== file.sha256)
      throw corrupt(`the file's SHA-256 is ${first.sha256}, the manifest says ${file.sha256}`);

    const opener = file.sealed ? this.opener(snapshotId, file.path) : undefined;
    const sha = createHash("sha256");
    const size = { bytes: 0 };
    const md5 = createHash("md5");
    let count = 0;
    const raw = hashing(
      createReadStream(path.join(dir, file.path), { highWaterMark: READ_CHUNK_BYTES }),
      sha,
      size,
    );
    const docs = splitDocuments(gunzipped(opener ? openFrames(raw, opener) : raw));
    try {
      for await (const doc of docs) {
        md5.update(doc);
        count++;
        yield doc;
      }
    } catch (err) {
      if (FsStoreError.is(err)) throw err;
      if (err instanceof FramingError || isZlibError(err) || err instanceof OpenFailure) {
        throw corrupt(
          `the file cannot be read back: ${describe(err instanceof OpenFailure ? err.original : err)}`,
          err,
        );
      }
      throw this.ioError(err, {
        snapshotId,
        file: file.path,
        problem: `cannot read the file: ${describe(err)}`,
      });
    }
    const digest = sha.digest("hex");
    if (size.bytes !== file.bytes || digest !== file.sha256)
      throw corrupt("the file changed while it was read");
    if (count !== entry.count)
      throw corrupt(`the file holds ${count} documents, the manifest says ${entry.count}`);
    if (md5.digest("hex") !== entry.md5) throw corrupt("the documents' MD5 differs from the manifest's");
  }

  /** A complete snapshot's manifest. NOT_FOUND if there is no such snapshot, CORRUPT if it is damaged. */
  async manifest(snapshotId: string): Promise<FsManifest> {
    this.checkId(snapshotId);
    let bytes: Buffer;
    try {
      bytes = await readFile(path.join(this.root, snapshotId, MANIFEST_FILE));
    } catch (err) {
      if (systemCode(err) === "ENOENT") {
        throw this.error("NOT_FOUND", { snapshotId, problem: "there is no complete snapshot with this id" });
      }
      throw this.ioError(err, {
        snapshotId,
        file: MANIFEST_FILE,
        problem: `cannot read the manifest: ${describe(err)}`,
      });
    }
    try {
      const manifest = parseManifest(bytes);
      if (manifest.snapshotId !== snapshotId)
        throw new Error(`the manifest is snapshot ${manifest.snapshotId}'s`);
      return manifest;
    } catch (err) {
      throw this.error("CORRUPT", {
        snapshotId,
        file: MANIFEST_FILE,
        problem: describe(err),
        hint: "without its manifest the snapshot cannot be checked; restore it from another copy",
      });
    }
  }

  /**
   * Re-reads every file of a snapshot: size and SHA-256 against the manifest, metadata files parsed,
   * every document's BSON parsed, each collection's count, logical bytes and MD5 recomputed. Files
   * on disk that the manifest does not list are problems too. Only a missing snapshot throws.
   */
  async verify(snapshotId: string): Promise<FsVerifyResult> {
    const problems: FsVerifyProblem[] = [];
    const result = (filesChecked: number, documentsChecked: number): FsVerifyResult => ({
      ok: problems.length === 0,
      problems,
      ...(problems.length > 0 ? { firstBadFile: problems[0].file } : {}),
      filesChecked,
      documentsChecked,
    });
    let manifest: FsManifest;
    try {
      manifest = await this.manifest(snapshotId);
    } catch (err) {
      if (FsStoreError.is(err, "CORRUPT")) {
        problems.push({ file: MANIFEST_FILE, kind: "MANIFEST", message: err.problem });
        return result(1, 0);
      }
      throw err;
    }
    const dir = path.join(this.root, snapshotId);
    const collectionsByFile = new Map<string, { entry: FsManifestCollection; data: boolean }>();
    for (const entry of manifest.collections) {
      collectionsByFile.set(entry.metadataFile, { entry, data: false });
      if (entry.dataFile !== undefined) collectionsByFile.set(entry.dataFile, { entry, data: true });
    }
    let filesChecked = 1;
    let documentsChecked = 0;
    for (const file of manifest.files) {
      filesChecked++;
      const problem = (kind: FsVerifyProblem["kind"], message: string) =>
        problems.push({ file: file.path, kind, message });
      const owner = collectionsByFile.get(file.path);
      const sha = createHash("sha256");
      const size = { bytes: 0 };
      let contentError: unknown;
      let readError: unknown;
      try {
        const raw = hashing(
          createReadStream(path.join(dir, file.path), { highWaterMark: READ_CHUNK_BYTES }),
          sha,
          size,
        );
        const plain = file.sealed ? openFrames(raw, this.opener(snapshotId, file.path)) : raw;
        if (owner?.data) {
          const md5 = createHash("md5");
          let count = 0;
          let logicalBytes = 0;
          for await (const doc of splitDocuments(gunzipped(plain))) {
            try {
              BSON.deserialize(doc, { validation: { utf8: false } });
            } catch (err) {
              throw new ContentProblem(`document ${count + 1} is not valid BSON: ${describe(err)}`);
            }
            md5.update(doc);
            count++;
            logicalBytes += doc.length;
            documentsChecked++;
          }
          const { entry } = owner;
          const digest = md5.digest("hex");
          if (count !== entry.count)
            throw new ContentProblem(`${count} documents, the manifest says ${entry.count}`);
          if (logicalBytes !== entry.logicalBytes) {
            throw new ContentProblem(
              `${logicalBytes} bytes of BSON, the manifest says ${entry.logicalBytes}`,
            );
          }
          if (digest !== entry.md5)
            throw new ContentProblem(`the documents' MD5 is ${digest}, the manifest says ${entry.md5}`);
        } else {
          const text = (await collect(plain)).toString("utf8");
          if (owner !== undefined) {
            const meta = parseMetadataJson(text);
            if (meta.collectionName !== owner.entry.name || meta.type !== owner.entry.type) {
              throw new ContentProblem(
                `the metadata is ${meta.collectionName}'s (${meta.type}), not ${owner.entry.namespace}'s`,
              );
            }
          } else {
            JSON.parse(text);
          }
        }
      } catch (err) {
        if (systemCode(err) === "ENOENT") {
          problem("MISSING", "the file is missing");
          continue;
        }
        if (FsStoreError.is(err)) throw err;
        if (isReadError(err)) readError = err;
        else contentError = err;
      }
      if (readError !== undefined) {
        problem("UNREADABLE", `the file cannot be read: ${describe(readError)}`);
        continue;
      }
      // The content check may have stopped early; hash what is left so damage is named correctly.
      const whole =
        contentError === undefined
          ? { sha256: sha.digest("hex"), bytes: size.bytes }
          : await this.hashFile(snapshotId, dir, file).catch(() => undefined);
      if (whole === undefined) {
        problem("UNREADABLE", "the file cannot be read");
      } else if (whole.bytes !== file.bytes) {
        problem("SIZE", `the file is ${whole.bytes} bytes, the manifest says ${file.bytes}`);
      } else if (whole.sha256 !== file.sha256) {
        problem("SHA256", `the file's SHA-256 is ${whole.sha256}, the manifest says ${file.sha256}`);
      } else if (contentError !== undefined) {
        const message =
          contentError instanceof OpenFailure
            ? `cannot unseal: ${describe(contentError.original)}`
            : describe(contentError);
        problem("CONTENT", message);
      }
    }
    for (const rel of await listFiles(dir).catch(() => [] as string[])) {
      if (rel !== MANIFEST_FILE && !manifest.files.some((f) => f.path === rel)) {
        problems.push({ file: rel, kind: "UNEXPECTED", message: "the file is not in the manifest" });
      }
    }
    return result(filesChecked, documentsChecked);
  }

  /**
   * Deletes a snapshot: it leaves `list()` at once (renamed to `.deleting-<id>`), then its files
   * are removed. Leftovers of an unfinished write or delete with this id are removed too. Deleting
   * a snapshot that is not there does nothing.
   */
  async delete(snapshotId: string): Promise<void> {
    this.checkId(snapshotId);
    const deleting = path.join(this.root, DELETING_PREFIX + snapshotId);
    try {
      await rename(path.join(this.root, snapshotId), deleting);
    } catch (err) {
      const code = systemCode(err);
      if (code === "ENOTEMPTY" || code === "EEXIST") {
        // An earlier delete was cut off; finish it, then retry.
        await this.removeDir(snapshotId, deleting);
        await rename(path.join(this.root, snapshotId), deleting).catch((again: unknown) => {
          if (systemCode(again) !== "ENOENT")
            throw this.ioError(again, { snapshotId, problem: "cannot delete the snapshot" });
        });
      } else if (code !== "ENOENT") {
        throw this.ioError(err, { snapshotId, problem: `cannot delete the snapshot: ${describe(err)}` });
      }
    }
    await syncDirectory(this.root).catch(() => {});
    await this.removePartial(snapshotId);
  }

  /** Ids of complete snapshots, sorted. */
  async list(): Promise<string[]> {
    const ids: string[] = [];
    for (const entry of await this.rootEntries()) {
      if (!entry.isDirectory() || !isSafeSnapshotId(entry.name)) continue;
      if (await this.exists(path.join(this.root, entry.name, MANIFEST_FILE))) ids.push(entry.name);
    }
    return ids.sort();
  }

  /**
   * Ids with leftovers of a write or delete that was cut off (`.partial-<id>`, `.deleting-<id>`),
   * sorted; writes this store object is doing now are not included. Groom removes them with
   * `removePartial`. Another process's write in progress looks the same: pass `olderThanMs` to
   * keep recent ones.
   */
  async partials(olderThanMs = 0): Promise<string[]> {
    const ids = new Set<string>();
    const now = Date.now();
    for (const entry of await this.rootEntries()) {
      const prefix = [PARTIAL_PREFIX, DELETING_PREFIX].find((p) => entry.name.startsWith(p));
      if (prefix === undefined) continue;
      const id = entry.name.slice(prefix.length);
      if (!isSafeSnapshotId(id) || (prefix === PARTIAL_PREFIX && this.writing.has(id))) continue;
      if (olderThanMs > 0) {
        const info = await stat(path.join(this.root, entry.name)).catch(() => undefined);
        if (info === undefined || now - info.mtimeMs < olderThanMs) continue;
      }
      ids.add(id);
    }
    return [...ids].sort();
  }

  /** Removes the leftovers of an unfinished write or delete of `snapshotId` (never a complete snapshot). */
  async removePartial(snapshotId: string): Promise<void> {
    this.checkId(snapshotId);
    if (!this.writing.has(snapshotId))
      await this.removeDir(snapshotId, path.join(this.root, PARTIAL_PREFIX + snapshotId));
    await this.removeDir(snapshotId, path.join(this.root, DELETING_PREFIX + snapshotId));
  }

  // ---------------------------------------------------------------------------------------------

  private get sealed(): boolean {
    return this.options.seal !== undefined;
  }

  private get suffix(): string {
    return this.sealed ? SEALED_SUFFIX : "";
  }

  private async writeFile(
    dir: string,
    rel: string,
    plain: AsyncIterable<Buffer>,
    sealable = true,
  ): Promise<FsManifestFile> {
    const seal = sealable ? this.options.seal : undefined;
    const handle = await open(path.join(dir, rel), "wx");
    const sha = createHash("sha256");
    let bytes = 0;
    try {
      const stored = seal
        ? sealFrames(plain, guardSeal(seal), this.options.sealFrameBytes ?? DEFAULT_FRAME_BYTES)
        : plain;
      for await (const chunk of stored) {
        sha.update(chunk);
        bytes += chunk.length;
        await writeAll(handle, chunk);
      }
      await handle.sync();
    } finally {
      await handle.close();
    }
    return { path: rel, sha256: sha.digest("hex"), bytes, sealed: seal !== undefined };
  }

  private async *checkedDocuments(
    snapshotId: string,
    file: string,
    source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
    md5: Hash,
    stats: { count: number; logicalBytes: number },
  ): AsyncGenerator<Buffer> {
    for await (const doc of guardSource(source)) {
      if (!(doc instanceof Uint8Array)) {
        throw this.error("INVALID_INPUT", {
          snapshotId,
          file,
          problem: `document ${stats.count + 1} is not a Uint8Array`,
        });
      }
      const problem = documentFramingProblem(doc);
      if (problem !== undefined) {
        throw this.error("INVALID_INPUT", {
          snapshotId,
          file,
          problem: `document ${stats.count + 1} is not BSON: ${problem}`,
        });
      }
      md5.update(doc);
      stats.count++;
      stats.logicalBytes += doc.length;
      yield Buffer.isBuffer(doc) ? doc : Buffer.from(doc.buffer, doc.byteOffset, doc.length);
    }
  }

  private checkInput(snapshotId: string, input: FsCollectionInput): FsCollectionInput {
    const bad = (problem: string) => this.error("INVALID_INPUT", { snapshotId, problem });
    if (typeof input !== "object" || input === null) throw bad("a collection is not an object");
    if (typeof input.db !== "string" || typeof input.name !== "string")
      throw bad("a collection has no db or name");
    const ns = JSON.stringify(`${input.db}.${input.name}`);
    const dbProblem = databaseNameProblem(input.db);
    if (dbProblem !== undefined) throw bad(`${ns}: ${dbProblem}`);
    const nameProblem = collectionNameProblem(input.name);
    if (nameProblem !== undefined) throw bad(`${ns}: ${nameProblem}`);
    if (input.type !== "collection" && input.type !== "view" && input.type !== "timeseries") {
      throw bad(`${ns}: unknown type ${JSON.stringify(input.type)}`);
    }
    if (input.uuid !== undefined && input.uuid !== "" && !isMetadataUuid(input.uuid)) {
      throw bad(`${ns}: uuid must be 32 lower-case hex digits`);
    }
    if (typeof input.options !== "object" || input.options === null || Array.isArray(input.options)) {
      throw bad(`${ns}: options must be an object`);
    }
    if (!Array.isArray(input.indexes)) throw bad(`${ns}: indexes must be an array`);
    return input;
  }

  private opener(snapshotId: string, file: string): (sealed: Buffer) => Buffer {
    const open = this.options.open;
    if (open === undefined) {
      throw this.error("IO", {
        snapshotId,
        file,
        problem: "the file is sealed (encrypted) and the store was opened without an open transform",
        hint: "open the store with the snapshot's encryption keys",
      });
    }
    return (sealed) => {
      try {
        return open(sealed);
      } catch (err) {
        throw new OpenFailure(err);
      }
    };
  }

  private async hashFile(
    snapshotId: string,
    dir: string,
    file: FsManifestFile,
  ): Promise<{ sha256: string; bytes: number }> {
    const sha = createHash("sha256");
    let bytes = 0;
    try {
      for await (const chunk of createReadStream(path.join(dir, file.path), {
        highWaterMark: READ_CHUNK_BYTES,
      })) {
        sha.update(chunk as Buffer);
        bytes += (chunk as Buffer).length;
      }
    } catch (err) {
      if (systemCode(err) === "ENOENT") {
        throw this.error("CORRUPT", {
          snapshotId,
          file: file.path,
          problem: "the file is missing",
          cause: err,
        });
      }
      throw this.ioError(err, {
        snapshotId,
        file: file.path,
        problem: `cannot read the file: ${describe(err)}`,
      });
    }
    return { sha256: sha.digest("hex"), bytes };
  }

  private async exists(p: string): Promise<boolean> {
    try {
      return await exists(p);
    } catch (err) {
      throw this.ioError(err, { problem: `cannot look at ${p}: ${describe(err)}` });
    }
  }

  private async rootEntries() {
    try {
      return await readdir(this.root, { withFileTypes: true });
    } catch (err) {
      throw this.ioError(err, { problem: `cannot list the store directory: ${describe(err)}` });
    }
  }

  private async removeDir(snapshotId: string, dir: string): Promise<void> {
    try {
      await rm(dir, { recursive: true, force: true });
    } catch (err) {
      throw this.ioError(err, {
        snapshotId,
        file: path.basename(dir),
        problem: `cannot remove ${path.basename(dir)}: ${describe(err)}`,
      });
    }
  }

  private checkId(snapshotId: string): void {
    if (typeof snapshotId !== "string" || !isSafeSnapshotId(snapshotId)) {
      throw this.error("INVALID_ID", {
        snapshotId: String(snapshotId),
        problem:
          "a snapshot id must be 1-200 letters, digits, '.', '_' or '-', starting with a letter or digit",
      });
    }
  }

  private writeFailure(
    err: unknown,
    snapshotId: string,
    file: string | undefined,
    kept: boolean,
  ): FsStoreError {
    const leftover = kept
      ? `the unfinished copy was left as ${PARTIAL_PREFIX}${snapshotId} for groom`
      : "the unfinished copy was removed";
    if (FsStoreError.is(err)) return err;
    const original =
      err instanceof SourceFailure ? err.original : err instanceof SealFailure ? err.original : err;
    if (isNoSpace(original)) {
      return this.error("NO_SPACE", {
        snapshotId,
        file,
        problem: `the disk is full (${systemCode(original)}) while writing the snapshot`,
        hint: `free space on the volume holding ${this.root} (or raise its quota) and take the snapshot again; ${leftover}`,
        cause: original,
      });
    }
    if (err instanceof SourceFailure) {
      return this.error("SOURCE", {
        snapshotId,
        file,
        problem: `reading the data to snapshot failed: ${describe(original)}`,
        hint: `take the snapshot again once the source is readable; ${leftover}`,
        cause: original,
      });
    }
    if (err instanceof SealFailure) {
      return this.error("IO", {
        snapshotId,
        file,
        problem: `the seal (encryption) transform failed: ${describe(original)}`,
        hint: `check the encryption keys; ${leftover}`,
        cause: original,
      });
    }
    return this.ioError(original, {
      snapshotId,
      file,
      problem: `cannot write the snapshot: ${describe(original)}`,
      extraHint: leftover,
    });
  }

  private ioError(
    err: unknown,
    details: { snapshotId?: string; file?: string; problem: string; extraHint?: string },
  ): FsStoreError {
    const code = systemCode(err);
    let hint: string;
    let errorCode: FsStoreErrorCode = "IO";
    if (isNoSpace(err)) {
      errorCode = "NO_SPACE";
      hint = `free space on the volume holding ${this.root}`;
    } else if (code === "EACCES" || code === "EPERM") {
      hint = `check that Tidemark may read and write ${this.root}`;
    } else if (code === "EROFS") {
      hint = `${this.root} is on a read-only file system`;
    } else {
      hint = "check the disk and the file system";
    }
    if (details.extraHint) hint += `; ${details.extraHint}`;
    return this.error(errorCode, {
      snapshotId: details.snapshotId,
      file: details.file,
      problem: details.problem,
      hint,
      cause: err,
    });
  }

  private error(
    code: FsStoreErrorCode,
    details: { snapshotId?: string; file?: string; problem: string; hint?: string; cause?: unknown },
  ): FsStoreError {
    return new FsStoreError(code, { location: this.location, ...details });
  }
}

/** The caller's open transform threw (wrong key, damaged frame). */
class OpenFailure extends Error {
  constructor(readonly original: unknown) {
    super(describe(original));
  }
}

/** The caller's seal transform threw. */
class SealFailure extends Error {
  constructor(readonly original: unknown) {
    super(describe(original));
  }
}

/** Content found wrong by verify (as opposed to a file that cannot be read). */
class ContentProblem extends Error {}

function guardSeal(seal: (plain: Buffer) => Buffer): (plain: Buffer) => Buffer {
  return (plain) => {
    try {
      return seal(plain);
    } catch (err) {
      throw new SealFailure(err);
    }
  };
}

function isZlibError(err: unknown): boolean {
  const errno = (err as { errno?: unknown }).errno;
  const code = (err as { code?: unknown }).code;
  return typeof code === "string" && code.startsWith("Z_") && typeof errno === "number";
}

/** An operating-system read failure (not a content problem). */
function isReadError(err: unknown): boolean {
  const code = (err as { code?: unknown }).code;
  return typeof code === "string" && /^E[A-Z0-9]+$/.test(code);
}

async function exists(p: string): Promise<boolean> {
  try {
    await stat(p);
    return true;
  } catch (err) {
    const code = systemCode(err);
    if (code === "ENOENT" || code === "ENOTDIR") return false;
    throw err;
  }
}

/** Files under `dir`, as `/`-separated relative paths (two levels, as a dump has). */
async function listFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    if (entry.isDirectory()) {
      for (const inner of await readdir(path.join(dir, entry.name), { withFileTypes: true })) {
        out.push(`${entry.name}/${inner.name}${inner.isDirectory() ? "/" : ""}`);
      }
    } else {
      out.push(entry.name);
    }
  }
  return out;
}
