import { getMeta, setMeta, type CatalogDatabase } from "../catalog/catalog.js";
import { generateKey, hashKey } from "../catalog/keys.js";

const ADMIN_KEY_HASH = "admin_key_hash";

/**
 * Makes sure the server has an admin key. TIDEMARK_ADMIN_KEY sets it on first start; without it
 * the first start generates one, which is returned (to print once) and never stored in clear.
 * Later starts keep the stored hash (a different TIDEMARK_ADMIN_KEY then replaces it).
 */
export function ensureAdminKey(
  db: CatalogDatabase,
  fromEnvironment: string | undefined,
): { generated?: string } {
  const stored = getMeta(db, ADMIN_KEY_HASH);
  if (fromEnvironment) {
    if (fromEnvironment.length < 16) throw new Error("TIDEMARK_ADMIN_KEY must be at least 16 characters");
    if (stored !== hashKey(fromEnvironment)) setMeta(db, ADMIN_KEY_HASH, hashKey(fromEnvironment));
    return {};
  }
  if (stored) return {};
  const key = generateKey("tdm_admin");
  setMeta(db, ADMIN_KEY_HASH, hashKey(key));
  return { generated: key };
}

export function adminKeyHash(db: CatalogDatabase): string | undefined {
  return getMeta(db, ADMIN_KEY_HASH);
}
