// The oplog store: where uploaded slices wait for the backup daemon (see oplogStore.ts).
export type { OplogStore, StoredObject } from "./oplogStore.js";
export { OplogStoreError, type OplogStoreErrorCode } from "./errors.js";
export {
  MAX_KEY_LENGTH,
  MAX_KEY_PART_LENGTH,
  escapeKeyPart,
  keyProblem,
  prefixProblem,
  unescapeKeyPart,
} from "./keys.js";
export { FileSystemOplogStore, type FileSystemOplogStoreOptions } from "./fileSystemStore.js";
export { S3OplogStore, type S3OplogStoreOptions } from "./s3Store.js";
export { openOplogStore, parseS3Spec, DEFAULT_OPLOG_STORE_DIR, type OpenOplogStoreOptions } from "./open.js";
