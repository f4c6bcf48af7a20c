import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";
import { EncryptionError } from "./errors.js";
import { masterKeyMaterial, type MasterKey } from "./masterKey.js";

/*
 * Data keys: random 32-byte AES-256 keys that seal the blocks. They are stored only wrapped by the
 * master key:
 *
 *   wrapped = nonce (12 random bytes) || AES-256-GCM(masterKey, dataKey, AAD = id bytes) || tag (16)
 *
 * 60 bytes in all, recorded with the data key's id (16 random bytes, 32 hex characters; the AAD is
 * those 16 bytes, so a wrapped key cannot be moved to another id) and the fingerprint of the master
 * key that wrapped it. Wrapping uses a random nonce: a data key is wrapped a handful of times in its
 * life, so random 96-bit nonces never collide in practice, and nothing needs to deduplicate here.
 *
 * Changing the master key only rewraps these 60-byte records; the blocks, sealed with the data
 * keys, are untouched (see keyRing.ts).
 */

export const DATA_KEY_BYTES = 32;
export const DATA_KEY_ID_BYTES = 16;
const WRAP_NONCE_BYTES = 12;
const WRAP_TAG_BYTES = 16;
export const WRAPPED_DATA_KEY_BYTES = WRAP_NONCE_BYTES + DATA_KEY_BYTES + WRAP_TAG_BYTES;

/** A data key as stored: wrapped by the master key whose fingerprint it records. */
export interface WrappedDataKey {
  /** 16 random bytes as 32 lowercase hex characters. */
  id: string;
  /** Fingerprint of the master key that wrapped it (see MasterKey.fingerprint). */
  masterFingerprint: string;
  /** nonce (12) || ciphertext (32) || tag (16). */
  wrapped: Buffer;
  /** When the data key was created (ms since the epoch); kept when it is rewrapped. */
  createdAt: number;
}

/**
 * Where wrapped data keys are kept. The server implements it on its SQLite catalog (synchronous,
 * like better-sqlite3); MemoryDataKeyStore is the in-memory one for tests.
 */
export interface DataKeyStore {
  /** Every wrapped data key, in any order. */
  list(): WrappedDataKey[];
  /** Adds a new data key; its id is new (random). */
  insert(key: WrappedDataKey): void;
  /** Replaces the record with the same id (rewrapping under a new master key). */
  replace(key: WrappedDataKey): void;
}

function copyWrapped(key: WrappedDataKey): WrappedDataKey {
  return { ...key, wrapped: Buffer.from(key.wrapped) };
}

/** A DataKeyStore in memory (tests, the demo). Records are copied in and out. */
export class MemoryDataKeyStore implements DataKeyStore {
  private readonly keys = new Map<string, WrappedDataKey>();

  constructor(initial: readonly WrappedDataKey[] = []) {
    for (const key of initial) this.insert(key);
  }

  list(): WrappedDataKey[] {
    return [...this.keys.values()].map(copyWrapped);
  }

  insert(key: WrappedDataKey): void {
    if (this.keys.has(key.id)) throw new Error(`data key ${key.id} is already stored`);
    this.keys.set(key.id, copyWrapped(key));
  }

  replace(key: WrappedDataKey): void {
    if (!this.keys.has(key.id)) throw new Error(`data key ${key.id} is not stored, nothing to replace`);
    this.keys.set(key.id, copyWrapped(key));
  }
}

const material = new WeakMap<DataKey, Buffer>();

/**
 * An unwrapped data key: its id and creation time are public, its bytes are not (they live in a
 * module-private WeakMap, so logging a DataKey shows no key material).
 */
export class DataKey {
  private constructor(
    readonly id: string,
    readonly createdAt: number,
    key: Buffer,
  ) {
    material.set(this, key);
  }

  /** A new random data key with a new random id. */
  static generate(createdAt: number): DataKey {
    return new DataKey(
      randomBytes(DATA_KEY_ID_BYTES).toString("hex"),
      createdAt,
      randomBytes(DATA_KEY_BYTES),
    );
  }

  /** @internal Used by unwrapDataKey only. */
  static fromParts(id: string, createdAt: number, key: Buffer): DataKey {
    return new DataKey(id, createdAt, key);
  }

  toJSON(): { id: string; createdAt: number } {
    return { id: this.id, createdAt: this.createdAt };
  }
}

/** The key bytes, for sealing within this module only (not exported from the index). */
export function dataKeyMaterial(key: DataKey): Buffer {
  const bytes = material.get(key);
  if (!bytes) throw new Error("not a DataKey made by DataKey.generate or unwrapDataKey");
  return bytes;
}

export function isDataKeyId(id: string): boolean {
  return /^[0-9a-f]{32}$/.test(id);
}

/** Wraps a data key under a master key: a new random nonce each time. */
export function wrapDataKey(master: MasterKey, key: DataKey): WrappedDataKey {
  const nonce = randomBytes(WRAP_NONCE_BYTES);
  const cipher = createCipheriv("aes-256-gcm", masterKeyMaterial(master), nonce, {
    authTagLength: WRAP_TAG_BYTES,
  });
  cipher.setAAD(Buffer.from(key.id, "hex"));
  const ciphertext = Buffer.concat([cipher.update(dataKeyMaterial(key)), cipher.final()]);
  return {
    id: key.id,
    masterFingerprint: master.fingerprint,
    wrapped: Buffer.concat([nonce, ciphertext, cipher.getAuthTag()]),
    createdAt: key.createdAt,
  };
}

/**
 * Unwraps a data key with the master key whose fingerprint it records (the caller picks the key
 * by fingerprint). A malformed record is BAD_DATA_KEY; an authentication failure is WRONG_KEY:
 * the fingerprints agree, so the wrapped bytes, the id or the recorded fingerprint were altered.
 */
export function unwrapDataKey(master: MasterKey, record: WrappedDataKey): DataKey {
  if (!isDataKeyId(record.id)) {
    throw new EncryptionError(
      "BAD_DATA_KEY",
      `a data key record has a malformed id (${JSON.stringify(String(record.id).slice(0, 40))}), ` +
        "not 32 lowercase hex characters: the data key store is damaged; restore the catalog from a backup",
    );
  }
  if (record.wrapped.length !== WRAPPED_DATA_KEY_BYTES) {
    throw new EncryptionError(
      "BAD_DATA_KEY",
      `data key ${record.id}: the wrapped key is ${record.wrapped.length} bytes, not ${WRAPPED_DATA_KEY_BYTES}: ` +
        "the data key store is damaged; restore the catalog from a backup",
    );
  }
  const nonce = record.wrapped.subarray(0, WRAP_NONCE_BYTES);
  const ciphertext = record.wrapped.subarray(WRAP_NONCE_BYTES, WRAP_NONCE_BYTES + DATA_KEY_BYTES);
  const tag = record.wrapped.subarray(WRAP_NONCE_BYTES + DATA_KEY_BYTES);
  try {
    const decipher = createDecipheriv("aes-256-gcm", masterKeyMaterial(master), nonce, {
      authTagLength: WRAP_TAG_BYTES,
    });
    decipher.setAAD(Buffer.from(record.id, "hex"));
    decipher.setAuthTag(tag);
    const key = Buffer.concat([decipher.update(ciphertext), decipher.final()]);
    return DataKey.fromParts(record.id, record.createdAt, key);
  } catch {
    throw new EncryptionError(
      "WRONG_KEY",
      `the master key does not match data key ${record.id}: its record names master key fingerprint ` +
        `${record.masterFingerprint}, the key given (${master.source}) has fingerprint ${master.fingerprint}, ` +
        "and unwrapping fails authentication, so the wrapped key or its record was altered in the data key " +
        "store; restore the catalog from a backup (blocks sealed with this data key cannot be opened until then)",
    );
  }
}
