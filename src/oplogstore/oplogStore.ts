/**
 * The oplog store keeps the slices the backup agent uploads until the backup daemon has fetched
 * and applied them (seed/backup-flow.rst, "transferring"). It is a plain key → bytes store so it
 * can live on a local file system or in an S3 bucket; slices carry their own header and checksum,
 * so the store never interprets the bytes.
 *
 * Keys are validated by `keys.ts` (slash-separated parts of [A-Za-z0-9._$-] and `%XX` escapes);
 * every method rejects an invalid key or prefix with `OplogStoreError` code INVALID_KEY.
 */
export interface OplogStore {
  /** Where it stores, for logs and errors: "file:///abs/path" or "s3://bucket/prefix". Never includes credentials. */
  readonly location: string;
  /**
   * Stores `data` under `key`; resolves only once the object is durable, and no reader ever sees a
   * partial object. Overwriting the same key with the same bytes is fine (idempotent uploads).
   */
  put(key: string, data: Buffer): Promise<void>;
  /** The object's bytes; `OplogStoreError` NOT_FOUND if absent. */
  get(key: string): Promise<Buffer>;
  exists(key: string): Promise<boolean>;
  /** Removes the object; no error if absent. */
  delete(key: string): Promise<void>;
  /** Removes every object whose key starts with `prefix` (a non-empty string prefix, as in S3); returns how many were removed. */
  deletePrefix(prefix: string): Promise<number>;
  /** Objects whose key starts with `prefix` ("" for all), sorted by key (byte order), with their sizes in bytes. */
  list(prefix: string): AsyncIterable<StoredObject>;
  /** Releases files and connections; the store must not be used afterwards. */
  close(): Promise<void>;
}

/** One entry of `OplogStore.list`. */
export interface StoredObject {
  key: string;
  size: number;
}
