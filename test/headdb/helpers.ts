import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { deserialize, EJSON, serialize, type Document } from "bson";
import { HeadDatabase } from "../../src/headdb/headDatabase.js";

/** A head database in a fresh temporary directory; `dispose` closes it and removes the directory. */
export interface TempHead {
  head: HeadDatabase;
  dir: string;
  reopen(): Promise<HeadDatabase>;
  dispose(): Promise<void>;
}

export function tempHead(prefix = "tidemark-headdb-"): TempHead {
  const dir = mkdtempSync(path.join(tmpdir(), prefix));
  const temp: TempHead = {
    head: HeadDatabase.open({ path: dir, noSync: true }),
    dir,
    async reopen() {
      await temp.head.close();
      temp.head = HeadDatabase.open({ path: dir, noSync: true });
      return temp.head;
    },
    async dispose() {
      await temp.head.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return temp;
}

/** Canonical Extended JSON (a string or parsed object) to raw BSON, every type kept. */
export function bsonOf(ejson: unknown): Buffer {
  const text = typeof ejson === "string" ? ejson : JSON.stringify(ejson);
  return Buffer.from(serialize(EJSON.parse(text, { relaxed: false }) as Document));
}

/** Concatenated BSON documents (a .bson file) split into documents. */
export function splitBson(bytes: Buffer): Buffer[] {
  const docs: Buffer[] = [];
  for (let pos = 0; pos < bytes.length;) {
    const length = bytes.readInt32LE(pos);
    docs.push(bytes.subarray(pos, pos + length));
    pos += length;
  }
  return docs;
}

/** The documents of `db.name` in `_id` order, as relaxed Extended JSON values. */
export function relaxedDocuments(head: HeadDatabase, db: string, name: string): unknown[] {
  const collection = head.catalog.collectionByName(db, name);
  if (!collection) return [];
  return [...head.documents.scan(collection.uuid)].map(({ raw }) =>
    EJSON.serialize(deserialize(raw), { relaxed: true }),
  );
}
