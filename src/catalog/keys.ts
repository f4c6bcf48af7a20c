import { createHash, randomBytes, timingSafeEqual } from "node:crypto";

/**
 * API keys are 32 random bytes (base64url); only their SHA-256 is stored. A fast hash is right
 * here: the keys are random, not passwords, so there is nothing to brute-force.
 */
export function generateKey(prefix: string): string {
  return `${prefix}_${randomBytes(32).toString("base64url")}`;
}

export function hashKey(key: string): string {
  return createHash("sha256").update(key, "utf8").digest("hex");
}

export function keyMatches(key: string, storedHash: string): boolean {
  const a = Buffer.from(hashKey(key), "hex");
  const b = Buffer.from(storedHash, "hex");
  return a.length === b.length && timingSafeEqual(a, b);
}
