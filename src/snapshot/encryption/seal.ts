import { createCipheriv, createDecipheriv, createHmac, timingSafeEqual } from "node:crypto";
import { DATA_KEY_ID_BYTES, dataKeyMaterial, type DataKey } from "./dataKeys.js";
import { EncryptionError } from "./errors.js";

/*
 * Sealed block format, version 1: the stored bytes of an encrypted block (the `transform` between
 * `encodeBlock` and the sink that block.ts anticipates; the block's address is the SHA-256 of
 * these sealed bytes).
 *
 *   offset 0    8 bytes    magic "TDMKENC" + format version byte 0x01
 *   offset 8    16 bytes   data key id
 *   offset 24   12 bytes   nonce = first 12 bytes of HMAC-SHA256(dataKey, plaintext)
 *   offset 36   n bytes    AES-256-GCM ciphertext of the plaintext (n = plaintext length)
 *   offset 36+n 16 bytes   GCM tag
 *
 * The AAD is the first 24 bytes (magic, version, data key id), so none of the header can be changed
 * without failing authentication; the nonce is authenticated as GCM's IV.
 *
 * Why a deterministic (synthetic) nonce. Blocks are addressed by the hash of their stored bytes
 * and stored once; a random nonce would make every sealing of the same block different, and
 * encrypted snapshots would not deduplicate at all. Deriving the nonce from the plaintext (the
 * SIV construction) makes sealing a function of (data key, plaintext), so the same block sealed
 * again is the same bytes, stored once.
 *
 * Why this is safe. GCM breaks when one key encrypts two different plaintexts under one nonce.
 * Here the nonce is a PRF (HMAC-SHA256 keyed with the data key) of the plaintext, so equal nonces
 * mean equal plaintexts, which encrypt to equal ciphertexts and reveal nothing new; two different
 * plaintexts get the same nonce only by a 96-bit PRF collision, about n²/2^97 for n blocks under
 * one data key (2^-33 at four billion blocks). The AAD is fixed for a data key, so the plaintext
 * alone determines the nonce. The one thing revealed is which stored blocks are equal, which a
 * content-addressed store reveals anyway (equal blocks have one address). An attacker who cannot
 * compute the HMAC cannot choose plaintexts that collide, and open() recomputes the nonce from
 * the decrypted plaintext and refuses a block whose nonce is not the synthetic one.
 *
 * Deduplication therefore holds for blocks sealed with the same data key: across snapshots and
 * deployments of one server (one active data key), but not across a data key rotation.
 */

export const SEALED_MAGIC = Buffer.from("TDMKENC", "latin1");
export const SEALED_FORMAT_VERSION = 1;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
const AAD_BYTES = SEALED_MAGIC.length + 1 + DATA_KEY_ID_BYTES;
export const SEALED_HEADER_SIZE = AAD_BYTES + NONCE_BYTES;
/** Bytes a sealed block adds to its plaintext: header and tag. */
export const SEALED_OVERHEAD = SEALED_HEADER_SIZE + TAG_BYTES;

/** What the block writer and reader need: seal stored bytes, open them again. KeyRing is one. */
export interface BlockSealer {
  seal(plain: Buffer): Buffer;
  open(sealed: Buffer, where?: string): Buffer;
}

/** True when the bytes start with the sealed-block magic "TDMKENC" (any format version). */
export function isSealed(bytes: Uint8Array): boolean {
  return (
    bytes.length >= SEALED_MAGIC.length + 1 &&
    Buffer.from(bytes.buffer, bytes.byteOffset, SEALED_MAGIC.length).equals(SEALED_MAGIC)
  );
}

function syntheticNonce(key: Buffer, plain: Uint8Array): Buffer {
  return createHmac("sha256", key).update(plain).digest().subarray(0, NONCE_BYTES);
}

/** Seals a block with a data key; the same key and plaintext always give the same bytes. */
export function sealBlock(dataKey: DataKey, plain: Uint8Array): Buffer {
  const key = dataKeyMaterial(dataKey);
  const aad = Buffer.alloc(AAD_BYTES);
  SEALED_MAGIC.copy(aad, 0);
  aad[SEALED_MAGIC.length] = SEALED_FORMAT_VERSION;
  Buffer.from(dataKey.id, "hex").copy(aad, SEALED_MAGIC.length + 1);
  const nonce = syntheticNonce(key, plain);
  const cipher = createCipheriv("aes-256-gcm", key, nonce, { authTagLength: TAG_BYTES });
  cipher.setAAD(aad);
  const ciphertext = Buffer.concat([cipher.update(plain), cipher.final()]);
  return Buffer.concat([aad, nonce, ciphertext, cipher.getAuthTag()]);
}

const DECRYPT_ADVICE =
  "the block was altered or the key is wrong; the snapshots that use it cannot be restored from this " +
  "store until it is repaired (verify names every snapshot affected)";

/** Checks the header and returns the data key id a sealed block names, without decrypting it. */
export function sealedKeyId(sealed: Uint8Array, where = "sealed block"): string {
  const bytes = Buffer.from(sealed.buffer, sealed.byteOffset, sealed.byteLength);
  if (!isSealed(bytes)) {
    throw new EncryptionError(
      "NOT_SEALED",
      `${where} is not a sealed block: it does not start with the magic "TDMKENC" ` +
        "(it may be an unencrypted block, or damaged at its start)",
    );
  }
  const version = bytes[SEALED_MAGIC.length];
  if (version !== SEALED_FORMAT_VERSION) {
    throw new EncryptionError(
      "UNSUPPORTED_VERSION",
      `${where} is sealed in format version ${version}, this Tidemark reads version ${SEALED_FORMAT_VERSION}: ` +
        "open it with the Tidemark version that wrote it, or the block is damaged",
    );
  }
  if (bytes.length < SEALED_OVERHEAD) {
    throw new EncryptionError(
      "DECRYPT_FAILED",
      `${where} is truncated: ${bytes.length} bytes, a sealed block has at least ${SEALED_OVERHEAD}: ${DECRYPT_ADVICE}`,
    );
  }
  return bytes.subarray(SEALED_MAGIC.length + 1, AAD_BYTES).toString("hex");
}

/**
 * Opens a sealed block: checks magic and version, finds the data key by id through `findKey`
 * (which throws UNKNOWN_DATA_KEY or NO_KEY when it cannot), verifies the GCM tag and the synthetic
 * nonce. Never returns bytes that failed a check.
 */
export function openBlock(
  sealed: Uint8Array,
  findKey: (id: string) => DataKey,
  where = "sealed block",
): Buffer {
  const bytes = Buffer.from(sealed.buffer, sealed.byteOffset, sealed.byteLength);
  const id = sealedKeyId(bytes, where);
  const dataKey = findKey(id);
  const key = dataKeyMaterial(dataKey);
  const aad = bytes.subarray(0, AAD_BYTES);
  const nonce = bytes.subarray(AAD_BYTES, SEALED_HEADER_SIZE);
  const ciphertext = bytes.subarray(SEALED_HEADER_SIZE, bytes.length - TAG_BYTES);
  const tag = bytes.subarray(bytes.length - TAG_BYTES);
  let plain: Buffer;
  try {
    const decipher = createDecipheriv("aes-256-gcm", key, nonce, { authTagLength: TAG_BYTES });
    decipher.setAAD(aad);
    decipher.setAuthTag(tag);
    plain = Buffer.concat([decipher.update(ciphertext), decipher.final()]);
  } catch {
    throw new EncryptionError(
      "DECRYPT_FAILED",
      `${where} (data key ${id}) fails authentication: ${DECRYPT_ADVICE}`,
    );
  }
  if (!timingSafeEqual(syntheticNonce(key, plain), nonce)) {
    throw new EncryptionError(
      "DECRYPT_FAILED",
      `${where} (data key ${id}) authenticates but its nonce is not the one derived from its content, ` +
        `so it was not sealed by Tidemark: ${DECRYPT_ADVICE}`,
    );
  }
  return plain;
}
