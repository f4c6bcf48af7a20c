/**
 * The state of a deployment as a point-in-time restore must reproduce it, read through the
 * driver: per database, dbHash's collection hashes, each collection's indexes (name and key) and
 * options, and the views' definitions. Collection UUIDs are left out (a restore creates new
 * collections), as are system collections (views are compared by definition).
 */
import { EJSON } from "bson";
import type { CollectionInfo, Document, MongoClient } from "mongodb";

export type DeploymentState = Record<string, Record<string, string>>;

export async function deploymentState(
  client: MongoClient,
  databases: readonly string[],
): Promise<DeploymentState> {
  const state: DeploymentState = {};
  for (const db of databases) {
    const entries: Record<string, string> = {};
    const hashes = (await client.db(db).command({ dbHash: 1 })).collections as Record<string, string>;
    for (const info of (await client.db(db).listCollections().toArray()) as CollectionInfo[]) {
      if (info.name.startsWith("system.")) continue;
      if (info.type === "view") {
        entries[`view ${info.name}`] = EJSON.stringify(info.options as Document, { relaxed: false });
        continue;
      }
      const indexes = (await client.db(db).collection(info.name).listIndexes().toArray())
        .map((index) => `${String(index.name)}=${EJSON.stringify(index.key as Document, { relaxed: false })}`)
        .sort();
      entries[info.name] =
        `${hashes[info.name]} ${indexes.join(",")} ${EJSON.stringify((info.options ?? {}) as Document, { relaxed: false })}`;
    }
    if (Object.keys(entries).length > 0) state[db] = entries;
  }
  return state;
}

/** Drops every database of `databases` (a target emptied between restores). */
export async function dropDatabases(client: MongoClient, databases: readonly string[]): Promise<void> {
  for (const db of databases) await client.db(db).dropDatabase();
}
