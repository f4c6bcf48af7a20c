/**
 * Which namespaces Tidemark backs up. The agent (what it clones and tails) and the head database
 * (what it applies) must agree, so both use this one rule.
 */

const SKIPPED_DATABASES = new Set(["local", "config"]);
const KEPT_SYSTEM_COLLECTIONS = new Set(["system.users", "system.roles", "system.js", "system.views"]);

/**
 * Everything but the node's own `local` and the sharding metadata in `config`, and of the
 * `system.*` collections only those that hold user data: users, roles, stored JavaScript, view
 * definitions, and the buckets of time series collections. `collection` undefined asks about a
 * whole database.
 */
export function isBackedUp(db: string, collection?: string): boolean {
  if (SKIPPED_DATABASES.has(db)) return false;
  if (collection === undefined || !collection.startsWith("system.")) return true;
  return KEPT_SYSTEM_COLLECTIONS.has(collection) || collection.startsWith("system.buckets.");
}
