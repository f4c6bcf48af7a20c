// File system snapshot store: one mongodump directory per snapshot, plus a checksummed manifest.
export {
  FsSnapshotStore,
  type FsCollectionInput,
  type FsCollectionWritten,
  type FsSnapshotStoreOptions,
  type FsSnapshotWritten,
  type FsVerifyProblem,
  type FsVerifyResult,
  type FsWriteOptions,
} from "./fsSnapshotStore.js";
export { FsStoreError, type FsStoreErrorCode, type FsStoreErrorDetails } from "./errors.js";
export {
  MANIFEST_FILE,
  MANIFEST_FORMAT,
  parseManifest,
  type FsManifest,
  type FsManifestCollection,
  type FsManifestFile,
} from "./manifest.js";
export {
  isMetadataUuid,
  metadataJson,
  parseMetadataJson,
  type FsCollectionType,
  type MongodumpMetadata,
} from "./metadata.js";
export {
  collectionFileStem,
  dataFileName,
  isSafeSnapshotId,
  metadataFileName,
  queryEscape,
  queryUnescape,
} from "./mongodumpNames.js";
