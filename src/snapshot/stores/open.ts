import path from "node:path";
import { fileURLToPath } from "node:url";
import { OplogStoreError } from "../../oplogstore/errors.js";
import { openOplogStore, parseS3Spec, type OpenOplogStoreOptions } from "../../oplogstore/open.js";
import { S3OplogStore } from "../../oplogstore/s3Store.js";
import type { BlockStore } from "./blockStore.js";
import { BlockStoreError } from "./errors.js";
import { S3BlockStore } from "./s3BlockStore.js";
import { DEFAULT_BLOCKSTORE_FILE, SqliteBlockStore } from "./sqliteBlockStore.js";

export interface OpenBlockStoreOptions {
  /** The server's data directory; `blockstore` (or no spec) means `<dataDir>/blockstore.sqlite`. */
  dataDir?: string;
  /** Quota for a blockstore database, in bytes (SqliteBlockStoreOptions.maxBytes). */
  maxBytes?: number;
  /** Settings for an s3:// store; anything not given comes from the AWS_* variables, as for the oplog store. */
  s3?: OpenOplogStoreOptions["s3"];
  /** Check the bucket and credentials at open (HeadBucket) so a bad configuration fails at startup. Default true. */
  verify?: boolean;
  /** The environment to read AWS_* variables from (default process.env; tests pass their own). */
  env?: Record<string, string | undefined>;
}

/**
 * Opens the block store a `--snapshot-store` spec names:
 * - `blockstore`, "" or undefined → the blockstore database `<dataDir>/blockstore.sqlite`;
 * - a path ending `.sqlite` (relative to the working directory), or a `file:` URL of one → a
 *   blockstore database there;
 * - `s3://BUCKET/PREFIX` → S3BlockStore, with endpoint, region and credentials resolved exactly as
 *   for an s3:// oplog store (openOplogStore: options, then AWS_* variables, then the SDK's chain;
 *   never from the URL).
 * `fs:/PATH` names the file system snapshot store (full mongodump copies), which is not a block
 * store: it is refused here with a message saying so.
 */
export async function openBlockStore(
  spec: string | undefined,
  options: OpenBlockStoreOptions = {},
): Promise<BlockStore> {
  const trimmed = (spec ?? "").trim();
  if (trimmed.toLowerCase().startsWith("s3://")) return openS3(trimmed, options);
  return SqliteBlockStore.open(databasePath(trimmed, options), { maxBytes: options.maxBytes });
}

function databasePath(spec: string, options: OpenBlockStoreOptions): string {
  if (spec === "" || spec === "blockstore") {
    if (options.dataDir === undefined) {
      throw new Error(
        "no block store given: pass blockstore with a data directory, a path ending .sqlite, or s3://BUCKET/PREFIX",
      );
    }
    return path.join(options.dataDir, DEFAULT_BLOCKSTORE_FILE);
  }
  if (/^fs:/i.test(spec)) {
    throw new Error(
      "fs:/PATH is the file system snapshot store (full copies as mongodump directories), not a block store; " +
        "block stores are blockstore, a path ending .sqlite, or s3://BUCKET/PREFIX",
    );
  }
  if (/^file:/i.test(spec)) {
    let file: string;
    try {
      // new URL() would read "file:blocks.sqlite" as /blocks.sqlite; refuse it instead.
      if (!/^file:\//i.test(spec)) throw new TypeError("not an absolute file URL");
      file = fileURLToPath(spec);
    } catch {
      throw new Error(
        "invalid block store file: URL: expected file:///ABSOLUTE/PATH.sqlite (no host, no relative path)",
      );
    }
    if (!file.endsWith(".sqlite")) {
      throw new Error("invalid block store file: URL: a blockstore database's name must end with .sqlite");
    }
    return file;
  }
  // "gs://x" or "http://x" are not paths: refuse rather than create "./gs:/x". Only such a scheme is
  // echoed, never the rest, which may hold a pasted secret (nor a "scheme" without "//", which is as
  // likely to be "key:secret").
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(spec)?.[1];
  if (scheme !== undefined) {
    throw new Error(
      `unsupported block store "${scheme}://...": use blockstore, a path ending .sqlite, or s3://BUCKET/PREFIX`,
    );
  }
  if (!spec.endsWith(".sqlite")) {
    throw new Error(
      "unsupported block store: use blockstore, a path ending .sqlite (a blockstore database), or s3://BUCKET/PREFIX",
    );
  }
  return spec;
}

async function openS3(spec: string, options: OpenBlockStoreOptions): Promise<BlockStore> {
  try {
    parseS3Spec(spec);
  } catch (err) {
    // parseS3Spec words its message for the oplog store; the rules are the same.
    const message = err instanceof Error ? err.message : "invalid block store: expected s3://BUCKET/PREFIX";
    throw new Error(message.replaceAll("oplog store", "block store"), { cause: err });
  }
  let objects;
  try {
    objects = await openOplogStore(spec, { s3: options.s3, env: options.env, verify: options.verify });
  } catch (err) {
    if (!(err instanceof OplogStoreError)) throw err;
    throw new BlockStoreError(err.code === "INVALID_KEY" ? "IO" : err.code, {
      location: err.location,
      problem: err.problem,
      hint: err.hint,
      cause: err.cause,
    });
  }
  if (!(objects instanceof S3OplogStore)) {
    await objects.close();
    throw new Error("internal error: openOplogStore did not open an S3 store for an s3:// spec");
  }
  return new S3BlockStore(objects);
}
