import type { Document } from "mongodb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SAMPLE_DATA_LAYOUT } from "../../src/emulator/sampleData.js";
import { withEmulator, type EmulatorFixture } from "../helpers/emulator.js";

describe("--sample-data loads the demo databases into the emulator", () => {
  let fx: EmulatorFixture;
  beforeAll(async () => {
    fx = await withEmulator({ sampleData: true });
  });
  afterAll(async () => fx?.close());

  it("creates every database, collection, index and view of the layout", async () => {
    const summary = fx.emulator.sampleData!;
    expect(summary.databases.map((d) => d.name)).toEqual(SAMPLE_DATA_LAYOUT.map((d) => d.name));
    for (const database of summary.databases) {
      const db = fx.client.db(database.name);
      const infos = (await db.listCollections().toArray()) as Document[];
      for (const collection of database.collections) {
        const info = infos.find((i) => i.name === collection.name);
        expect(info, `${database.name}.${collection.name}`).toBeDefined();
        expect(info!.type).toBe(collection.type);
        expect(await db.collection(collection.name).countDocuments()).toBe(collection.documents);
        expect(collection.documents).toBeGreaterThan(0);
      }
    }
    const capped = (
      (await fx.client.db("telemetry").listCollections({ name: "events" }).toArray()) as Document[]
    )[0];
    expect(capped.options.capped).toBe(true);
    const productIndexes = await fx.client.db("shop").collection("products").listIndexes().toArray();
    expect(productIndexes.some((i) => i.unique === true)).toBe(true);
  });

  it("logged every sample write in the oplog", async () => {
    const inserts = await fx.client
      .db("local")
      .collection("oplog.rs")
      .countDocuments({ op: "i", ns: "shop.orders" });
    expect(inserts).toBe(await fx.client.db("shop").collection("orders").countDocuments());
  });
});
