import path from "node:path";
import { fileURLToPath } from "node:url";
import { FileSystemOplogStore } from "./fileSystemStore.js";
import { keyProblem } from "./keys.js";
import type { OplogStore } from "./oplogStore.js";
import { S3OplogStore, type S3OplogStoreOptions } from "./s3Store.js";

export interface OpenOplogStoreOptions {
  /** The server's data directory; an empty spec means `<dataDir>/oplogstore`. */
  dataDir?: string;
  /** Quota for a file system store, in bytes (see FileSystemOplogStoreOptions.maxBytes). */
  maxBytes?: number;
  /** Settings for an s3:// store; anything not given comes from the AWS_* environment variables. */
  s3?: Partial<Omit<S3OplogStoreOptions, "bucket" | "prefix">>;
  /** Check the bucket and credentials at open (HeadBucket) so a bad configuration fails at startup. Default true. */
  verify?: boolean;
  /** The environment to read AWS_* variables from (default process.env; tests pass their own). */
  env?: Record<string, string | undefined>;
}

/** The name of the oplog store's directory inside the data directory. */
export const DEFAULT_OPLOG_STORE_DIR = "oplogstore";

/**
 * Opens the store a `--oplog-store` spec names:
 * - `s3://bucket/prefix` → S3OplogStore. Endpoint, region and credentials come from `options.s3`,
 *   else AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL, AWS_REGION / AWS_DEFAULT_REGION (default
 *   us-east-1), AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN, else the SDK's
 *   default chain (profiles, instance roles). Credentials are never accepted inside the URL, so
 *   they cannot leak through a logged command line or `location`. Path-style addressing is the
 *   default with a custom endpoint, since S3-compatible services rarely have per-bucket DNS.
 * - `file:///abs/path`, or any other string → a directory (relative to the working directory).
 * - "" or undefined → `<dataDir>/oplogstore`.
 */
export async function openOplogStore(
  spec: string | undefined,
  options: OpenOplogStoreOptions = {},
): Promise<OplogStore> {
  const trimmed = (spec ?? "").trim();
  if (trimmed.toLowerCase().startsWith("s3://")) return openS3(trimmed, options);
  return FileSystemOplogStore.open(fileSystemPath(trimmed, options), { maxBytes: options.maxBytes });
}

function fileSystemPath(spec: string, options: OpenOplogStoreOptions): string {
  if (spec === "") {
    if (options.dataDir === undefined) {
      throw new Error("no oplog store given: pass a directory or s3://bucket/prefix, or a data directory");
    }
    return path.join(options.dataDir, DEFAULT_OPLOG_STORE_DIR);
  }
  if (spec.startsWith("file:")) return fileURLToPath(spec);
  // "gs://x" or "http://x" are not directories; refuse rather than create "./gs:/x".
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(spec)) {
    throw new Error(
      `unsupported oplog store "${spec.split("://")[0]}://...": use a directory or s3://bucket/prefix`,
    );
  }
  return spec;
}

async function openS3(spec: string, options: OpenOplogStoreOptions): Promise<OplogStore> {
  const { bucket, prefix } = parseS3Spec(spec);
  const env = options.env ?? process.env;
  const s3 = options.s3 ?? {};
  const endpoint = s3.endpoint ?? env.AWS_ENDPOINT_URL_S3 ?? env.AWS_ENDPOINT_URL;
  const fromOptions = s3.accessKeyId !== undefined && s3.secretAccessKey !== undefined;
  const fromEnv =
    !fromOptions && env.AWS_ACCESS_KEY_ID !== undefined && env.AWS_SECRET_ACCESS_KEY !== undefined;
  const store = new S3OplogStore({
    ...s3,
    bucket,
    prefix,
    endpoint,
    region: s3.region ?? env.AWS_REGION ?? env.AWS_DEFAULT_REGION ?? "us-east-1",
    accessKeyId: fromOptions ? s3.accessKeyId : fromEnv ? env.AWS_ACCESS_KEY_ID : undefined,
    secretAccessKey: fromOptions ? s3.secretAccessKey : fromEnv ? env.AWS_SECRET_ACCESS_KEY : undefined,
    sessionToken: fromOptions ? s3.sessionToken : fromEnv ? env.AWS_SESSION_TOKEN : undefined,
    forcePathStyle: s3.forcePathStyle ?? endpoint !== undefined,
  });
  if (options.verify ?? true) {
    try {
      await store.verify();
    } catch (err) {
      await store.close();
      throw err;
    }
  }
  return store;
}

/** Splits `s3://bucket/prefix`; the message never echoes the spec, which might hold a pasted secret. */
export function parseS3Spec(spec: string): { bucket: string; prefix: string } {
  const match = /^s3:\/\/([^/]*)(?:\/(.*))?$/i.exec(spec);
  const bucket = match?.[1] ?? "";
  const prefix = (match?.[2] ?? "").replace(/\/+$/, "");
  if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket)) {
    throw new Error(
      "invalid oplog store: expected s3://bucket/prefix with a valid S3 bucket name " +
        "(credentials go in options or AWS_* variables, never in the URL)",
    );
  }
  const problem = prefix === "" ? undefined : keyProblem(prefix);
  if (problem) throw new Error(`invalid oplog store s3://${bucket}/...: the prefix is invalid (${problem})`);
  return { bucket, prefix };
}
