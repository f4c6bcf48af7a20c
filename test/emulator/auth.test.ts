import { Binary, type Document } from "bson";
import { MongoClient, MongoServerError } from "mongodb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { withEmulator, type EmulatorFixture } from "../helpers/emulator.js";

/*
 * SCRAM authentication as MongoDB 7.0 does it (manual: "SCRAM", "Authentication Mechanisms",
 * and the driver auth spec): SCRAM-SHA-256 by default, SCRAM-SHA-1 on request, speculative
 * authentication inside the connection's first hello, AuthenticationFailed (18) for bad
 * credentials, Unauthorized (13) for commands run without authenticating.
 */

describe("emulator authentication (--user admin --password pw)", () => {
  let fx: EmulatorFixture;
  let host: string;
  const clients: MongoClient[] = [];
  const saslCount = (name: string) => fx.emulator.deployment.receivedCommandCounts.get(name) ?? 0;

  function client(uri: string): MongoClient {
    const c = new MongoClient(uri, { serverSelectionTimeoutMS: 5000 });
    clients.push(c);
    return c;
  }

  beforeAll(async () => {
    fx = await withEmulator({ user: "admin", password: "pw" });
    host = `127.0.0.1:${fx.emulator.port}`;
  });
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await fx?.close();
  });

  it("puts the credentials in the URI it hands out", () => {
    expect(fx.emulator.uri).toBe(`mongodb://admin:pw@${host}/?replicaSet=rs0`);
  });

  it.each(["SCRAM-SHA-256", "SCRAM-SHA-1"])("authenticates with %s", async (mechanism) => {
    const c = client(`mongodb://admin:pw@${host}/?replicaSet=rs0&authMechanism=${mechanism}`);
    await c.connect();
    const status = await c.db("admin").command({ connectionStatus: 1 });
    expect(status.authInfo.authenticatedUsers).toEqual([{ user: "admin", db: "admin" }]);
    const dbs = await c.db("admin").admin().listDatabases();
    expect(dbs.ok).toBe(1);
    await c.db("auth").collection(mechanism).insertOne({ mechanism });
    expect(
      await c
        .db("auth")
        .collection(mechanism)
        .findOne({}, { projection: { _id: 0 } }),
    ).toEqual({ mechanism });
  });

  it("negotiates SCRAM-SHA-256 when no mechanism is given (saslSupportedMechs)", async () => {
    const hello = await fx.client.db("admin").command({ hello: 1, saslSupportedMechs: "admin.admin" });
    expect(hello.saslSupportedMechs).toEqual(expect.arrayContaining(["SCRAM-SHA-256", "SCRAM-SHA-1"]));
    const unknown = await fx.client.db("admin").command({ hello: 1, saslSupportedMechs: "admin.nobody" });
    expect(unknown.saslSupportedMechs).toBeUndefined();
  });

  it.each([
    ["a wrong password", "admin:wrong", ""],
    ["a wrong password with SCRAM-SHA-1", "admin:wrong", "&authMechanism=SCRAM-SHA-1"],
    ["an unknown user", "nobody:pw", ""],
    ["the user in the wrong authSource", "admin:pw", "&authSource=test"],
  ])("fails with AuthenticationFailed (18) for %s", async (_what, credentials, extra) => {
    const c = client(`mongodb://${credentials}@${host}/?directConnection=true${extra}`);
    const error = await c.connect().then(
      () => c.db("admin").command({ ping: 1 }),
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(MongoServerError);
    expect(error).toMatchObject({ code: 18, codeName: "AuthenticationFailed" });
    expect((error as Error).message).toMatch(/Authentication failed/);
  });

  describe("a client without credentials", () => {
    let anonymous: MongoClient;
    beforeAll(async () => {
      anonymous = client(`mongodb://${host}/?replicaSet=rs0`);
      await anonymous.connect();
    });

    it.each([
      ["listDatabases", { listDatabases: 1 }],
      ["find", { find: "c" }],
      ["insert", { insert: "c", documents: [{ a: 1 }] }],
      ["serverStatus", { serverStatus: 1 }],
    ])("gets Unauthorized (13) for %s", async (name, command) => {
      await expect(anonymous.db("admin").command(command)).rejects.toMatchObject({
        code: 13,
        codeName: "Unauthorized",
        message: `Command ${name} requires authentication`,
      });
    });

    it("gets Unauthorized through the driver helpers too", async () => {
      await expect(anonymous.db("app").collection("c").insertOne({ a: 1 })).rejects.toMatchObject({
        code: 13,
      });
      await expect(anonymous.db("app").collection("c").find().toArray()).rejects.toMatchObject({ code: 13 });
    });

    it("can still run hello, ping, buildInfo and connectionStatus", async () => {
      const admin = anonymous.db("admin");
      expect(await admin.command({ hello: 1 })).toMatchObject({
        ok: 1,
        isWritablePrimary: true,
        setName: "rs0",
      });
      expect(await admin.command({ ping: 1 })).toMatchObject({ ok: 1 });
      expect((await admin.command({ buildInfo: 1 })).version).toMatch(/^7\.0\./);
      const status = await admin.command({ connectionStatus: 1 });
      expect(status.authInfo.authenticatedUsers).toEqual([]);
    });
  });

  describe("speculative authentication", () => {
    it("answers speculativeAuthenticate in hello with the server-first message", async () => {
      const clientFirst = "n,,n=admin,r=fyko+d2lbbFgONRv9qkxdawL";
      const hello = await fx.client.db("admin").command({
        hello: 1,
        speculativeAuthenticate: {
          saslStart: 1,
          mechanism: "SCRAM-SHA-256",
          payload: new Binary(Buffer.from(clientFirst)),
          db: "admin",
          options: { skipEmptyExchange: true },
        },
      });
      const speculative = hello.speculativeAuthenticate as Document;
      expect(speculative).toBeDefined();
      expect(speculative.done).toBe(false);
      expect(typeof speculative.conversationId).toBe("number");
      const serverFirst = Buffer.from((speculative.payload as Binary).buffer).toString();
      expect(serverFirst).toMatch(/^r=fyko\+d2lbbFgONRv9qkxdawL[^,]+,s=[A-Za-z0-9+/=]+,i=\d+$/);
    });

    it("leaves speculativeAuthenticate out of hello for an unknown user", async () => {
      const hello = await fx.client.db("admin").command({
        hello: 1,
        speculativeAuthenticate: {
          saslStart: 1,
          mechanism: "SCRAM-SHA-256",
          payload: new Binary(Buffer.from("n,,n=nobody,r=abc")),
          db: "admin",
        },
      });
      expect(hello.ok).toBe(1);
      expect(hello.speculativeAuthenticate).toBeUndefined();
    });

    it.each(["SCRAM-SHA-256", "SCRAM-SHA-1"])(
      "lets the driver authenticate %s without a separate saslStart",
      async (mechanism) => {
        const startsBefore = saslCount("saslStart");
        const continuesBefore = saslCount("saslContinue");
        const hellosBefore = saslCount("hello") + saslCount("isMaster") + saslCount("ismaster");
        const c = client(`mongodb://admin:pw@${host}/?directConnection=true&authMechanism=${mechanism}`);
        await c.connect();
        await c.db("admin").command({ ping: 1 });
        const status = await c.db("admin").command({ connectionStatus: 1 });
        expect(status.authInfo.authenticatedUsers).toEqual([{ user: "admin", db: "admin" }]);
        // Every connection the client opened authenticated inside its hello: no saslStart at all,
        // and one saslContinue (skipEmptyExchange) per authenticated connection.
        expect(saslCount("saslStart")).toBe(startsBefore);
        expect(saslCount("saslContinue")).toBeGreaterThan(continuesBefore);
        expect(saslCount("hello") + saslCount("isMaster") + saslCount("ismaster")).toBeGreaterThan(
          hellosBefore,
        );
        await c.close();
      },
    );
  });
});
