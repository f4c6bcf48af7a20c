import { createHash } from "node:crypto";
import { EJSON } from "bson";
import type { FsCollectionType } from "./metadata.js";

/** The manifest's file name inside a snapshot directory. */
export const MANIFEST_FILE = "tidemark-manifest.json";
/** The manifest format this code writes and reads. */
export const MANIFEST_FORMAT = "tidemark-fs-snapshot/1";

/** One stored file: its path relative to the snapshot directory (with `/`), SHA-256 and size as stored. */
export interface FsManifestFile {
  path: string;
  /** SHA-256 of the stored bytes (after sealing, if sealed), 64 lower-case hex digits. */
  sha256: string;
  /** Size of the stored file in bytes. */
  bytes: number;
  /** True if the file was written through the store's `seal` transform (its name ends `.enc`). */
  sealed: boolean;
}

/** One collection (or view) of the snapshot. */
export interface FsManifestCollection {
  /** `<db>.<name>`. */
  namespace: string;
  db: string;
  name: string;
  type: FsCollectionType;
  /** 32 hex digits, when known. */
  uuid?: string;
  /** Path of `<coll>.metadata.json[.enc]`. */
  metadataFile: string;
  /** Path of `<coll>.bson.gz[.enc]` (a timeseries collection's buckets); absent for a view. */
  dataFile?: string;
  /** Documents stored (0 for a view). */
  count: number;
  /** Sum of the documents' BSON sizes. */
  logicalBytes: number;
  /**
   * MD5 (hex) of the documents' raw BSON concatenated in stored order, as MongoDB's `dbHash`
   * computes a collection's hash when they are in `_id` order; null for a view.
   */
  md5: string | null;
}

/** A snapshot's manifest: the last file written before the snapshot directory gets its name. */
export interface FsManifest {
  format: typeof MANIFEST_FORMAT;
  snapshotId: string;
  /** When the write finished (ISO 8601). */
  createdAt: string;
  /** Every file in the snapshot directory except the manifest itself, in the order written. */
  files: FsManifestFile[];
  collections: FsManifestCollection[];
  /** Caller-supplied fields (deployment, optime, ...), as Extended JSON (relaxed) round-trips them. */
  extra: Record<string, unknown>;
}

const PREFIX = '{"manifestSha256":"';
const MIDDLE = '","manifest":';
const SUFFIX = "}\n";

/**
 * The manifest file: `{"manifestSha256":"<hex>","manifest":<body>}` where the hash covers the
 * body's exact bytes, so any damage to the manifest (even to a hash it lists) is caught and
 * blamed on the manifest, not on the file it describes.
 */
export function serializeManifest(manifest: FsManifest): Buffer {
  const body = EJSON.stringify(manifest, undefined, 2, { relaxed: true });
  const hash = createHash("sha256").update(body, "utf8").digest("hex");
  return Buffer.from(PREFIX + hash + MIDDLE + body + SUFFIX, "utf8");
}

const HEX64 = /^[0-9a-f]{64}$/;
const HEX32 = /^[0-9a-f]{32}$/;

/** A relative path inside the snapshot directory that cannot escape it. */
export function isSafeRelativePath(path: string): boolean {
  const parts = path.split("/");
  return (
    parts.length >= 1 &&
    parts.length <= 2 &&
    parts.every((part) => part.length > 0 && part !== "." && part !== ".." && !/[\\\0]/.test(part))
  );
}

/** Parses and checks a manifest file; throws an Error saying what is wrong. */
export function parseManifest(bytes: Buffer): FsManifest {
  const text = bytes.toString("utf8");
  const bodyStart = PREFIX.length + 64 + MIDDLE.length;
  if (
    !text.startsWith(PREFIX) ||
    text.slice(PREFIX.length + 64, bodyStart) !== MIDDLE ||
    !text.endsWith(SUFFIX)
  ) {
    throw new Error("the manifest is not framed as {manifestSha256, manifest}");
  }
  const expected = text.slice(PREFIX.length, PREFIX.length + 64);
  const body = text.slice(bodyStart, text.length - SUFFIX.length);
  const actual = createHash("sha256").update(body, "utf8").digest("hex");
  if (actual !== expected)
    throw new Error(`the manifest's SHA-256 is ${actual}, not the ${expected} it records`);
  const parsed = EJSON.parse(body, { relaxed: true }) as FsManifest;
  checkShape(parsed);
  return parsed;
}

function checkShape(m: FsManifest): void {
  const fail = (what: string): never => {
    throw new Error(`the manifest ${what}`);
  };
  if (typeof m !== "object" || m === null) fail("is not an object");
  if (m.format !== MANIFEST_FORMAT) fail(`has format ${JSON.stringify(m.format)}, not ${MANIFEST_FORMAT}`);
  if (typeof m.snapshotId !== "string") fail("has no snapshotId");
  if (!Array.isArray(m.files)) fail("has no files");
  if (!Array.isArray(m.collections)) fail("has no collections");
  if (typeof m.extra !== "object" || m.extra === null) fail("has no extra");
  const paths = new Set<string>();
  for (const f of m.files) {
    if (typeof f?.path !== "string" || !isSafeRelativePath(f.path) || f.path === MANIFEST_FILE) {
      fail(`lists a bad file path ${JSON.stringify(f?.path)}`);
    }
    if (paths.has(f.path)) fail(`lists ${f.path} twice`);
    paths.add(f.path);
    if (typeof f.sha256 !== "string" || !HEX64.test(f.sha256)) fail(`has a bad sha256 for ${f.path}`);
    if (!Number.isSafeInteger(f.bytes) || f.bytes < 0) fail(`has a bad size for ${f.path}`);
    if (typeof f.sealed !== "boolean") fail(`has no sealed flag for ${f.path}`);
  }
  for (const c of m.collections) {
    if (typeof c?.namespace !== "string" || c.namespace !== `${c.db}.${c.name}`)
      fail("has a collection with a bad namespace");
    if (!paths.has(c.metadataFile)) fail(`does not list ${c.namespace}'s metadata file`);
    if (c.dataFile !== undefined && !paths.has(c.dataFile)) fail(`does not list ${c.namespace}'s data file`);
    if (!Number.isSafeInteger(c.count) || !Number.isSafeInteger(c.logicalBytes))
      fail(`has bad counts for ${c.namespace}`);
    if (c.md5 !== null && !(typeof c.md5 === "string" && HEX32.test(c.md5)))
      fail(`has a bad md5 for ${c.namespace}`);
  }
}
