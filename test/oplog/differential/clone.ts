/**
 * The differential test's clone, done as the agent does it: after T0, read the catalog
 * (listCollections, listIndexes) and every collection in `_id` order with raw BSON batches,
 * while the workload keeps writing between batches (`between`). Documents are attributed to the
 * collection's UUID. A collection renamed or dropped while it is read is found again by UUID and
 * read again from its new name (or given up when dropped: its drop is in the oplog from T0).
 */
import type { Binary, Document, MongoClient } from "mongodb";

const EXACT = { promoteValues: false, promoteLongs: false, promoteBuffers: false, bsonRegExp: true } as const;
const SKIPPED = new Set(["local", "config"]);

export interface ClonedCatalogEntry {
  db: string;
  /** As the agent's catalog reader writes it: `{name, type, options, uuid?, idIndex?, indexes}`. */
  entry: Document;
}

export interface CloneResult {
  catalog: ClonedCatalogEntry[];
  documents: Array<{ uuid: Binary; docs: Buffer[] }>;
  /** How often a collection had to be found again after a rename or drop. */
  relocations: number;
}

function sameUuid(a: unknown, b: unknown): boolean {
  const bytes = (value: unknown) =>
    Buffer.from((value as Binary).buffer.subarray(0, (value as Binary).position));
  return a !== undefined && b !== undefined && bytes(a).equals(bytes(b));
}

export class DifferentialCloner {
  private relocations = 0;

  constructor(
    private readonly client: MongoClient,
    private readonly between: () => Promise<void>,
    private readonly batchSize: number,
  ) {}

  async run(): Promise<CloneResult> {
    const catalog: ClonedCatalogEntry[] = [];
    const databases = (await this.client.db("admin").command({ listDatabases: 1, nameOnly: true }))
      .databases as Array<{
      name: string;
    }>;
    for (const { name: db } of databases) {
      if (SKIPPED.has(db)) continue;
      const infos = (await this.client.db(db).listCollections({}, EXACT).toArray()) as Document[];
      await this.between();
      for (const info of infos) {
        const entry: Document = {
          name: info.name,
          type: info.type ?? "collection",
          options: info.options ?? {},
        };
        const uuid = (info.info as Document | undefined)?.uuid;
        if (uuid !== undefined) entry.uuid = uuid;
        if (info.idIndex !== undefined) entry.idIndex = info.idIndex;
        entry.indexes =
          entry.type === "view" ? [] : await this.indexes(uuid as Binary, db, info.name as string);
        catalog.push({ db, entry });
        await this.between();
      }
    }
    const documents: CloneResult["documents"] = [];
    for (const { db, entry } of catalog) {
      if (entry.type === "view") continue;
      const docs = await this.documents(entry.uuid as Binary, db, entry.name as string);
      documents.push({ uuid: entry.uuid as Binary, docs });
    }
    return { catalog, documents, relocations: this.relocations };
  }

  /** Where collection `uuid` is now, if it still exists. */
  private async locate(uuid: Binary): Promise<{ db: string; name: string } | undefined> {
    this.relocations++;
    const databases = (await this.client.db("admin").command({ listDatabases: 1, nameOnly: true }))
      .databases as Array<{
      name: string;
    }>;
    for (const { name: db } of databases) {
      for (const info of await this.client.db(db).listCollections().toArray()) {
        if (sameUuid((info as Document).info?.uuid, uuid)) return { db, name: info.name };
      }
    }
    return undefined;
  }

  private async uuidAt(db: string, name: string): Promise<unknown> {
    const [info] = await this.client.db(db).listCollections({ name }).toArray();
    return (info as Document | undefined)?.info?.uuid;
  }

  private async indexes(uuid: Binary, db: string, name: string): Promise<Document[]> {
    let where: { db: string; name: string } | undefined = { db, name };
    while (where) {
      try {
        const indexes = (await this.client
          .db(where.db)
          .collection(where.name)
          .listIndexes(EXACT)
          .toArray()) as Document[];
        if (sameUuid(await this.uuidAt(where.db, where.name), uuid)) return indexes;
      } catch {
        // Renamed or dropped meanwhile: look for it by UUID below.
      }
      where = await this.locate(uuid);
    }
    return [];
  }

  /**
   * The collection's documents in `_id` order. Names given while the clone runs are fresh, so if
   * the name still holds the same UUID after the scan, the scan read that collection.
   */
  private async documents(uuid: Binary, db: string, name: string): Promise<Buffer[]> {
    let where: { db: string; name: string } | undefined = { db, name };
    while (where) {
      const docs: Buffer[] = [];
      try {
        const cursor = this.client
          .db(where.db)
          .collection(where.name)
          .find({}, { sort: { _id: 1 }, batchSize: this.batchSize, raw: true });
        for await (const doc of cursor) {
          docs.push(Buffer.from(doc as unknown as Uint8Array));
          if (docs.length % this.batchSize === 0) await this.between();
        }
        if (sameUuid(await this.uuidAt(where.db, where.name), uuid)) return docs;
      } catch {
        // The cursor was lost with its collection: look for it by UUID below.
      }
      where = await this.locate(uuid);
    }
    return [];
  }
}
