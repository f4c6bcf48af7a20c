import { createHash } from "node:crypto";
import {
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  type S3ClientConfig,
} from "@aws-sdk/client-s3";
import { OplogStoreError } from "./errors.js";
import { assertValidKey, assertValidPrefix, keyProblem } from "./keys.js";
import type { OplogStore, StoredObject } from "./oplogStore.js";
import { s3Error } from "./s3Errors.js";

export interface S3OplogStoreOptions {
  bucket: string;
  /** Key prefix inside the bucket ("" for the bucket's root); slashes at either end are ignored. */
  prefix?: string;
  /** A custom endpoint (MinIO, Ceph, s3rver): "http://127.0.0.1:9000". Default: AWS for `region`. */
  endpoint?: string;
  region: string;
  /** Static credentials; when absent the SDK's default chain is used (environment, profile, instance role). */
  accessKeyId?: string;
  secretAccessKey?: string;
  sessionToken?: string;
  /** Path-style URLs (http://host/bucket/key), which most S3-compatible services need. */
  forcePathStyle?: boolean;
  /** Attempts per request in the SDK's standard retry mode (default: the SDK's, 3). */
  maxAttempts?: number;
  /** ListObjectsV2 page size (S3 caps it at 1000, the default). */
  listPageSize?: number;
  /** Abandon a connection attempt after this long (default 5 s), so a dead endpoint fails instead of hanging. */
  connectionTimeoutMs?: number;
  /** Abandon a request whose socket is idle this long (default 60 s). */
  socketTimeoutMs?: number;
}

/** DeleteObjects takes at most 1000 keys. */
const DELETE_BATCH = 1000;

/**
 * An oplog store in an S3 bucket: key "a/b" is the object "<prefix>/a/b".
 *
 * S3 gives atomic, durable puts by itself (a PutObject that succeeded is stored redundantly and no
 * reader sees a partial object). Every put sends the body's SHA-256 (`ChecksumSHA256`) so the
 * service rejects bytes damaged in transit instead of storing them; gets ask for the checksum back
 * (`ChecksumMode`) so the SDK verifies what it reads when the service returns one.
 */
export class S3OplogStore implements OplogStore {
  readonly location: string;
  /** The endpoint, without credentials, for messages. */
  readonly endpoint: string;
  readonly bucket: string;
  private readonly prefix: string;
  private readonly client: S3Client;
  private readonly listPageSize: number;
  private readonly secrets: string[];
  private closed = false;

  constructor(options: S3OplogStoreOptions) {
    this.bucket = options.bucket;
    this.prefix = (options.prefix ?? "").replace(/^\/+|\/+$/g, "");
    this.location = this.prefix ? `s3://${this.bucket}/${this.prefix}` : `s3://${this.bucket}`;
    this.endpoint = describeEndpoint(options.endpoint, options.region);
    this.listPageSize = options.listPageSize ?? 1000;
    if (!Number.isInteger(this.listPageSize) || this.listPageSize < 1 || this.listPageSize > 1000) {
      throw new RangeError(`oplog store ${this.location}: listPageSize must be 1..1000`);
    }
    if ((options.accessKeyId === undefined) !== (options.secretAccessKey === undefined)) {
      throw new TypeError(
        `oplog store ${this.location}: give both accessKeyId and secretAccessKey, or neither`,
      );
    }
    this.secrets = [options.accessKeyId, options.secretAccessKey, options.sessionToken].filter(
      (s): s is string => typeof s === "string" && s.length > 0,
    );
    const config: S3ClientConfig = {
      region: options.region,
      endpoint: options.endpoint,
      forcePathStyle: options.forcePathStyle,
      // The SDK's standard mode retries throttling, 5xx and network errors with backoff.
      retryMode: "standard",
      maxAttempts: options.maxAttempts,
      requestHandler: {
        connectionTimeout: options.connectionTimeoutMs ?? 5_000,
        socketTimeout: options.socketTimeoutMs ?? 60_000,
      },
    };
    if (options.accessKeyId !== undefined && options.secretAccessKey !== undefined) {
      config.credentials = {
        accessKeyId: options.accessKeyId,
        secretAccessKey: options.secretAccessKey,
        sessionToken: options.sessionToken,
      };
    }
    this.client = new S3Client(config);
  }

  /** Fails fast (UNAVAILABLE) if the bucket is missing or the credentials are refused, before the first upload. */
  async verify(): Promise<void> {
    this.assertOpen();
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: this.bucket }));
    } catch (err) {
      // HEAD responses have no body, so a missing bucket shows up as a bare 404.
      const missing = httpStatus(err) === 404 ? Object.assign(err as object, { Code: "NoSuchBucket" }) : err;
      throw this.error(missing, "open the store");
    }
  }

  async put(key: string, data: Buffer): Promise<void> {
    this.assertOpen();
    assertValidKey(key, this.location);
    try {
      await this.client.send(
        new PutObjectCommand({
          Bucket: this.bucket,
          Key: this.objectKey(key),
          Body: data,
          ContentLength: data.length,
          ContentType: "application/octet-stream",
          ChecksumSHA256: createHash("sha256").update(data).digest("base64"),
        }),
      );
    } catch (err) {
      throw this.error(err, "store the object", key);
    }
  }

  async get(key: string): Promise<Buffer> {
    this.assertOpen();
    assertValidKey(key, this.location);
    try {
      const out = await this.client.send(
        new GetObjectCommand({ Bucket: this.bucket, Key: this.objectKey(key), ChecksumMode: "ENABLED" }),
      );
      if (!out.Body) return Buffer.alloc(0);
      const bytes = await out.Body.transformToByteArray();
      return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    } catch (err) {
      throw this.error(err, "read the object", key);
    }
  }

  async exists(key: string): Promise<boolean> {
    this.assertOpen();
    assertValidKey(key, this.location);
    try {
      await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.objectKey(key) }));
      return true;
    } catch (err) {
      if (httpStatus(err) === 404) return false;
      throw this.error(err, "check the object", key);
    }
  }

  async delete(key: string): Promise<void> {
    this.assertOpen();
    assertValidKey(key, this.location);
    try {
      // S3 answers 204 whether or not the object existed.
      await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.objectKey(key) }));
    } catch (err) {
      throw this.error(err, "delete the object", key);
    }
  }

  async deletePrefix(prefix: string): Promise<number> {
    this.assertOpen();
    assertValidPrefix(prefix, this.location, false);
    let removed = 0;
    let batch: string[] = [];
    const flush = async (): Promise<void> => {
      if (batch.length === 0) return;
      const keys = batch;
      batch = [];
      removed += await this.deleteBatch(keys, prefix);
    };
    // Deleting listed objects between pages is safe: the continuation token resumes after the last key.
    for await (const { key } of this.list(prefix)) {
      batch.push(key);
      if (batch.length >= DELETE_BATCH) await flush();
    }
    await flush();
    return removed;
  }

  async *list(prefix: string): AsyncGenerator<StoredObject> {
    this.assertOpen();
    assertValidPrefix(prefix, this.location, true);
    let token: string | undefined;
    do {
      let page;
      try {
        page = await this.client.send(
          new ListObjectsV2Command({
            Bucket: this.bucket,
            Prefix: this.objectKey(prefix),
            MaxKeys: this.listPageSize,
            ContinuationToken: token,
          }),
        );
      } catch (err) {
        throw this.error(err, "list", prefix);
      }
      for (const object of page.Contents ?? []) {
        const key = this.storeKey(object.Key);
        // Skip objects we could not have written ("folder/" markers made by consoles, foreign names).
        if (key !== undefined) yield { key, size: object.Size ?? 0 };
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.client.destroy();
  }

  /** Deletes up to 1000 keys in one request; returns how many were deleted. */
  private async deleteBatch(keys: string[], prefix: string): Promise<number> {
    let out;
    try {
      out = await this.client.send(
        new DeleteObjectsCommand({
          Bucket: this.bucket,
          Delete: { Objects: keys.map((k) => ({ Key: this.objectKey(k) })), Quiet: true },
        }),
      );
    } catch (err) {
      // Some S3-compatible services lack multi-object delete (NotImplemented) or fail it where
      // single deletes work (s3rver races when a batch empties a "directory"). Deletes are
      // idempotent, so such a batch is redone one key at a time. Other errors (credentials,
      // network) are thrown: single deletes would fail the same way.
      if (!multiDeleteUnsupported(err)) throw this.error(err, "delete by prefix", prefix);
      for (const key of keys) await this.delete(key);
      return keys.length;
    }
    const failures = out.Errors ?? [];
    if (failures.length > 0) {
      const first = failures[0];
      throw new OplogStoreError("IO", {
        location: this.location,
        key: this.storeKey(first.Key) ?? prefix,
        problem: `cannot delete by prefix: ${failures.length} of ${keys.length} deletes failed (first: ${first.Code ?? "error"}: ${first.Message ?? ""})`,
        hint: "check the credentials' s3:DeleteObject permission on the bucket",
      });
    }
    return keys.length;
  }

  private objectKey(key: string): string {
    return this.prefix ? `${this.prefix}/${key}` : key;
  }

  /** The store key of a bucket object, or undefined if it is outside the prefix or not a valid key. */
  private storeKey(objectKey: string | undefined): string | undefined {
    if (objectKey === undefined) return undefined;
    const head = this.prefix ? `${this.prefix}/` : "";
    if (!objectKey.startsWith(head)) return undefined;
    const key = objectKey.slice(head.length);
    return keyProblem(key) === undefined ? key : undefined;
  }

  private error(err: unknown, action: string, key?: string): OplogStoreError {
    return s3Error(err, {
      location: this.location,
      endpoint: this.endpoint,
      bucket: this.bucket,
      key,
      action,
      secrets: this.secrets,
    });
  }

  private assertOpen(): void {
    if (this.closed) {
      throw new OplogStoreError("UNAVAILABLE", {
        location: this.location,
        problem: "the store is closed",
        hint: "this is a bug in the caller: open the store again",
      });
    }
  }
}

function multiDeleteUnsupported(err: unknown): boolean {
  const status = httpStatus(err);
  const name = (err as { name?: string } | null)?.name;
  return (status !== undefined && status >= 500) || name === "NotImplemented" || name === "MethodNotAllowed";
}

function httpStatus(err: unknown): number | undefined {
  const meta = (err as { $metadata?: { httpStatusCode?: number } } | null)?.$metadata;
  return meta?.httpStatusCode;
}

/** The endpoint as an operator would recognise it, with any user:password@ and query removed. */
export function describeEndpoint(endpoint: string | undefined, region: string): string {
  if (endpoint === undefined) return `https://s3.${region}.amazonaws.com`;
  try {
    const url = new URL(endpoint);
    url.username = "";
    url.password = "";
    url.search = "";
    url.hash = "";
    return url.href.replace(/\/$/, "");
  } catch {
    return "(an invalid endpoint URL)";
  }
}
