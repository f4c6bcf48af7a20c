import { OplogStoreError } from "../../oplogstore/errors.js";
import { S3OplogStore, type S3OplogStoreOptions } from "../../oplogstore/s3Store.js";
import {
  assertBlockHash,
  assertBytesMatch,
  verifiedBlock,
  type BlockInfo,
  type BlockStore,
} from "./blockStore.js";
import { BlockStoreError, closedError } from "./errors.js";

/**
 * Bucket, prefix, endpoint, region, credentials, path style, attempts and timeouts: the same
 * settings as the S3 oplog store (S3OplogStoreOptions documents them).
 */
export type S3BlockStoreOptions = S3OplogStoreOptions;

const BLOCKS = "blocks/";
const BLOCK_KEY = /^blocks\/([0-9a-f]{2})\/([0-9a-f]{64})$/;

/** The object key of a block, under the store's prefix: "blocks/<first two hex digits>/<hash>". */
export function blockKey(hash: string): string {
  return `${BLOCKS}${hash.slice(0, 2)}/${hash}`;
}

/**
 * Blocks as objects `<prefix>/blocks/<hh>/<hash>` in an S3 bucket. The S3 work (client settings,
 * SHA-256 checksums sent with every PutObject, the SDK's standard retries, connection and socket
 * timeouts, listing pages, and the classification of S3 and network errors, credentials scrubbed)
 * is the S3 oplog store's, which this store uses as its object store; this class adds content
 * addressing and verification, and words errors as a block store's.
 *
 * A put first asks whether the block is there (HeadObject) and uploads only if not, so storing a
 * block that an earlier snapshot already stored costs one small request. Concurrent puts of the
 * same block in this process share one upload. S3 gives atomic, durable puts by itself.
 */
export class S3BlockStore implements BlockStore {
  readonly location: string;
  /** The endpoint, without credentials, for messages. */
  readonly endpoint: string;
  readonly bucket: string;
  private readonly objects: S3OplogStore;
  private readonly uploads = new Map<string, Promise<boolean>>();
  private closed = false;

  /** From settings, or over an S3 oplog store made for this purpose (openBlockStore's env handling); closing closes it. */
  constructor(options: S3BlockStoreOptions | S3OplogStore) {
    this.objects = options instanceof S3OplogStore ? options : new S3OplogStore(options);
    this.location = this.objects.location;
    this.endpoint = this.objects.endpoint;
    this.bucket = this.objects.bucket;
  }

  /** Fails fast (UNAVAILABLE) if the bucket is missing or the credentials are refused. */
  async verify(): Promise<void> {
    this.assertOpen();
    try {
      await this.objects.verify();
    } catch (err) {
      throw this.error(err);
    }
  }

  async put(hash: string, bytes: Buffer): Promise<boolean> {
    this.assertOpen();
    assertBlockHash(hash, this.location);
    assertBytesMatch(hash, bytes, this.location);
    const running = this.uploads.get(hash);
    if (running !== undefined) {
      // Someone else in this process is storing it: succeed or fail with them, but they count the bytes.
      await running;
      return false;
    }
    const upload = this.upload(hash, bytes);
    this.uploads.set(hash, upload);
    try {
      return await upload;
    } finally {
      this.uploads.delete(hash);
    }
  }

  async get(hash: string): Promise<Buffer> {
    this.assertOpen();
    assertBlockHash(hash, this.location);
    let bytes: Buffer;
    try {
      bytes = await this.objects.get(blockKey(hash));
    } catch (err) {
      throw this.error(err, hash);
    }
    return verifiedBlock(hash, bytes, this.location);
  }

  async has(hash: string): Promise<boolean> {
    this.assertOpen();
    assertBlockHash(hash, this.location);
    try {
      return await this.objects.exists(blockKey(hash));
    } catch (err) {
      throw this.error(err, hash);
    }
  }

  async delete(hash: string): Promise<void> {
    this.assertOpen();
    assertBlockHash(hash, this.location);
    try {
      await this.objects.delete(blockKey(hash));
    } catch (err) {
      throw this.error(err, hash);
    }
  }

  /** Hash order is key order ("blocks/<hh>/<hash>"). Objects under blocks/ that are not blocks are skipped. */
  async *list(): AsyncGenerator<BlockInfo> {
    this.assertOpen();
    const objects = this.objects.list(BLOCKS)[Symbol.asyncIterator]();
    while (true) {
      // The client is destroyed at close; a listing under way stops instead of using it.
      this.assertOpen();
      let next: IteratorResult<{ key: string; size: number }>;
      try {
        next = await objects.next();
      } catch (err) {
        throw this.error(err);
      }
      if (next.done) return;
      const match = BLOCK_KEY.exec(next.value.key);
      if (match && match[2].startsWith(match[1])) yield { hash: match[2], size: next.value.size };
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.objects.close();
  }

  private async upload(hash: string, bytes: Buffer): Promise<boolean> {
    const key = blockKey(hash);
    try {
      if (await this.objects.exists(key)) return false;
      await this.objects.put(key, bytes);
      return true;
    } catch (err) {
      throw this.error(err, hash);
    }
  }

  /** The oplog store's classification, worded for a block store (its `cause` is already scrubbed of credentials). */
  private error(err: unknown, hash?: string): BlockStoreError {
    if (err instanceof BlockStoreError) return err;
    if (!(err instanceof OplogStoreError)) {
      return new BlockStoreError("IO", {
        location: this.location,
        hash,
        problem: err instanceof Error ? err.message : String(err),
        hint: `check the endpoint and the bucket's configuration at ${this.endpoint}`,
      });
    }
    if (err.code === "NOT_FOUND") {
      return new BlockStoreError("NOT_FOUND", {
        location: this.location,
        hash,
        problem: "no such block",
        hint: "it was never stored or has been deleted (groom)",
        cause: err.cause,
      });
    }
    return new BlockStoreError(err.code === "INVALID_KEY" ? "IO" : err.code, {
      location: this.location,
      hash,
      // "cannot read the object: ..." is about the block here.
      problem: err.problem.replace(/^cannot (store|read|check|delete) the object\b/, "cannot $1 the block"),
      hint: err.hint,
      cause: err.cause,
    });
  }

  private assertOpen(): void {
    if (this.closed) throw closedError(this.location);
  }
}
