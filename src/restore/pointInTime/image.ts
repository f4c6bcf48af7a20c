/**
 * A materialised point in time as restores read it: its collections described like a snapshot
 * manifest's (options, indexes, count, bytes, dbHash MD5, so a restore is verified the same way),
 * and each collection's documents in `_id` order. The head database is not written to any more,
 * so reading it a chunk per read view sees one state throughout.
 */
import type { UUID } from "bson";
import type { HeadDatabase } from "../../headdb/index.js";
import type { ManifestCollection, SnapshotManifest } from "../../snapshot/manifest.js";
import { CollectionDigest, databaseHashes, describeNamespace } from "../../snapshot/namespaceDescription.js";

/** Documents read per read view while streaming a collection. */
const CHUNK_DOCUMENTS = 1000;

export interface ImageDescription {
  collections: ManifestCollection[];
  databases: SnapshotManifest["databases"];
}

/**
 * Every namespace of the head database, with digests from one scan of each collection (a chunk at
 * a time, so the server keeps answering while a large point in time is described).
 */
export async function describeImage(head: HeadDatabase): Promise<ImageDescription> {
  const entries = head.readSnapshot((view) =>
    view.catalog.databases().flatMap((db) => view.catalog.namespaces(db)),
  );
  const collections: ManifestCollection[] = [];
  for (const entry of entries) {
    const described = describeNamespace(entry);
    if (entry.type === "view") {
      collections.push({ ...described, count: 0, bytes: 0, md5: null });
      continue;
    }
    const digest = new CollectionDigest();
    for await (const raw of imageDocuments(head, entry.collection.uuid)) digest.add(raw);
    collections.push({ ...described, count: digest.count, bytes: digest.bytes, md5: digest.hex() });
  }
  return { collections, databases: databaseHashes(collections) };
}

/** The documents of collection `uuid` in `_id` order, copied out a chunk at a time. */
export async function* imageDocuments(head: HeadDatabase, uuid: UUID): AsyncGenerator<Buffer> {
  let after: Buffer | undefined;
  for (;;) {
    const chunk = head.readSnapshot((view) => {
      const docs: Array<{ idKey: Buffer; raw: Buffer }> = [];
      for (const { idKey, raw } of view.documents.scan(uuid, after)) {
        docs.push({ idKey, raw: Buffer.from(raw) });
        if (docs.length === CHUNK_DOCUMENTS) break;
      }
      return docs;
    });
    if (chunk.length === 0) return;
    for (const { raw } of chunk) yield raw;
    await new Promise((resolve) => setImmediate(resolve));
    after = chunk[chunk.length - 1].idKey;
    if (chunk.length < CHUNK_DOCUMENTS) return;
  }
}
