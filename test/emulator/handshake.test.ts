import { MongoClient } from "mongodb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { withEmulator, type EmulatorFixture } from "../helpers/emulator.js";

describe("emulator handshake and topology (driver against the wire protocol)", () => {
  let fx: EmulatorFixture;
  beforeAll(async () => {
    fx = await withEmulator({ replSet: "rs0" });
  });
  afterAll(async () => fx?.close());

  it("answers hello like a MongoDB 7.0 primary", async () => {
    const hello = await fx.client.db("admin").command({ hello: 1 });
    expect(hello.setName).toBe("rs0");
    expect(hello.isWritablePrimary).toBe(true);
    expect(hello.maxWireVersion).toBe(21);
    expect(hello.hosts).toEqual([`127.0.0.1:${fx.emulator.port}`]);
    expect(hello.primary).toBe(`127.0.0.1:${fx.emulator.port}`);
    expect(hello.logicalSessionTimeoutMinutes).toBe(30);
    expect(hello.topologyVersion.processId).toBeDefined();
    expect(hello.$clusterTime.clusterTime).toBeDefined();
    expect(hello.operationTime).toBeDefined();
  });

  it("works with replicaSet= and directConnection=true URIs", async () => {
    for (const uri of [fx.emulator.uri, fx.emulator.directUri]) {
      const client = new MongoClient(uri, { serverSelectionTimeoutMS: 3000 });
      await client.connect();
      await client.db("t").collection("c").insertOne({ uri });
      expect(await client.db("t").collection("c").countDocuments({ uri })).toBe(1);
      await client.close();
    }
  });

  it("reports its version in buildInfo and the legacy isMaster", async () => {
    const info = await fx.client.db("admin").command({ buildInfo: 1 });
    expect(info.version).toMatch(/^7\.0\./);
    expect(info.versionArray.slice(0, 2)).toEqual([7, 0]);
    const legacy = await fx.client.db("admin").command({ isMaster: 1 });
    expect(legacy.ismaster).toBe(true);
  });

  it("answers an unknown command with CommandNotFound (59)", async () => {
    await expect(fx.client.db("admin").command({ noSuchThing: 1 })).rejects.toMatchObject({
      code: 59,
      codeName: "CommandNotFound",
    });
  });

  it("talks OP_COMPRESSED with snappy and zlib", async () => {
    for (const compressor of ["snappy", "zlib"] as const) {
      const client = new MongoClient(fx.emulator.uri, { compressors: [compressor] });
      await client.connect();
      const docs = Array.from({ length: 200 }, (_, i) => ({ i, text: "compress me ".repeat(20) }));
      await client.db("compress").collection(compressor).insertMany(docs);
      const back = await client.db("compress").collection(compressor).find().sort({ i: 1 }).toArray();
      expect(back.map((d) => d.i)).toEqual(docs.map((d) => d.i));
      const connection = fx.emulator.deployment.connections;
      expect([...connection].some((c) => c.compressor === compressor)).toBe(true);
      await client.close();
    }
  });
});
