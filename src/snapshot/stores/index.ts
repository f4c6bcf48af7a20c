// Block stores: where snapshot blocks are kept by their SHA-256 (see blockStore.ts).
export { assertBlockHash, blockHash, isBlockHash, type BlockInfo, type BlockStore } from "./blockStore.js";
export { BlockStoreError, type BlockStoreErrorCode, type BlockStoreErrorDetails } from "./errors.js";
export {
  BLOCKSTORE_APPLICATION_ID,
  DEFAULT_BLOCKSTORE_FILE,
  SqliteBlockStore,
  type SqliteBlockStoreOptions,
} from "./sqliteBlockStore.js";
export { S3BlockStore, blockKey, type S3BlockStoreOptions } from "./s3BlockStore.js";
export { openBlockStore, type OpenBlockStoreOptions } from "./open.js";
