/**
 * Demo data for the backup product: a small shop, a device telemetry store and
 * a CMS. It deliberately covers every common BSON type and the collection
 * features a backup must carry over (capped collections, views, validators,
 * collations, unique/compound/multikey indexes).
 *
 * Generation is pure and deterministic (seeded PRNG, fixed clock) so two
 * loads produce byte-identical documents and restores can be compared.
 * Loading uses only the official driver's public API, so the same data can be
 * loaded into a real MongoDB 7.0.
 */
import {
  Binary,
  calculateObjectSize,
  Decimal128,
  type Document,
  Double,
  Long,
  MaxKey,
  MinKey,
  ObjectId,
  Timestamp,
  UUID,
} from "bson";
import type { CreateCollectionOptions, Db, IndexDescription, MongoClient } from "mongodb";

// ---------------------------------------------------------------------------
// Public types
// ---------------------------------------------------------------------------

export interface SampleDataOptions {
  /** Multiplies the number of documents in the growing collections; default 1 (about 3,800 documents). */
  scale?: number;
  /** Changes the generated values while keeping the shape; default {@link DEFAULT_SAMPLE_SEED}. */
  seed?: number;
}

export interface LoadSampleDataOptions extends SampleDataOptions {
  /** Documents per insertMany call; default 500. */
  batchSize?: number;
  /**
   * What to do when a target collection or view already exists. "fail" (the
   * default) never touches existing data, which matters against a real server;
   * "drop" replaces only the namespaces this module creates.
   */
  ifExists?: "fail" | "drop";
}

export interface SampleCollectionSummary {
  name: string;
  type: "collection" | "view";
  documents: number;
}

export interface SampleDatabaseSummary {
  name: string;
  collections: SampleCollectionSummary[];
}

export interface SampleDataSummary {
  databases: SampleDatabaseSummary[];
}

export interface SampleCollectionLayout {
  name: string;
  /** Document count at scale 1. */
  baseDocuments: number;
  /** Reference data whose size does not follow `scale`. */
  fixedSize?: boolean;
  /** Static create options; a capped collection gets its `size` at generation time. */
  options?: CreateCollectionOptions;
  indexes: IndexDescription[];
}

export interface SampleViewLayout {
  name: string;
  viewOn: string;
  pipeline: Document[];
}

export interface SampleDatabaseLayout {
  name: string;
  /** In creation order: a collection only references collections listed before it. */
  collections: SampleCollectionLayout[];
  views: SampleViewLayout[];
}

export interface GeneratedCollection {
  name: string;
  options: CreateCollectionOptions;
  indexes: IndexDescription[];
  documents: Document[];
}

export interface GeneratedDatabase {
  name: string;
  collections: GeneratedCollection[];
  views: SampleViewLayout[];
}

export const DEFAULT_SAMPLE_SEED = 20_240_601;

// ---------------------------------------------------------------------------
// Layout: what gets created
// ---------------------------------------------------------------------------

/** Case-insensitive English comparisons, as a user directory typically wants. */
const AUTHOR_COLLATION = { locale: "en", strength: 2 } as const;

export const SAMPLE_DATA_LAYOUT: readonly SampleDatabaseLayout[] = [
  {
    name: "shop",
    collections: [
      {
        name: "customers",
        baseDocuments: 500,
        indexes: [{ key: { email: 1 }, unique: true }, { key: { "addresses.city": 1, "name.last": 1 } }],
      },
      {
        name: "products",
        baseDocuments: 150,
        indexes: [{ key: { sku: 1 }, unique: true }, { key: { category: 1, price: -1 } }],
      },
      {
        name: "orders",
        baseDocuments: 1200,
        indexes: [
          { key: { customerId: 1, placedAt: -1 } },
          { key: { status: 1 } },
          { key: { "items.sku": 1 } },
        ],
      },
      {
        name: "promotions",
        baseDocuments: 12,
        fixedSize: true,
        indexes: [{ key: { code: 1 }, unique: true }],
      },
    ],
    views: [],
  },
  {
    name: "telemetry",
    collections: [
      {
        name: "devices",
        baseDocuments: 40,
        indexes: [{ key: { "location.site": 1, name: 1 } }],
      },
      {
        name: "events",
        baseDocuments: 1600,
        options: { capped: true },
        indexes: [{ key: { deviceId: 1, at: -1 } }],
      },
      {
        name: "partitions",
        baseDocuments: 8,
        fixedSize: true,
        indexes: [],
      },
    ],
    views: [],
  },
  {
    name: "cms",
    collections: [
      {
        name: "authors",
        baseDocuments: 30,
        options: {
          // Query-operator validator rather than $jsonSchema: equally valid on
          // a real server and evaluable by a plain query matcher.
          validator: {
            $and: [
              { handle: { $type: "string", $regex: /^[a-z0-9_]{3,32}$/ } },
              { displayName: { $type: "string" } },
              { email: { $type: "string", $regex: /^[^@\s]+@[^@\s]+$/ } },
              { joinedAt: { $type: "date" } },
              { active: { $type: "bool" } },
            ],
          },
          validationLevel: "strict",
          validationAction: "error",
          collation: AUTHOR_COLLATION,
        },
        indexes: [{ key: { handle: 1 }, unique: true }],
      },
      {
        name: "articles",
        baseDocuments: 250,
        indexes: [
          { key: { slug: 1 }, unique: true },
          { key: { tags: 1 } },
          { key: { status: 1, publishedAt: -1 } },
        ],
      },
    ],
    views: [
      {
        name: "published",
        viewOn: "articles",
        pipeline: [
          { $match: { status: "published" } },
          {
            $project: {
              slug: 1,
              title: 1,
              summary: 1,
              tags: 1,
              publishedAt: 1,
              author: "$author.displayName",
            },
          },
        ],
      },
    ],
  },
];

// ---------------------------------------------------------------------------
// Deterministic randomness
// ---------------------------------------------------------------------------

/** 32-bit FNV-1a; used to derive independent PRNG streams and ObjectId machine bytes. */
function fnv1a(text: string): number {
  let hash = 0x811c9dc5;
  for (const byte of Buffer.from(text, "utf8")) {
    hash ^= byte;
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}

/** mulberry32: tiny, fast and good enough for demo data; not for secrets. */
export class SeededRandom {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  /** One stream per collection, so adding a collection does not reshuffle the others. */
  static forStream(seed: number, stream: string): SeededRandom {
    return new SeededRandom(fnv1a(`${seed}/${stream}`));
  }

  /** Uniform in [0, 1). */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  }

  /** Uniform integer in [min, max]. */
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }

  chance(probability: number): boolean {
    return this.next() < probability;
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) {
      throw new RangeError("Cannot pick from an empty list");
    }
    return items[Math.floor(this.next() * items.length)];
  }

  /** `count` distinct items, in random order. */
  sample<T>(items: readonly T[], count: number): T[] {
    const pool = [...items];
    const chosen: T[] = [];
    while (chosen.length < count && pool.length > 0) {
      chosen.push(pool.splice(Math.floor(this.next() * pool.length), 1)[0]);
    }
    return chosen;
  }

  bytes(length: number): Buffer {
    const result = Buffer.alloc(length);
    for (let i = 0; i < length; i++) {
      result[i] = Math.floor(this.next() * 256);
    }
    return result;
  }
}

// ---------------------------------------------------------------------------
// Value helpers
// ---------------------------------------------------------------------------

/** The demo's "now": all dates fall before it, so data never depends on the clock. */
const DATA_START = Date.UTC(2023, 0, 1);
const DATA_END = Date.UTC(2025, 5, 30);
const DAY = 86_400_000;

/** ObjectId counters have 3 bytes. */
const MAX_DOCUMENTS_PER_COLLECTION = 0xffffff;

function dateBetween(random: SeededRandom, from: number, to: number): Date {
  return new Date(from + Math.floor(random.next() * (to - from)));
}

/** Timestamp from the document's creation time like a driver would, made unique by the index. */
function objectIdFor(namespace: string, index: number, createdAt: Date): ObjectId {
  const bytes = Buffer.alloc(12);
  bytes.writeUInt32BE(Math.floor(createdAt.getTime() / 1000), 0);
  bytes.writeUInt32BE(fnv1a(namespace), 4);
  bytes.writeUIntBE(index, 9, 3);
  return new ObjectId(bytes);
}

/** A random (version 4) UUID drawn from the seeded stream. */
function uuidFrom(random: SeededRandom): UUID {
  const bytes = random.bytes(16);
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  return new UUID(bytes);
}

/** Money is computed in integer cents, so totals add up exactly. */
function money(cents: number): Decimal128 {
  const sign = cents < 0 ? "-" : "";
  const absolute = Math.abs(cents);
  return Decimal128.fromString(
    `${sign}${Math.floor(absolute / 100)}.${String(absolute % 100).padStart(2, "0")}`,
  );
}

function centsOf(amount: Decimal128): number {
  const match = /^(-?)(\d+)\.(\d{2})$/.exec(amount.toString());
  if (match === null) {
    throw new Error(`Expected a money amount with two decimals, got ${amount.toString()}`);
  }
  const cents = Number(match[2]) * 100 + Number(match[3]);
  return match[1] === "-" ? -cents : cents;
}

/** Wrapping keeps the BSON type double even for values like 2.0, which plain numbers would turn into int32. */
function double(value: number, decimals = 2): Double {
  return new Double(Number(value.toFixed(decimals)));
}

function slugify(text: string): string {
  return text
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, "-")
    .replace(/^-|-$/g, "");
}

function capitalize(word: string): string {
  return word.charAt(0).toUpperCase() + word.slice(1);
}

// ---------------------------------------------------------------------------
// Vocabulary
// ---------------------------------------------------------------------------

// prettier-ignore
const FIRST_NAMES = [
  "Ada", "Alan", "Amara", "Ben", "Chloe", "Daniel", "Elena", "Farid", "Grace", "Hiro",
  "Ines", "Jonas", "Kemal", "Lea", "Marta", "Nadia", "Omar", "Priya", "Quentin", "Rosa",
  "Sven", "Tariq", "Uma", "Viktor", "Wen", "Yara", "Zoe", "Lukas", "Sofia", "Mateo",
];

// prettier-ignore
const LAST_NAMES = [
  "Andersen", "Becker", "Costa", "Dubois", "Eriksen", "Fischer", "García", "Haddad", "Ito", "Jansen",
  "Kowalski", "Lindqvist", "Moreau", "Nakamura", "O'Brien", "Petrov", "Quinn", "Rossi", "Schmidt", "Tanaka",
  "Ueda", "Varga", "Weber", "Xu", "Yilmaz", "Zimmermann", "Novak", "Silva", "Horvat", "Kim",
];

interface City {
  city: string;
  country: string;
  postalCode: (random: SeededRandom) => string;
}

const CITIES: readonly City[] = [
  { city: "Berlin", country: "DE", postalCode: (r) => String(r.int(10115, 14199)) },
  { city: "Hamburg", country: "DE", postalCode: (r) => String(r.int(20095, 22769)) },
  { city: "München", country: "DE", postalCode: (r) => String(r.int(80331, 81929)) },
  { city: "Paris", country: "FR", postalCode: (r) => `750${String(r.int(1, 20)).padStart(2, "0")}` },
  { city: "Lyon", country: "FR", postalCode: (r) => `6900${r.int(1, 9)}` },
  { city: "Amsterdam", country: "NL", postalCode: (r) => `10${r.int(11, 99)} ${r.pick(["AB", "KL", "XZ"])}` },
  { city: "Wien", country: "AT", postalCode: (r) => `1${String(r.int(1, 23)).padStart(2, "0")}0` },
  { city: "Zürich", country: "CH", postalCode: (r) => `80${String(r.int(1, 57)).padStart(2, "0")}` },
  { city: "Madrid", country: "ES", postalCode: (r) => `280${String(r.int(1, 55)).padStart(2, "0")}` },
  { city: "Lisboa", country: "PT", postalCode: (r) => `1${r.int(100, 999)}-${r.int(100, 999)}` },
];

// prettier-ignore
const STREETS = [
  "Hauptstraße", "Rue de la Paix", "Keizersgracht", "Calle Mayor", "Bahnhofstrasse",
  "Ringstraße", "Rua Augusta", "Lindenallee", "Avenue Victor Hugo", "Schillerplatz",
];

interface Category {
  name: string;
  code: string;
  nouns: readonly string[];
  priceRangeCents: readonly [number, number];
}

// prettier-ignore
const CATEGORIES: readonly Category[] = [
  { name: "electronics", code: "ELEC", nouns: ["Headphones", "Charger", "Speaker", "Keyboard", "Webcam"], priceRangeCents: [1_999, 34_999] },
  { name: "kitchen", code: "KTCH", nouns: ["Kettle", "Knife Set", "Grinder", "Pan", "Scale"], priceRangeCents: [899, 18_999] },
  { name: "outdoor", code: "OUTD", nouns: ["Backpack", "Tent", "Headlamp", "Bottle", "Jacket"], priceRangeCents: [1_499, 42_999] },
  { name: "books", code: "BOOK", nouns: ["Field Guide", "Cookbook", "Atlas", "Novel", "Handbook"], priceRangeCents: [799, 5_999] },
  { name: "office", code: "OFFC", nouns: ["Notebook", "Desk Lamp", "Chair Mat", "Pen Set", "Organizer"], priceRangeCents: [399, 24_999] },
];

// prettier-ignore
const PRODUCT_ADJECTIVES = [
  "Compact", "Classic", "Pro", "Eco", "Ultralight", "Studio", "Travel", "Heritage", "Smart", "Everyday",
];

const COLORS = ["black", "white", "slate", "forest", "sand", "navy", "coral"];

const CUSTOMER_TAGS = ["newsletter", "vip", "b2b", "returning", "gift-buyer", "early-adopter"];

const SITES = ["fra1", "ams2", "dub1", "waw1"];
const DEVICE_MODELS = ["TM-100", "TM-220", "TM-220X", "EdgeSense 3"];
const EVENT_TYPES = ["reading", "reading", "reading", "heartbeat", "alert", "config-change"];

// prettier-ignore
const TOPICS = [
  "backups", "replication", "oplog", "restore", "indexes", "schema", "performance", "security",
  "operations", "monitoring", "sharding", "migrations",
];

// prettier-ignore
const WORDS = [
  "backup", "snapshot", "restore", "replica", "member", "primary", "secondary", "oplog", "entry", "window",
  "cluster", "storage", "volume", "checkpoint", "journal", "index", "document", "collection", "query", "latency",
  "throughput", "retention", "policy", "archive", "point", "time", "recovery", "objective", "failover", "election",
  "write", "concern", "read", "preference", "majority", "durable", "consistent", "incremental", "full", "verify",
  "checksum", "compression", "encryption", "key", "rotation", "schedule", "operator", "dashboard", "alert", "metric",
  "the", "a", "of", "and", "to", "with", "for", "every", "after", "before", "while", "during", "without", "across",
];

function sentence(random: SeededRandom): string {
  const words = Array.from({ length: random.int(8, 18) }, () => random.pick(WORDS));
  return `${capitalize(words.join(" "))}.`;
}

function paragraph(random: SeededRandom): string {
  return Array.from({ length: random.int(3, 6) }, () => sentence(random)).join(" ");
}

// ---------------------------------------------------------------------------
// Generators (pure: a seeded stream, a count, and earlier collections in, documents out)
// ---------------------------------------------------------------------------

type GeneratedSoFar = ReadonlyMap<string, readonly Document[]>;

interface GeneratorInput {
  namespace: string;
  random: SeededRandom;
  count: number;
  upstream: GeneratedSoFar;
}

type Generator = (input: GeneratorInput) => Document[];

function upstreamDocuments(
  upstream: GeneratedSoFar,
  namespace: string,
  neededBy: string,
): readonly Document[] {
  const documents = upstream.get(namespace);
  if (documents === undefined || documents.length === 0) {
    throw new Error(`Sample data for ${neededBy} references ${namespace}, which was not generated before it`);
  }
  return documents;
}

const generateCustomers: Generator = ({ namespace, random, count }) =>
  Array.from({ length: count }, (_, index) => {
    const first = random.pick(FIRST_NAMES);
    const last = random.pick(LAST_NAMES);
    const createdAt = dateBetween(random, DATA_START, DATA_END - 30 * DAY);
    const home = random.pick(CITIES);
    const addresses: Document[] = [
      {
        kind: "shipping",
        street: `${random.pick(STREETS)} ${random.int(1, 180)}`,
        city: home.city,
        postalCode: home.postalCode(random),
        country: home.country,
        isDefault: true,
      },
    ];
    if (random.chance(0.35)) {
      const work = random.pick(CITIES);
      addresses.push({
        kind: "billing",
        street: `${random.pick(STREETS)} ${random.int(1, 180)}`,
        city: work.city,
        postalCode: work.postalCode(random),
        country: work.country,
        isDefault: false,
      });
    }
    const localPart = slugify(`${first}.${last}`).replace(/-/g, ".");
    return {
      _id: objectIdFor(namespace, index, createdAt),
      customerNo: `C-${String(index + 1).padStart(6, "0")}`,
      name: { first, last },
      email: `${localPart}.${index + 1}@${random.pick(["example.com", "example.org", "example.net"])}`,
      phone: random.chance(0.25) ? null : `+49 30 ${random.int(1_000_000, 9_999_999)}`,
      addresses,
      tags: random.sample(CUSTOMER_TAGS, random.int(0, 3)),
      loyalty: {
        tier: random.pick(["bronze", "silver", "gold", "platinum"]),
        points: random.int(0, 25_000),
        memberSince: createdAt,
      },
      marketingOptIn: random.chance(0.6),
      lifetimeValue: money(random.int(0, 450_000)),
      createdAt,
      lastLoginAt: random.chance(0.1) ? null : dateBetween(random, createdAt.getTime(), DATA_END),
    };
  });

const generateProducts: Generator = ({ namespace, random, count }) =>
  Array.from({ length: count }, (_, index) => {
    const category = CATEGORIES[index % CATEGORIES.length];
    const name = `${random.pick(PRODUCT_ADJECTIVES)} ${random.pick(category.nouns)}`;
    const createdAt = dateBetween(random, DATA_START - 365 * DAY, DATA_START + 180 * DAY);
    const priceCents = random.int(...category.priceRangeCents);
    return {
      _id: objectIdFor(namespace, index, createdAt),
      sku: `${category.code}-${String(index + 1).padStart(5, "0")}`,
      name,
      category: category.name,
      price: money(priceCents),
      currency: "EUR",
      stock: random.int(0, 500),
      weightKg: double(0.05 + random.next() * 12, 3),
      dimensionsCm: {
        length: double(5 + random.next() * 60, 1),
        width: double(5 + random.next() * 40, 1),
        height: double(1 + random.next() * 30, 1),
      },
      attributes: [
        { k: "color", v: random.pick(COLORS) },
        { k: "warrantyMonths", v: random.pick([12, 24, 36]) },
      ],
      rating: { average: double(1 + random.next() * 4, 1), count: random.int(0, 2_000) },
      active: random.chance(0.9),
      createdAt,
    };
  });

const VAT_RATE = 0.19;

const generateOrders: Generator = ({ namespace, random, count, upstream }) => {
  const customers = upstreamDocuments(upstream, "shop.customers", namespace);
  const products = upstreamDocuments(upstream, "shop.products", namespace);
  return Array.from({ length: count }, (_, index) => {
    const customer = random.pick(customers);
    const customerSince = (customer.createdAt as Date).getTime();
    const placedAt = dateBetween(random, customerSince, DATA_END);
    const items = random.sample(products, random.int(1, Math.min(5, products.length))).map((product) => {
      const quantity = random.int(1, 4);
      const unitCents = centsOf(product.price as Decimal128);
      return {
        productId: product._id,
        sku: product.sku,
        name: product.name,
        quantity,
        unitPrice: money(unitCents),
        lineTotal: money(unitCents * quantity),
        cents: unitCents * quantity,
      };
    });
    const subtotalCents = items.reduce((sum, item) => sum + item.cents, 0);
    const shippingCents = subtotalCents >= 5_000 ? 0 : 495;
    const taxCents = Math.round((subtotalCents + shippingCents) * VAT_RATE);
    const ageDays = (DATA_END - placedAt.getTime()) / DAY;
    const status =
      ageDays > 14
        ? random.pick(["delivered", "delivered", "delivered", "returned", "cancelled"])
        : random.pick(["pending", "paid", "shipped"]);
    const shipped = status === "shipped" || status === "delivered" || status === "returned";
    const address = (customer.addresses as Document[])[0];
    return {
      _id: objectIdFor(namespace, index, placedAt),
      orderNumber: Long.fromNumber(2_023_000_000_000 + index),
      customerId: customer._id,
      status,
      placedAt,
      shippedAt: shipped ? new Date(placedAt.getTime() + random.int(1, 72) * 3_600_000) : null,
      items: items.map(({ cents: _cents, ...item }) => item),
      totals: {
        subtotal: money(subtotalCents),
        shipping: money(shippingCents),
        tax: money(taxCents),
        grandTotal: money(subtotalCents + shippingCents + taxCents),
      },
      shippingAddress: { ...address },
      payment: {
        method: random.pick(["card", "card", "paypal", "invoice", "sepa"]),
        reference: `PAY-${random.bytes(6).toString("hex").toUpperCase()}`,
        authorizedAt: new Date(placedAt.getTime() + random.int(1, 300) * 1000),
      },
      giftMessage: random.chance(0.05) ? "Happy birthday!" : null,
    };
  });
};

const generatePromotions: Generator = ({ namespace, random, count }) =>
  Array.from({ length: count }, (_, index) => {
    const category = CATEGORIES[index % CATEGORIES.length];
    const validFrom = dateBetween(random, DATA_START, DATA_END - 60 * DAY);
    const percent = random.pick([5, 10, 15, 20, 25]);
    // The last promotion is open-ended; that null is part of the BSON type coverage.
    const openEnded = index === count - 1 || random.chance(0.2);
    return {
      _id: objectIdFor(namespace, index, validFrom),
      code: `${category.code}${percent}-${String(index + 1).padStart(2, "0")}`,
      description: `${percent}% off ${category.name}`,
      appliesTo: {
        skuPattern: new RegExp(`^${category.code}-\\d{5}$`, "i"),
        categories: [category.name],
      },
      discountPercent: double(percent, 1),
      validFrom,
      validUntil: openEnded ? null : new Date(validFrom.getTime() + random.int(7, 90) * DAY),
      maxRedemptions: random.chance(0.5) ? random.int(100, 5_000) : null,
      redemptions: random.int(0, 100),
      active: random.chance(0.7),
    };
  });

const generateDevices: Generator = ({ random, count }) =>
  Array.from({ length: count }, (_, index) => {
    const site = SITES[index % SITES.length];
    const installedAt = dateBetween(random, DATA_START - 400 * DAY, DATA_START);
    const lastSeenAt = dateBetween(random, DATA_END - 7 * DAY, DATA_END);
    return {
      _id: uuidFrom(random),
      name: `${site}-sensor-${String(index + 1).padStart(3, "0")}`,
      model: random.pick(DEVICE_MODELS),
      firmware: `${random.int(1, 3)}.${random.int(0, 9)}.${random.int(0, 20)}`,
      location: { site, rack: `R${random.int(1, 24)}`, slot: random.int(1, 42) },
      installedAt,
      enabled: random.chance(0.92),
      counters: {
        bootCount: Long.fromNumber(random.int(1, 900)),
        bytesSent: Long.fromNumber(random.int(1, 2 ** 20) * 2 ** 22 + random.int(0, 2 ** 22)),
        bytesReceived: Long.fromNumber(random.int(1, 2 ** 18) * 2 ** 20),
      },
      lastSeenAt,
      // An oplog-style optime: seconds plus an ordinal within that second.
      lastSyncOpTime: new Timestamp({ t: Math.floor(lastSeenAt.getTime() / 1000), i: random.int(1, 50) }),
      config: {
        sampleRateHz: random.pick([1, 5, 10, 50]),
        thresholds: {
          warn: double(60 + random.next() * 10, 1),
          critical: double(75 + random.next() * 10, 1),
        },
        channels: random.sample(["temperature", "humidity", "power", "vibration"], random.int(1, 4)),
      },
    };
  });

/** Events are spread evenly over this window so partition bounds do not depend on scale. */
const EVENT_WINDOW_START = Date.UTC(2025, 0, 1);
const EVENT_WINDOW_END = DATA_END;

const generateEvents: Generator = ({ namespace, random, count, upstream }) => {
  const devices = upstreamDocuments(upstream, "telemetry.devices", namespace);
  const sequence = new Map<Document, number>();
  const gap = (EVENT_WINDOW_END - EVENT_WINDOW_START) / count;
  return Array.from({ length: count }, (_, index) => {
    const device = random.pick(devices);
    const seq = (sequence.get(device) ?? 0) + 1;
    sequence.set(device, seq);
    // Jitter within the slot keeps events (and their ObjectIds) in time order, as in a capped log.
    const at = new Date(EVENT_WINDOW_START + Math.floor(index * gap + random.next() * gap * 0.9));
    const type = random.pick(EVENT_TYPES);
    const payload = random.bytes(random.int(8, 48));
    return {
      _id: objectIdFor(namespace, index, at),
      deviceId: device._id,
      type,
      at,
      seq: Long.fromNumber(seq),
      reading: type === "reading" ? double(15 + random.next() * 60, 2) : null,
      unit: type === "reading" ? "celsius" : null,
      severity: type === "alert" ? random.pick(["warning", "critical"]) : "info",
      payload: new Binary(payload, Binary.SUBTYPE_DEFAULT),
      payloadSize: payload.length,
      acknowledged: type === "alert" ? random.chance(0.5) : true,
    };
  });
};

/** Archive tiers over the event timeline; open ends are MinKey/MaxKey like chunk ranges. */
const generatePartitions: Generator = ({ random, count }) => {
  const span = (EVENT_WINDOW_END - EVENT_WINDOW_START) / count;
  return Array.from({ length: count }, (_, index) => {
    const lower = index === 0 ? new MinKey() : new Date(EVENT_WINDOW_START + Math.round(index * span));
    const upper =
      index === count - 1 ? new MaxKey() : new Date(EVENT_WINDOW_START + Math.round((index + 1) * span));
    const tier = index < count / 2 ? "cold" : index < count - 1 ? "warm" : "hot";
    return {
      _id: `events-p${String(index).padStart(2, "0")}`,
      ns: "telemetry.events",
      min: { at: lower },
      max: { at: upper },
      tier,
      location: tier === "cold" ? `s3://tidemark-archive/telemetry/events/p${index}` : null,
      lastmod: new Timestamp({ t: Math.floor(DATA_START / 1000) + index * 86_400, i: random.int(1, 9) }),
    };
  });
};

const generateAuthors: Generator = ({ namespace, random, count }) =>
  Array.from({ length: count }, (_, index) => {
    const first = random.pick(FIRST_NAMES);
    const last = random.pick(LAST_NAMES);
    const joinedAt = dateBetween(random, DATA_START - 700 * DAY, DATA_END - 90 * DAY);
    // The index suffix keeps handles unique even under the case-insensitive collation.
    const handle = `${slugify(first)}_${slugify(last).replace(/-/g, "")}_${index + 1}`.slice(0, 32);
    return {
      _id: objectIdFor(namespace, index, joinedAt),
      handle,
      displayName: `${first} ${last}`,
      email: `${handle}@example.com`,
      bio: sentence(random),
      roles:
        index === 0
          ? ["writer", "editor"]
          : random.sample(["writer", "editor", "reviewer"], random.int(1, 2)),
      socials: {
        website: random.chance(0.5) ? `https://${handle.replace(/_/g, "-")}.example.net` : null,
        mastodon: random.chance(0.3) ? `@${handle}@example.social` : null,
      },
      joinedAt,
      active: random.chance(0.85),
    };
  });

const generateArticles: Generator = ({ namespace, random, count, upstream }) => {
  const authors = upstreamDocuments(upstream, "cms.authors", namespace);
  return Array.from({ length: count }, (_, index) => {
    const author = random.pick(authors);
    const tags = random.sample(TOPICS, random.int(1, 4));
    const title = `${capitalize(random.pick(WORDS.slice(0, 50)))} ${random.pick(["notes", "in practice", "explained", "checklist", "pitfalls"])}: ${tags[0]}`;
    const paragraphs = Array.from({ length: random.int(3, 6) }, () => paragraph(random));
    const body = paragraphs.join("\n\n");
    const wordCount = body.split(/\s+/).length;
    const createdAt = dateBetween(random, (author.joinedAt as Date).getTime(), DATA_END - DAY);
    const status = random.pick([
      "published",
      "published",
      "published",
      "published",
      "draft",
      "draft",
      "archived",
    ]);
    const publishedAt = status === "draft" ? null : new Date(createdAt.getTime() + random.int(1, 14) * DAY);
    const updatedAt = new Date((publishedAt ?? createdAt).getTime() + random.int(0, 30) * DAY);
    return {
      _id: objectIdFor(namespace, index, createdAt),
      slug: `${slugify(title)}-${index + 1}`,
      title,
      summary: paragraphs[0].split(". ")[0],
      body,
      tags,
      status,
      authorId: author._id,
      author: { handle: author.handle, displayName: author.displayName },
      createdAt,
      updatedAt,
      publishedAt,
      revision: random.int(1, 12),
      wordCount,
      readingMinutes: double(wordCount / 230, 1),
      featured: random.chance(0.1),
      metrics: {
        views: Long.fromNumber(status === "published" ? random.int(10, 250_000) : 0),
        likes: random.int(0, 900),
      },
      comments: Array.from({ length: status === "published" ? random.int(0, 4) : 0 }, () => ({
        by: `${random.pick(FIRST_NAMES)} ${random.pick(LAST_NAMES).charAt(0)}.`,
        text: sentence(random),
        postedAt: new Date((publishedAt ?? createdAt).getTime() + random.int(1, 60) * 3_600_000),
        likes: random.int(0, 40),
      })),
    };
  });
};

const GENERATORS: Readonly<Record<string, Generator>> = {
  "shop.customers": generateCustomers,
  "shop.products": generateProducts,
  "shop.orders": generateOrders,
  "shop.promotions": generatePromotions,
  "telemetry.devices": generateDevices,
  "telemetry.events": generateEvents,
  "telemetry.partitions": generatePartitions,
  "cms.authors": generateAuthors,
  "cms.articles": generateArticles,
};

// ---------------------------------------------------------------------------
// Generation
// ---------------------------------------------------------------------------

const MIB = 1024 * 1024;

function resolveScale(scale: number | undefined): number {
  const resolved = scale ?? 1;
  if (!Number.isFinite(resolved) || resolved <= 0) {
    throw new RangeError(`Sample data scale must be a positive finite number, got ${String(scale)}`);
  }
  return resolved;
}

function resolveSeed(seed: number | undefined): number {
  const resolved = seed ?? DEFAULT_SAMPLE_SEED;
  if (!Number.isSafeInteger(resolved)) {
    throw new RangeError(`Sample data seed must be a safe integer, got ${String(seed)}`);
  }
  return resolved;
}

/** How many documents a collection gets at `scale`; exported so callers can size things up front. */
export function sampleDocumentCount(database: string, layout: SampleCollectionLayout, scale = 1): number {
  const count = layout.fixedSize
    ? layout.baseDocuments
    : Math.max(1, Math.round(layout.baseDocuments * scale));
  if (count > MAX_DOCUMENTS_PER_COLLECTION) {
    throw new RangeError(
      `Sample data scale ${scale} would put ${count} documents into ${database}.${layout.name}; ` +
        `the maximum is ${MAX_DOCUMENTS_PER_COLLECTION}`,
    );
  }
  return count;
}

/** A capped collection must hold everything we insert, or the counts in the summary would lie. */
function cappedSize(documents: readonly Document[]): number {
  const bytes = documents.reduce((sum, document) => sum + calculateObjectSize(document), 0);
  return Math.max(1, Math.ceil((bytes * 2) / MIB)) * MIB;
}

/** Pure and deterministic: the same options always give byte-identical documents. */
export function generateSampleData(options: SampleDataOptions = {}): GeneratedDatabase[] {
  const scale = resolveScale(options.scale);
  const seed = resolveSeed(options.seed);
  // Size every collection before generating any, so an oversized scale fails fast.
  const counts = new Map<string, number>(
    SAMPLE_DATA_LAYOUT.flatMap((database) =>
      database.collections.map(
        (collection) =>
          [
            `${database.name}.${collection.name}`,
            sampleDocumentCount(database.name, collection, scale),
          ] as const,
      ),
    ),
  );
  const generated = new Map<string, Document[]>();

  return SAMPLE_DATA_LAYOUT.map((database) => ({
    name: database.name,
    collections: database.collections.map((collection) => {
      const namespace = `${database.name}.${collection.name}`;
      const generator = GENERATORS[namespace];
      if (generator === undefined) {
        throw new Error(`No sample data generator is registered for ${namespace}`);
      }
      const documents = generator({
        namespace,
        random: SeededRandom.forStream(seed, namespace),
        count: counts.get(namespace) ?? 0,
        upstream: generated,
      });
      generated.set(namespace, documents);
      const options: CreateCollectionOptions = { ...collection.options };
      if (options.capped) {
        options.size = cappedSize(documents);
      }
      return { name: collection.name, options, indexes: collection.indexes, documents };
    }),
    views: database.views,
  }));
}

// ---------------------------------------------------------------------------
// Loading (the only part that talks to a server)
// ---------------------------------------------------------------------------

const DEFAULT_BATCH_SIZE = 500;

async function step<T>(namespace: string, action: string, run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (error) {
    const detail = error instanceof Error ? error.message : String(error);
    throw new Error(`Loading sample data into ${namespace} failed while ${action}: ${detail}`, {
      cause: error,
    });
  }
}

async function clearTargets(db: Db, database: GeneratedDatabase, ifExists: "fail" | "drop"): Promise<void> {
  const wanted = new Set([...database.collections, ...database.views].map((target) => target.name));
  const existing = await step(database.name, "listing existing collections", () =>
    db.listCollections({}, { nameOnly: true }).toArray(),
  );
  const clashes = existing.map((info) => info.name).filter((name) => wanted.has(name));
  if (clashes.length === 0) {
    return;
  }
  if (ifExists === "fail") {
    throw new Error(
      `Sample data would overwrite ${clashes.map((name) => `${database.name}.${name}`).join(", ")}; ` +
        `drop them first or pass { ifExists: "drop" }`,
    );
  }
  for (const name of clashes) {
    await step(`${database.name}.${name}`, "dropping the existing namespace", () => db.dropCollection(name));
  }
}

async function loadCollection(db: Db, collection: GeneratedCollection, batchSize: number): Promise<number> {
  const namespace = `${db.databaseName}.${collection.name}`;
  await step(namespace, "creating the collection", () =>
    db.createCollection(collection.name, collection.options),
  );
  const target = db.collection(collection.name);
  if (collection.indexes.length > 0) {
    // Indexes first, so the unique constraints are enforced on the data as it arrives.
    await step(namespace, "creating indexes", () => target.createIndexes(collection.indexes));
  }
  let inserted = 0;
  for (let offset = 0; offset < collection.documents.length; offset += batchSize) {
    const batch = collection.documents.slice(offset, offset + batchSize);
    const result = await step(namespace, `inserting documents ${offset}..${offset + batch.length - 1}`, () =>
      target.insertMany(batch, { ordered: true }),
    );
    inserted += result.insertedCount;
  }
  return inserted;
}

/** Creates the sample databases through the public driver API and reports what landed. */
export async function loadSampleData(
  client: MongoClient,
  options: LoadSampleDataOptions = {},
): Promise<SampleDataSummary> {
  const batchSize = options.batchSize ?? DEFAULT_BATCH_SIZE;
  if (!Number.isSafeInteger(batchSize) || batchSize < 1) {
    throw new RangeError(
      `Sample data batchSize must be a positive integer, got ${String(options.batchSize)}`,
    );
  }
  const ifExists = options.ifExists ?? "fail";
  const databases = generateSampleData(options);

  const summary: SampleDataSummary = { databases: [] };
  for (const database of databases) {
    const db = client.db(database.name);
    await clearTargets(db, database, ifExists);
    const collections: SampleCollectionSummary[] = [];
    for (const collection of database.collections) {
      const documents = await loadCollection(db, collection, batchSize);
      collections.push({ name: collection.name, type: "collection", documents });
    }
    for (const view of database.views) {
      const namespace = `${database.name}.${view.name}`;
      await step(namespace, "creating the view", () =>
        db.createCollection(view.name, { viewOn: view.viewOn, pipeline: view.pipeline }),
      );
      // Counting through the view checks that it actually resolves.
      const documents = await step(namespace, "counting the view", () =>
        db.collection(view.name).countDocuments(),
      );
      collections.push({ name: view.name, type: "view", documents });
    }
    summary.databases.push({ name: database.name, collections });
  }
  return summary;
}
