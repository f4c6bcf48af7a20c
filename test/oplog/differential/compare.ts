/**
 * Compares a head database with the emulator at the same optime: per database, the emulator's
 * own `dbHash` command against the head database's dbHash (collection hashes, UUIDs, md5), and
 * the catalog (collections, views, options, indexes) against listCollections / listIndexes.
 * Returns the differences, one line each.
 */
import { EJSON } from "bson";
import type { Document, MongoClient } from "mongodb";
import type { HeadDatabase } from "../../../src/headdb/headDatabase.js";
import { databaseMd5 } from "../../../src/headdb/dbHash.js";
import { defaultNamespaceFilter } from "../../../src/oplog/apply/context.js";

const EXACT = { promoteValues: false, promoteLongs: false, promoteBuffers: false, bsonRegExp: true } as const;

const text = (value: unknown) => EJSON.stringify(value as Document, { relaxed: false });
const hex = (uuid: unknown) => Buffer.from((uuid as { buffer: Uint8Array }).buffer).toString("hex");
const byName = (a: Document, b: Document) =>
  String(a.name) < String(b.name) ? -1 : String(a.name) > String(b.name) ? 1 : 0;

export async function compareWithEmulator(client: MongoClient, head: HeadDatabase): Promise<string[]> {
  const differences: string[] = [];
  const listed = (await client.db("admin").command({ listDatabases: 1, nameOnly: true })).databases as Array<{
    name: string;
  }>;
  const databases = new Set([
    ...listed.map((db) => db.name).filter((db) => defaultNamespaceFilter(db)),
    ...head.catalog.databases(),
  ]);
  for (const db of [...databases].sort()) {
    const reply = await client.db(db).command({ dbHash: 1 });
    const names = Object.keys(reply.collections as Document).filter((name) =>
      defaultNamespaceFilter(db, name),
    );
    const expected = Object.fromEntries(
      names.map((name) => [name, (reply.collections as Document)[name] as string]),
    );
    const expectedUuids = Object.fromEntries(
      names.map((name) => [name, hex((reply.uuids as Document)[name])]),
    );
    const actual = head.dbHash(db);
    const actualUuids = Object.fromEntries(
      Object.entries(actual.uuids).map(([name, uuid]) => [name, hex(uuid)]),
    );
    if (text(expected) !== text(actual.collections))
      differences.push(
        `${db}: collection hashes\n  emulator ${text(expected)}\n  head     ${text(actual.collections)}`,
      );
    if (text(expectedUuids) !== text(actualUuids))
      differences.push(`${db}: uuids\n  emulator ${text(expectedUuids)}\n  head     ${text(actualUuids)}`);
    const expectedMd5 =
      names.length === Object.keys(reply.collections as Document).length
        ? reply.md5
        : databaseMd5(Object.entries(expected));
    if (expectedMd5 !== actual.md5)
      differences.push(`${db}: md5 emulator ${String(expectedMd5)} head ${actual.md5}`);
    differences.push(...(await compareCatalog(client, head, db)));
  }
  if (head.missing.count() > 0) differences.push(`missing set not empty: ${head.missing.count()} ids`);
  if (head.pending.count() > 0) differences.push(`held transaction entries: ${head.pending.count()}`);
  for (const record of head.catalog.detached())
    differences.push(`detached collection ${record.db}.${record.name}`);
  return differences;
}

async function compareCatalog(client: MongoClient, head: HeadDatabase, db: string): Promise<string[]> {
  const differences: string[] = [];
  const infos = ((await client.db(db).listCollections({}, EXACT).toArray()) as Document[])
    .filter((info) => defaultNamespaceFilter(db, info.name as string))
    .sort(byName);
  const entries = head.catalog.namespaces(db);
  const expectedNames = infos.map((info) => `${info.name}:${info.type}`);
  const actualNames = [...entries].sort(byName).map((entry) => `${entry.name}:${entry.type}`);
  if (text(expectedNames) !== text(actualNames)) {
    differences.push(
      `${db}: namespaces\n  emulator ${expectedNames.join(", ")}\n  head     ${actualNames.join(", ")}`,
    );
    return differences;
  }
  for (const info of infos) {
    const entry = entries.find((e) => e.name === info.name)!;
    if (entry.type === "view") {
      const options = info.options as Document;
      const expected = { viewOn: options.viewOn, pipeline: options.pipeline };
      const actual = { viewOn: entry.view.options.viewOn, pipeline: entry.view.options.pipeline };
      if (text(expected) !== text(actual))
        differences.push(
          `${db}.${info.name}: view\n  emulator ${text(expected)}\n  head     ${text(actual)}`,
        );
      continue;
    }
    if (entry.type !== "collection") continue;
    if (text(info.options) !== text(entry.collection.options))
      differences.push(
        `${db}.${info.name}: options\n  emulator ${text(info.options)}\n  head     ${text(entry.collection.options)}`,
      );
    const indexes = (
      (await client
        .db(db)
        .collection(info.name as string)
        .listIndexes(EXACT)
        .toArray()) as Document[]
    ).sort(byName);
    const actual = [...entry.collection.indexes].sort(byName);
    if (text(indexes) !== text(actual))
      differences.push(
        `${db}.${info.name}: indexes\n  emulator ${text(indexes)}\n  head     ${text(actual)}`,
      );
    if (entry.collection.indexBuilds.length > 0) differences.push(`${db}.${info.name}: index builds left`);
  }
  return differences;
}
