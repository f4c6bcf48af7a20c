export {
  Catalog,
  type CollectionRecord,
  type IndexBuild,
  type NamespaceEntry,
  type ViewRecord,
} from "./catalog.js";
export { Changes, type CollectionChange, type DocumentChange } from "./changes.js";
export { collectionHash, databaseHash, databaseMd5, type DatabaseHash } from "./dbHash.js";
export { Documents, type StoredDocument } from "./documents.js";
export { HeadEnvironment, type HeadEnvironmentOptions, type ReadOptions } from "./environment.js";
export { HeadDbError, type HeadDbErrorCode } from "./errors.js";
export { deserializeExact, EXACT_BSON } from "./exactBson.js";
export { DEFAULT_ID_INDEX, HeadDatabase, type NewCollection } from "./headDatabase.js";
export { documentKey, idKeyOf, MAX_KEY_LENGTH, uuidBytes } from "./keys.js";
export { MissingSet, type MissingDocument } from "./missing.js";
export { PendingTransactions, type HeldEntry } from "./pendingTransactions.js";
export {
  HeadSnapshot,
  type SnapshotCatalog,
  type SnapshotChanges,
  type SnapshotDocuments,
} from "./readSnapshot.js";
export { ResumeState, type OpTime } from "./resumeState.js";
export { SYSTEM_VIEWS, viewDefinition, viewOptions } from "./views.js";
