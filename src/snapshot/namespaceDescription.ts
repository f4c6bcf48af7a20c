/**
 * What a manifest says of a head database's namespaces: name, type, UUID, options and index specs
 * in canonical Extended JSON, and per collection the count, bytes and dbHash MD5 of its documents
 * in `_id` order. Snapshots and point-in-time restore images describe collections the same way.
 */
import { createHash } from "node:crypto";
import { EJSON, type Document, type UUID } from "bson";
import type { NamespaceEntry } from "../headdb/index.js";
import { databaseMd5 } from "../headdb/index.js";
import type { ManifestCollection, SnapshotManifest } from "./manifest.js";

export function databaseHashes(collections: ManifestCollection[]): SnapshotManifest["databases"] {
  const byDb = new Map<string, Array<[string, string]>>();
  for (const c of collections) {
    const pairs = byDb.get(c.db) ?? [];
    if (c.md5 !== null) pairs.push([c.name, c.md5]);
    byDb.set(c.db, pairs);
  }
  return [...byDb].map(([name, pairs]) => ({ name, md5: databaseMd5(pairs) }));
}

/** What the manifest says of a namespace, before its documents. */
export function describeNamespace(
  entry: NamespaceEntry,
): Omit<ManifestCollection, "count" | "bytes" | "md5"> {
  const namespace = `${entry.db}.${entry.name}`;
  if (entry.type === "view") {
    return {
      namespace,
      db: entry.db,
      name: entry.name,
      type: "view",
      uuid: null,
      options: canonical(entry.view.options),
      indexes: [],
    };
  }
  const record = entry.collection;
  return {
    namespace,
    db: entry.db,
    name: entry.name,
    type: record.options.timeseries ? "timeseries" : "collection",
    uuid: uuidHex(record.uuid),
    options: canonical(record.options),
    indexes: record.indexes.map(canonical),
  };
}

function canonical(doc: Document): Record<string, unknown> {
  return EJSON.serialize(doc, { relaxed: false }) as Record<string, unknown>;
}

function uuidHex(uuid: UUID): string {
  return Buffer.from(uuid.buffer).toString("hex");
}

/** MD5, count and bytes of documents in `_id` order, fed one at a time. */
export class CollectionDigest {
  private readonly md5 = createHash("md5");
  count = 0;
  bytes = 0;

  add(raw: Uint8Array): void {
    this.md5.update(raw);
    this.count++;
    this.bytes += raw.length;
  }

  hex(): string {
    return this.md5.digest("hex");
  }
}
