import { deserialize, type Document } from "bson";
import { Aggregator } from "mingo";
import type { Deployment } from "../deployment.js";
import { CommandError, ErrorCode } from "../errors.js";
import { Collection } from "../storage/collection.js";
import { View } from "../storage/view.js";

/** Runs a pipeline with mingo, turning its errors into the server's. */
export function runPipeline(documents: Document[], pipeline: Document[]): Document[] {
  try {
    return new Aggregator(pipeline).run(documents) as Document[];
  } catch (error) {
    throw new CommandError(ErrorCode.Location16436, `invalid pipeline: ${(error as Error).message}`);
  }
}

/**
 * The documents of a collection or view (a view runs its pipeline over what it is on, views of
 * views included), deserialized.
 */
export function namespaceDocuments(deployment: Deployment, db: string, name: string, depth = 0): Document[] {
  if (depth > 20)
    throw new CommandError(ErrorCode.InvalidViewDefinition, `view depth too large at ${db}.${name}`);
  const ns = deployment.catalog.get(db, name);
  if (!ns) return [];
  if (ns instanceof Collection) return [...ns.scanNatural()].map(([, raw]) => deserialize(raw));
  const view = ns as View;
  return runPipeline(namespaceDocuments(deployment, db, view.viewOn, depth + 1), view.pipeline);
}
