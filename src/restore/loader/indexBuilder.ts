/**
 * Index builds after the data, as mongorestore does them: one createIndexes per collection with
 * every spec but `_id_`, each spec as listIndexes showed it minus `v` and `ns` (the target picks
 * its index version; the namespace is the command's).
 */
import type { Document } from "bson";
import type { MongoClient } from "mongodb";
import { fromCanonical, type PlannedCollection } from "./collectionLoader.js";
import { LoadError } from "./errors.js";
import { splitNamespace } from "./namespaceFilter.js";

/** The specs createIndexes is given for a collection's canonical-EJSON index list. */
export function indexSpecsToBuild(indexes: ReadonlyArray<Record<string, unknown>>): Document[] {
  return indexes
    .map(fromCanonical)
    .filter((spec) => spec.name !== "_id_")
    .map((spec) => {
      const copy: Document = {};
      for (const [key, value] of Object.entries(spec)) if (key !== "v" && key !== "ns") copy[key] = value;
      return copy;
    });
}

/** Builds the indexes of one restored collection; returns the names built. */
export async function buildIndexes(client: MongoClient, plan: PlannedCollection): Promise<string[]> {
  if (plan.type === "view") return [];
  const specs = indexSpecsToBuild(plan.indexes);
  if (specs.length === 0) return [];
  const { db, collection } = splitNamespace(plan.target);
  try {
    await client.db(db).command({ createIndexes: collection, indexes: specs });
  } catch (error) {
    throw new LoadError(plan.target, `building indexes failed: ${(error as Error).message}`, {
      cause: error,
    });
  }
  return specs.map((spec) => String(spec.name));
}
