import { serialize, type Document } from "bson";
import type { MongoClient } from "mongodb";
import { isBackedUp } from "../protocol/namespaces.js";
import { describeError, silentLogger, type Logger } from "./logger.js";

/** Keeps exact BSON types in what the server returns (an option's Int64 stays an Int64). */
const EXACT = { promoteValues: false, promoteLongs: false, promoteBuffers: false, bsonRegExp: true } as const;

/** One collection or view of a database, as listCollections describes it. */
export interface NamespaceInfo {
  db: string;
  name: string;
  namespace: string;
  type: string;
  options: Document;
  uuid?: unknown;
  idIndex?: Document;
}

/** The databases to back up, by name. */
export async function listDatabases(client: MongoClient): Promise<string[]> {
  const reply = await client.db("admin").command({ listDatabases: 1, nameOnly: true });
  return (reply.databases as Array<{ name: string }>)
    .map((db) => db.name)
    .filter((name) => isBackedUp(name))
    .sort();
}

/** The collections and views of `db` that are backed up, by name. */
export async function listNamespaces(client: MongoClient, db: string): Promise<NamespaceInfo[]> {
  const infos = (await client.db(db).listCollections({}, EXACT).toArray()) as Document[];
  return infos
    .map((info) => ({
      db,
      name: String(info.name),
      namespace: `${db}.${String(info.name)}`,
      type: String(info.type ?? "collection"),
      options: (info.options as Document | undefined) ?? {},
      uuid: (info.info as Document | undefined)?.uuid,
      idIndex: info.idIndex as Document | undefined,
    }))
    .filter((info) => isBackedUp(db, info.name))
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/**
 * The catalog documents of a database, one per collection or view:
 * `{name, type, options, uuid, idIndex, indexes}`, where `indexes` is listIndexes' output
 * (empty for views). Exact BSON types are kept. A collection dropped between listCollections and
 * listIndexes is left out (the oplog has its drop).
 */
export async function catalogDocuments(client: MongoClient, namespaces: NamespaceInfo[]): Promise<Buffer[]> {
  const docs: Buffer[] = [];
  for (const info of namespaces) {
    let indexes: Document[] = [];
    if (info.type !== "view") {
      try {
        indexes = (await client.db(info.db).collection(info.name).listIndexes(EXACT).toArray()) as Document[];
      } catch (error) {
        if ((error as { code?: number }).code === 26) continue; // NamespaceNotFound: dropped meanwhile
        throw error;
      }
    }
    const doc: Document = { name: info.name, type: info.type, options: info.options };
    if (info.uuid !== undefined) doc.uuid = info.uuid;
    if (info.idIndex !== undefined) doc.idIndex = info.idIndex;
    doc.indexes = indexes;
    docs.push(Buffer.from(serialize(doc)));
  }
  return docs;
}

/** The clone's size, as the Backup page shows it before the clone ends. */
export interface CloneEstimate {
  bytes: number;
  documents: number;
  collections: number;
}

/**
 * Estimates the clone from dbStats (data size and object count of each database). Best effort:
 * a database whose stats cannot be read counts as empty, with a warning.
 */
export async function estimateClone(
  client: MongoClient,
  databases: string[],
  collections: number,
  log: Logger = silentLogger,
): Promise<CloneEstimate> {
  let bytes = 0;
  let documents = 0;
  for (const db of databases) {
    try {
      const stats = await client.db(db).command({ dbStats: 1 });
      bytes += Number(stats.dataSize ?? 0);
      documents += Number(stats.objects ?? 0);
    } catch (error) {
      log.warn("cannot read dbStats for the estimate", { db, reason: describeError(error) });
    }
  }
  return { bytes, documents, collections };
}
