/**
 * MongoDB's dbHash, computed over the head database (the server's `dbhash.cpp`; the emulator's
 * `src/emulator/storage/dbHash.ts` does the same over its own storage): a collection's hash is
 * the MD5 of its documents' BSON concatenated in `_id` order, and the database's `md5` is the MD5
 * of the collections' hex hashes concatenated in collection-name order. Views have no hash. A
 * snapshot's manifest records these, and a restored deployment is checked with the server's own
 * `dbHash` command.
 */
import { createHash } from "node:crypto";
import type { Binary, UUID } from "bson";
import type { Catalog } from "./catalog.js";
import type { Documents } from "./documents.js";

export interface DatabaseHash {
  /** Collection name → hex MD5, for every collection of the database (views excluded). */
  collections: Record<string, string>;
  uuids: Record<string, UUID>;
  /** MD5 over the collection hashes in name order. */
  md5: string;
}

/** The MD5 of a collection's documents in `_id` order. */
export function collectionHash(documents: Documents, uuid: Binary | Uint8Array): string {
  const md5 = createHash("md5");
  for (const { raw } of documents.scan(uuid)) md5.update(raw);
  return md5.digest("hex");
}

/** MD5 over `[name, hash]` pairs' hashes, in name byte order. */
export function databaseMd5(hashes: Array<[name: string, hash: string]>): string {
  const md5 = createHash("md5");
  const sorted = [...hashes].sort(([a], [b]) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  for (const [, hash] of sorted) md5.update(hash);
  return md5.digest("hex");
}

/**
 * The dbHash of one database: every collection (only those in `only`, when given, as the
 * command's `collections` parameter does).
 */
export function databaseHash(
  catalog: Catalog,
  documents: Documents,
  db: string,
  only?: string[],
): DatabaseHash {
  const collections: Record<string, string> = {};
  const uuids: Record<string, UUID> = {};
  const pairs: Array<[string, string]> = [];
  for (const entry of catalog.namespaces(db)) {
    if (entry.type !== "collection") continue;
    if (only && !only.includes(entry.name)) continue;
    const hash = collectionHash(documents, entry.collection.uuid);
    collections[entry.name] = hash;
    uuids[entry.name] = entry.collection.uuid;
    pairs.push([entry.name, hash]);
  }
  return { collections, uuids, md5: databaseMd5(pairs) };
}
