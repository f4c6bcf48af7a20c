import { deserialize, type Document, serialize, calculateObjectSize } from "bson";
import type { MongoClient } from "mongodb";
import { afterEach, describe, expect, it, vi } from "vitest";

import {
  DEFAULT_SAMPLE_SEED,
  generateSampleData,
  type GeneratedDatabase,
  loadSampleData,
  SAMPLE_DATA_LAYOUT,
  sampleDocumentCount,
  SeededRandom,
} from "../../src/emulator/sampleData.js";

/** Generation is the expensive part; share the default run between tests. */
let defaultGeneration: GeneratedDatabase[] | undefined;
function generatedOnce(): GeneratedDatabase[] {
  defaultGeneration ??= generateSampleData();
  return defaultGeneration;
}

function collectionOf(databases: GeneratedDatabase[], namespace: string): Document[] {
  const [database, collection] = namespace.split(".");
  const found = databases.find((db) => db.name === database)?.collections.find((c) => c.name === collection);
  if (found === undefined) throw new Error(`missing ${namespace}`);
  return found.documents;
}

function serializedDocuments(databases: GeneratedDatabase[]): Buffer[] {
  return databases.flatMap((db) =>
    db.collections.flatMap((c) => c.documents.map((d) => Buffer.from(serialize(d)))),
  );
}

/**
 * Names of the BSON types found, read back from the serialized bytes with
 * promotion off so each wire type keeps its own wrapper class.
 */
function bsonTypesIn(document: Document, found = new Set<string>()): Set<string> {
  const raw = deserialize(serialize(document), {
    promoteValues: false,
    promoteLongs: false,
    promoteBuffers: false,
    bsonRegExp: true,
  });
  const walk = (value: unknown): void => {
    if (value === null) {
      found.add("null");
    } else if (typeof value === "string") {
      found.add("string");
    } else if (typeof value === "boolean") {
      found.add("boolean");
    } else if (value instanceof Date) {
      found.add("date");
    } else if (Array.isArray(value)) {
      found.add("array");
      value.forEach(walk);
    } else if (typeof value === "object" && "_bsontype" in value) {
      const tagged = value as { _bsontype: string; sub_type?: number };
      found.add(tagged._bsontype === "Binary" ? `Binary(subtype ${tagged.sub_type})` : tagged._bsontype);
    } else if (typeof value === "object") {
      found.add("document");
      Object.values(value).forEach(walk);
    } else {
      found.add(`unexpected ${typeof value}`);
    }
  };
  Object.values(raw).forEach(walk);
  return found;
}

const REQUIRED_TYPES = [
  "ObjectId",
  "string",
  "Int32",
  "Long",
  "Double",
  "Decimal128",
  "boolean",
  "date",
  "null",
  "document",
  "array",
  "Binary(subtype 0)",
  "Binary(subtype 4)",
  "Timestamp",
  "BSONRegExp",
  "MinKey",
  "MaxKey",
];

function typesAcross(databases: GeneratedDatabase[]): Set<string> {
  const found = new Set<string>();
  for (const db of databases)
    for (const c of db.collections) for (const d of c.documents) bsonTypesIn(d, found);
  return found;
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe("SeededRandom", () => {
  it("repeats the same sequence for the same seed and differs for another", () => {
    const draw = (random: SeededRandom) => Array.from({ length: 20 }, () => random.next());
    expect(draw(new SeededRandom(42))).toEqual(draw(new SeededRandom(42)));
    expect(draw(new SeededRandom(42))).not.toEqual(draw(new SeededRandom(43)));
    expect(draw(SeededRandom.forStream(1, "a.b"))).not.toEqual(draw(SeededRandom.forStream(1, "a.c")));
  });

  it("stays within the requested ranges", () => {
    const random = new SeededRandom(7);
    for (let i = 0; i < 10_000; i++) {
      const unit = random.next();
      expect(unit >= 0 && unit < 1).toBe(true);
      const value = random.int(-3, 3);
      expect(Number.isInteger(value) && value >= -3 && value <= 3).toBe(true);
    }
    expect(new Set(random.sample([1, 2, 3, 4, 5], 5)).size).toBe(5);
    expect(() => random.pick([])).toThrow(RangeError);
  });
});

describe("generateSampleData", () => {
  it("is deterministic down to the BSON bytes", () => {
    const first = generatedOnce();
    const second = generateSampleData({ seed: DEFAULT_SAMPLE_SEED, scale: 1 });
    const firstBytes = serializedDocuments(first);
    const secondBytes = serializedDocuments(second);
    expect(secondBytes).toHaveLength(firstBytes.length);
    firstBytes.forEach((bytes, i) => expect(bytes.equals(secondBytes[i])).toBe(true));
    expect(second.map((db) => db.collections.map((c) => c.options))).toEqual(
      first.map((db) => db.collections.map((c) => c.options)),
    );
  });

  it("uses neither Math.random nor the clock", () => {
    const random = vi.spyOn(Math, "random");
    const now = vi.spyOn(Date, "now");
    generateSampleData({ scale: 0.05 });
    expect(random).not.toHaveBeenCalled();
    expect(now).not.toHaveBeenCalled();
  });

  it("changes values but not shape with another seed", () => {
    const other = generateSampleData({ seed: 1 });
    const defaults = generatedOnce();
    expect(other.map((db) => db.collections.map((c) => c.documents.length))).toEqual(
      defaults.map((db) => db.collections.map((c) => c.documents.length)),
    );
    expect(serializedDocuments(other)[0].equals(serializedDocuments(defaults)[0])).toBe(false);
  });

  it("creates exactly the layout's databases, collections and views", () => {
    const generated = generatedOnce();
    expect(generated.map((db) => db.name)).toEqual(["shop", "telemetry", "cms"]);
    expect(
      generated.map((db) => ({
        name: db.name,
        collections: db.collections.map((c) => c.name),
        views: db.views.map((v) => v.name),
      })),
    ).toEqual(
      SAMPLE_DATA_LAYOUT.map((db) => ({
        name: db.name,
        collections: db.collections.map((c) => c.name),
        views: db.views.map((v) => v.name),
      })),
    );
    expect(generated.find((db) => db.name === "cms")?.views[0]).toMatchObject({
      name: "published",
      viewOn: "articles",
    });
  });

  it("defaults to a few thousand documents and scales the growing collections", () => {
    const total = (databases: GeneratedDatabase[]) =>
      databases.reduce((sum, db) => sum + db.collections.reduce((n, c) => n + c.documents.length, 0), 0);
    const base = total(generatedOnce());
    expect(base).toBeGreaterThan(2_000);
    expect(base).toBeLessThan(10_000);

    const doubled = generateSampleData({ scale: 2 });
    for (const db of SAMPLE_DATA_LAYOUT) {
      for (const layout of db.collections) {
        const expected = layout.fixedSize ? layout.baseDocuments : layout.baseDocuments * 2;
        expect(collectionOf(doubled, `${db.name}.${layout.name}`)).toHaveLength(expected);
        expect(sampleDocumentCount(db.name, layout, 2)).toBe(expected);
      }
    }
  });

  it("covers every common BSON type", () => {
    const found = typesAcross(generatedOnce());
    for (const type of REQUIRED_TYPES) expect(found, `missing ${type}`).toContain(type);
    expect([...found].filter((type) => type.startsWith("unexpected"))).toEqual([]);
  });

  it("still covers every type and every collection at a tiny scale", () => {
    const tiny = generateSampleData({ scale: 0.001 });
    for (const db of tiny) for (const c of db.collections) expect(c.documents.length).toBeGreaterThan(0);
    const found = typesAcross(tiny);
    for (const type of REQUIRED_TYPES) expect(found, `missing ${type}`).toContain(type);
  });

  it("keeps _id and uniquely indexed fields unique", () => {
    const generated = generatedOnce();
    for (const db of SAMPLE_DATA_LAYOUT) {
      for (const layout of db.collections) {
        const documents = collectionOf(generated, `${db.name}.${layout.name}`);
        const uniqueFields = [
          "_id",
          ...layout.indexes.filter((i) => i.unique).flatMap((i) => Object.keys(i.key)),
        ];
        for (const field of uniqueFields) {
          // The authors collection compares case-insensitively, so uniqueness must hold after lower-casing.
          const values = documents.map((d) => String(d[field]).toLowerCase());
          expect(new Set(values).size, `${db.name}.${layout.name}.${field}`).toBe(documents.length);
        }
      }
    }
  });

  it("only references documents that exist", () => {
    const generated = generatedOnce();
    const ids = (namespace: string) => new Set(collectionOf(generated, namespace).map((d) => String(d._id)));
    const customers = ids("shop.customers");
    const products = ids("shop.products");
    for (const order of collectionOf(generated, "shop.orders")) {
      expect(customers.has(String(order.customerId))).toBe(true);
      for (const item of order.items as Document[]) expect(products.has(String(item.productId))).toBe(true);
    }
    const devices = ids("telemetry.devices");
    for (const event of collectionOf(generated, "telemetry.events")) {
      expect(devices.has(String(event.deviceId))).toBe(true);
    }
    const authors = ids("cms.authors");
    for (const article of collectionOf(generated, "cms.articles")) {
      expect(authors.has(String(article.authorId))).toBe(true);
    }
  });

  it("adds up order totals exactly in Decimal128", () => {
    const cents = (value: unknown) => Math.round(Number(String(value)) * 100);
    for (const order of collectionOf(generatedOnce(), "shop.orders")) {
      const items = order.items as Document[];
      const totals = order.totals as Document;
      for (const item of items) expect(cents(item.lineTotal)).toBe(cents(item.unitPrice) * item.quantity);
      expect(cents(totals.subtotal)).toBe(items.reduce((sum, item) => sum + cents(item.lineTotal), 0));
      expect(cents(totals.grandTotal)).toBe(
        cents(totals.subtotal) + cents(totals.shipping) + cents(totals.tax),
      );
    }
  });

  it("generates authors that satisfy the collection validator's rules", () => {
    for (const author of collectionOf(generatedOnce(), "cms.authors")) {
      expect(author.handle).toMatch(/^[a-z0-9_]{3,32}$/);
      expect(author.email).toMatch(/^[^@\s]+@[^@\s]+$/);
      expect(typeof author.displayName).toBe("string");
      expect(author.joinedAt).toBeInstanceOf(Date);
      expect(typeof author.active).toBe("boolean");
    }
  });

  it("sizes the capped collection so nothing is evicted on insert", () => {
    const telemetry = generatedOnce().find((db) => db.name === "telemetry");
    const events = telemetry?.collections.find((c) => c.name === "events");
    const bytes = (events?.documents ?? []).reduce((sum, d) => sum + calculateObjectSize(d), 0);
    expect(events?.options.capped).toBe(true);
    expect(events?.options.size).toBeGreaterThanOrEqual(bytes * 2);
  });

  it("rejects nonsensical options with context", () => {
    expect(() => generateSampleData({ scale: 0 })).toThrow(/scale must be a positive/);
    expect(() => generateSampleData({ scale: Number.NaN })).toThrow(RangeError);
    expect(() => generateSampleData({ seed: 1.5 })).toThrow(/seed/);
    expect(() => generateSampleData({ scale: 1e5 })).toThrow(
      /50000000 documents into shop\.customers.*maximum/,
    );
  });
});

/**
 * A recording stand-in for the few driver calls the loader makes; it checks
 * the orchestration (order, batching, conflict handling), not a server.
 */
function fakeClient(existing: Record<string, string[]> = {}) {
  const calls: string[] = [];
  const inserted = new Map<string, number>();
  const client = {
    db(name: string) {
      return {
        databaseName: name,
        listCollections: () => ({
          toArray: async () => (existing[name] ?? []).map((collection) => ({ name: collection })),
        }),
        dropCollection: async (collection: string) => {
          calls.push(`drop ${name}.${collection}`);
          return true;
        },
        createCollection: async (collection: string, options: Document) => {
          calls.push(`create ${name}.${collection}${options.viewOn ? ` view on ${options.viewOn}` : ""}`);
        },
        collection: (collection: string) => ({
          createIndexes: async (indexes: Document[]) => {
            calls.push(`indexes ${name}.${collection} x${indexes.length}`);
            return [];
          },
          insertMany: async (documents: Document[]) => {
            calls.push(`insert ${name}.${collection} x${documents.length}`);
            inserted.set(
              `${name}.${collection}`,
              (inserted.get(`${name}.${collection}`) ?? 0) + documents.length,
            );
            return { insertedCount: documents.length, acknowledged: true };
          },
          countDocuments: async () => 42,
        }),
      };
    },
  };
  return { client: client as unknown as MongoClient, calls, inserted };
}

describe("loadSampleData orchestration", () => {
  it("creates, indexes and inserts in batches, then creates views, and summarises", async () => {
    const { client, calls } = fakeClient();
    const summary = await loadSampleData(client, { scale: 0.1, batchSize: 50 });

    expect(calls.indexOf("create shop.customers")).toBeLessThan(calls.indexOf("indexes shop.customers x2"));
    expect(calls.indexOf("indexes shop.customers x2")).toBeLessThan(
      calls.indexOf("insert shop.customers x50"),
    );
    expect(calls.filter((call) => call.startsWith("insert shop.orders"))).toEqual([
      "insert shop.orders x50",
      "insert shop.orders x50",
      "insert shop.orders x20",
    ]);
    expect(calls.at(-1)).toBe("create cms.published view on articles");

    const shop = summary.databases.find((db) => db.name === "shop");
    expect(shop?.collections.find((c) => c.name === "orders")).toEqual({
      name: "orders",
      type: "collection",
      documents: 120,
    });
    const cms = summary.databases.find((db) => db.name === "cms");
    expect(cms?.collections.at(-1)).toEqual({ name: "published", type: "view", documents: 42 });
  });

  it("refuses to touch existing namespaces unless asked to drop them", async () => {
    const existing = { shop: ["orders", "unrelated"] };
    await expect(loadSampleData(fakeClient(existing).client, { scale: 0.01 })).rejects.toThrow(
      /would overwrite shop\.orders; .*ifExists: "drop"/,
    );

    const { client, calls } = fakeClient(existing);
    await loadSampleData(client, { scale: 0.01, ifExists: "drop" });
    expect(calls.filter((call) => call.startsWith("drop"))).toEqual(["drop shop.orders"]);
  });

  it("wraps driver errors with the namespace and step", async () => {
    const { client } = fakeClient();
    const db = client.db.bind(client);
    vi.spyOn(client, "db").mockImplementation((name?: string) => {
      const real = db(name);
      return {
        ...real,
        collection: (collection: string) => ({
          ...real.collection(collection),
          insertMany: async () => {
            throw new Error("E11000 duplicate key");
          },
        }),
      } as unknown as ReturnType<MongoClient["db"]>;
    });
    await expect(loadSampleData(client, { scale: 0.01 })).rejects.toThrow(
      /Loading sample data into shop\.customers failed while inserting documents 0\.\.4: E11000/,
    );
  });

  it("validates the batch size", async () => {
    await expect(loadSampleData(fakeClient().client, { batchSize: 0 })).rejects.toThrow(/batchSize/);
  });
});
