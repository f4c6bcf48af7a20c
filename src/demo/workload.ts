/**
 * The demo's light write workload: a few writes a second into the sample databases (new orders,
 * shipped orders, customer visits, device events, edited articles, cancelled orders), through the
 * official driver as an application would, so the Backup page has oplog to show and the head
 * database has something to follow.
 */
import { MongoClient, ObjectId, type Document, type Filter } from "mongodb";

/** A filter on `_id`, of whatever type the sample documents have (the driver's typing assumes ObjectId). */
function byId(_id: unknown): Filter<Document> {
  return { _id } as Filter<Document>;
}

export interface DemoWorkloadOptions {
  uri: string;
  /** Writes per second (default 10). */
  writesPerSecond?: number;
  log?: (line: string) => void;
}

export interface DemoWorkload {
  /** Writes done so far. */
  readonly writes: number;
  /** Stops after the write in flight; resolves with the number of writes done. */
  stop(): Promise<number>;
}

/** A few `_id`s of a collection to update, read once at the start. */
async function sampleIds(client: MongoClient, db: string, collection: string): Promise<unknown[]> {
  const docs = await client
    .db(db)
    .collection(collection)
    .find({}, { projection: { _id: 1 }, limit: 200 })
    .toArray();
  return docs.map((doc) => doc._id);
}

function pick<T>(values: T[], n: number): T | undefined {
  return values.length === 0 ? undefined : values[n % values.length];
}

export async function startDemoWorkload(options: DemoWorkloadOptions): Promise<DemoWorkload> {
  const { uri, writesPerSecond = 10, log = () => {} } = options;
  const client = new MongoClient(uri, { serverSelectionTimeoutMS: 5000 });
  await client.connect();
  const shop = client.db("shop");
  const customers = await sampleIds(client, "shop", "customers");
  const devices = await sampleIds(client, "telemetry", "devices");
  const articles = await sampleIds(client, "cms", "articles");
  const placed: ObjectId[] = [];

  const writes: Array<(n: number) => Promise<unknown>> = [
    (n) => {
      const _id = new ObjectId();
      placed.push(_id);
      return shop.collection<Document>("orders").insertOne({
        _id,
        customerId: pick(customers, n),
        status: "new",
        placedAt: new Date(),
        items: [{ sku: `DEMO-${n % 17}`, qty: 1 + (n % 3), price: 9.5 + (n % 7) }],
      });
    },
    (n) =>
      shop
        .collection<Document>("orders")
        .updateOne(byId(pick(placed, n)), { $set: { status: "shipped", shippedAt: new Date() } }),
    (n) =>
      shop
        .collection<Document>("customers")
        .updateOne(byId(pick(customers, n * 7)), { $inc: { visits: 1 }, $set: { lastSeenAt: new Date() } }),
    (n) =>
      client
        .db("telemetry")
        .collection<Document>("events")
        .insertOne({ deviceId: pick(devices, n), at: new Date(), kind: "reading", value: (n * 37) % 100 }),
    (n) =>
      client
        .db("cms")
        .collection<Document>("articles")
        .updateOne(byId(pick(articles, n * 3)), {
          $set: { updatedAt: new Date() },
          $push: { edits: n } as Document,
        }),
    (n) => {
      // Cancel the oldest order the workload placed, so deletes show up too (orders still grow).
      const _id = placed.length > 20 && Math.floor(n / 6) % 2 === 0 ? placed.shift() : undefined;
      return _id ? shop.collection<Document>("orders").deleteOne({ _id }) : Promise.resolve();
    },
  ];

  let done = 0;
  let failures = 0;
  let stopping = false;
  const interval = 1000 / writesPerSecond;
  const loop = (async () => {
    for (let n = 0; !stopping; n++) {
      const started = Date.now();
      try {
        await writes[n % writes.length](n);
        done++;
      } catch (error) {
        // The demo goes on; a write that fails (e.g. while shutting down) is only reported.
        if (failures++ < 5) log(`demo workload: a write failed: ${(error as Error).message}`);
      }
      const wait = interval - (Date.now() - started);
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    }
  })();

  return {
    get writes() {
      return done;
    },
    async stop() {
      stopping = true;
      await loop;
      await client.close();
      return done;
    },
  };
}
