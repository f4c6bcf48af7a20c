import { createHash } from "node:crypto";
import type { Collection } from "./collection.js";

/**
 * MongoDB's dbHash of one collection: MD5 over each document's BSON, in `_id` order (natural
 * order for a collection without an `_id` index).
 */
export function collectionHash(collection: Collection): string {
  const md5 = createHash("md5");
  const records = collection.indexes.find("_id_") ? collection.scanById() : collection.scanNatural();
  for (const [, raw] of records) md5.update(raw);
  return md5.digest("hex");
}

/** The database-wide md5: MD5 over the collections' hex hashes, in collection-name order. */
export function databaseHash(hashes: Array<[name: string, hash: string]>): string {
  const md5 = createHash("md5");
  for (const [, hash] of [...hashes].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) md5.update(hash);
  return md5.digest("hex");
}
