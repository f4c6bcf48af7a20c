/** After a restore: the target's dbHash of each restored collection against the expected MD5. */
import type { MongoClient } from "mongodb";
import type { LoaderCollection } from "./collectionLoader.js";
import { splitNamespace } from "./namespaceFilter.js";

export interface VerifyExpectation {
  /** Target namespace. */
  namespace: string;
  md5: string;
}

export interface VerifyResult {
  namespace: string;
  expected: string;
  /** The target's hash; null when the target has no such collection. */
  actual: string | null;
  match: boolean;
}

/**
 * Whether the target's dbHash of `collection` can be compared with what the source recorded: a
 * collection with an MD5 (not a view, nor a time series, whose target hashes its buckets).
 */
export function isVerifiedByDbHash(collection: LoaderCollection): boolean {
  return collection.type === "collection" && typeof collection.md5 === "string";
}

/** Runs dbHash once per target database over the expected collections. */
export async function verifyTarget(
  client: MongoClient,
  expectations: readonly VerifyExpectation[],
): Promise<VerifyResult[]> {
  const byDb = new Map<string, VerifyExpectation[]>();
  for (const expectation of expectations) {
    const { db } = splitNamespace(expectation.namespace);
    byDb.set(db, [...(byDb.get(db) ?? []), expectation]);
  }
  const actual = new Map<string, string>();
  for (const [db, wanted] of byDb) {
    const names = wanted.map((expectation) => splitNamespace(expectation.namespace).collection);
    const reply = await client.db(db).command({ dbHash: 1, collections: names });
    const hashes = (reply.collections ?? {}) as Record<string, string>;
    for (const [name, hash] of Object.entries(hashes)) actual.set(`${db}.${name}`, hash);
  }
  return expectations.map((expectation) => {
    const hash = actual.get(expectation.namespace) ?? null;
    return {
      namespace: expectation.namespace,
      expected: expectation.md5,
      actual: hash,
      match: hash === expectation.md5,
    };
  });
}
