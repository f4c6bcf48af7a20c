import { createHash } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { withEmulator, type AnyDoc, type EmulatorFixture } from "../helpers/emulator.js";

// dbHash as MongoDB computes it (src/mongo/db/commands/dbhash.cpp): per collection, MD5 over
// every document's BSON in _id order; the database md5 is MD5 over the collection hashes in
// name order.
describe("emulator dbHash", () => {
  let fx: EmulatorFixture;
  beforeAll(async () => {
    fx = await withEmulator();
  });
  afterAll(async () => fx?.close());

  async function seed(dbName: string, reverse: boolean) {
    const db = fx.client.db(dbName);
    const docs = Array.from({ length: 50 }, (_, i) => ({ _id: i, name: `doc ${i}`, tags: [i % 3] }));
    // Insertion order differs between the two databases; _id order, and so the hash, does not.
    await db.collection<AnyDoc>("a").insertMany(reverse ? [...docs].reverse() : docs);
    await db.collection<AnyDoc>("b").insertMany([{ _id: "x", v: 1 }]);
  }

  it("is equal for equal data inserted in a different order", async () => {
    await seed("h1", false);
    await seed("h2", true);
    const one = await fx.client.db("h1").command({ dbHash: 1 });
    const two = await fx.client.db("h2").command({ dbHash: 1 });
    expect(one.collections).toEqual(two.collections);
    expect(one.md5).toBe(two.md5);
  });

  it("equals an MD5 the test computes itself from the documents", async () => {
    const db = fx.client.db("h1");
    const expected: Record<string, string> = {};
    for (const name of ["a", "b"]) {
      const md5 = createHash("md5");
      const raws = await db.collection<AnyDoc>(name).find({}, { raw: true }).sort({ _id: 1 }).toArray();
      for (const raw of raws) md5.update(raw as unknown as Uint8Array);
      expected[name] = md5.digest("hex");
    }
    const reply = await db.command({ dbHash: 1 });
    expect(reply.collections).toEqual(expected);
    expect(reply.md5).toBe(createHash("md5").update(expected.a).update(expected.b).digest("hex"));
    const only = await db.command({ dbHash: 1, collections: ["b"] });
    expect(Object.keys(only.collections)).toEqual(["b"]);
  });

  it("changes when one document changes", async () => {
    const before = await fx.client.db("h2").command({ dbHash: 1 });
    await fx.client
      .db("h2")
      .collection<AnyDoc>("a")
      .updateOne({ _id: 7 }, { $set: { name: "changed" } });
    const after = await fx.client.db("h2").command({ dbHash: 1 });
    expect(after.collections.a).not.toBe(before.collections.a);
    expect(after.collections.b).toBe(before.collections.b);
    expect(after.md5).not.toBe(before.md5);
  });

  it("hashes an empty collection as the MD5 of nothing", async () => {
    await fx.client.db("h3").createCollection("empty");
    const reply = await fx.client.db("h3").command({ dbHash: 1 });
    expect(reply.collections.empty).toBe("d41d8cd98f00b204e9800998ecf8427e");
  });
});
