/**
 * Encryption at rest for snapshot blocks: AES-256-GCM with data keys wrapped by a master key.
 *
 * - masterKey.ts: the master key (key file or environment variable) and its fingerprint;
 * - dataKeys.ts: data keys, their wrapped records and the DataKeyStore they are kept in;
 * - keyRing.ts: the KeyRing (load, master key rotation, active data key, data key rotation);
 * - seal.ts: the sealed block format, with a synthetic nonce so sealing is deterministic and
 *   content-addressed deduplication still works.
 *
 * Key bytes are never exported: MasterKey and DataKey hold them out of sight.
 */
export { EncryptionError, type EncryptionErrorCode } from "./errors.js";
export {
  MASTER_KEY_BYTES,
  MasterKey,
  masterKeyFingerprint,
  writeMasterKeyFile,
  type MasterKeyFileOptions,
} from "./masterKey.js";
export {
  DATA_KEY_BYTES,
  DATA_KEY_ID_BYTES,
  DataKey,
  MemoryDataKeyStore,
  WRAPPED_DATA_KEY_BYTES,
  type DataKeyStore,
  type WrappedDataKey,
} from "./dataKeys.js";
export { KeyRing, type KeyRingOptions } from "./keyRing.js";
export {
  SEALED_FORMAT_VERSION,
  SEALED_HEADER_SIZE,
  SEALED_MAGIC,
  SEALED_OVERHEAD,
  isSealed,
  sealedKeyId,
  type BlockSealer,
} from "./seal.js";
