/**
 * What can go wrong with encryption at rest. Each code names one cause, so programs can tell them
 * apart; the message says what, where (a file, a variable, a key fingerprint, a data key id) and
 * what to do. No message ever holds key material: keys are named by fingerprint or id only.
 *
 * - BAD_KEY_FILE: the master key file is missing, unreadable, or does not hold a 32-byte key.
 * - BAD_KEY_VARIABLE: the master key environment variable is unset, empty, or not a 32-byte key.
 * - BAD_KEY: key bytes given in code are not 32 bytes.
 * - NO_KEY: a data key is wrapped by a master key that was not given (fingerprints differ).
 * - WRONG_KEY: a data key's recorded master fingerprint matches a given key, yet unwrapping fails
 *   authentication (the wrapped key or its record was altered).
 * - BAD_DATA_KEY: a data key record is malformed (id, wrapped length).
 * - UNKNOWN_DATA_KEY: a sealed block names a data key that is not in the data key store.
 * - NOT_SEALED: the bytes are not a sealed block (no "TDMKENC" magic, or too short to hold it).
 * - UNSUPPORTED_VERSION: a sealed block of a format version this build does not know.
 * - DECRYPT_FAILED: a sealed block fails authentication or is truncated: altered, or wrong key.
 */
export type EncryptionErrorCode =
  | "BAD_KEY_FILE"
  | "BAD_KEY_VARIABLE"
  | "BAD_KEY"
  | "NO_KEY"
  | "WRONG_KEY"
  | "BAD_DATA_KEY"
  | "UNKNOWN_DATA_KEY"
  | "NOT_SEALED"
  | "UNSUPPORTED_VERSION"
  | "DECRYPT_FAILED";

/** An encryption failure. `code` is stable for programs; the message is for people. */
export class EncryptionError extends Error {
  override readonly name = "EncryptionError";

  constructor(
    readonly code: EncryptionErrorCode,
    message: string,
  ) {
    super(message);
  }
}
