/**
 * The agent's checks before it starts, against the emulator through the official driver (and a
 * minimal standalone mongod for "not a replica set"). Every failure is a ConfigurationError with
 * its own problem, message and hint, exit code 2, and no password in it.
 */
import net from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConfigurationError, EXIT_BAD_CONFIGURATION } from "../../src/agent/errors.js";
import { connectSource, preflight } from "../../src/agent/preflight.js";
import { createSourceClient } from "../../src/agent/sourceClient.js";
import { startEmulator, type RunningEmulator } from "../../src/emulator/server.js";
import { startStandalone } from "./standaloneServer.js";

const PASSWORD = "s3cret-pw";

async function check(uri: string, timeoutMs = 3000): Promise<ConfigurationError> {
  try {
    const { client } = await connectSource({ uri, serverSelectionTimeoutMs: timeoutMs });
    await client.close();
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigurationError);
    return error as ConfigurationError;
  }
  throw new Error("preflight passed");
}

async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

describe("preflight", () => {
  let emulator: RunningEmulator;
  beforeAll(async () => {
    emulator = await startEmulator({ port: 0, log: () => {}, user: "backup", password: PASSWORD });
    // A real replica set's oplog starts with rs.initiate()'s entry; give the emulator's one entry.
    const client = createSourceClient({ uri: emulator.uri });
    await client.db("app").collection("things").insertOne({ seed: true });
    await client.close();
  });
  afterAll(async () => emulator?.stop());

  it("accepts a replica set with an oplog and reports what it found", async () => {
    const client = createSourceClient({ uri: emulator.uri });
    try {
      const info = await preflight(client, emulator.uri);
      expect(info.setName).toBe("rs0");
      expect(info.user).toBe("backup@admin");
      expect(info.version).toMatch(/^7\.0\./);
      expect(info.newestOplog!.t).toBeGreaterThan(0);
      expect(info.oldestOplog!.t).toBeLessThanOrEqual(info.newestOplog!.t);
    } finally {
      await client.close();
    }
  });

  it("unreachable: names the hosts, suggests checking them, never shows the password", async () => {
    const port = await closedPort();
    const uri = `mongodb://backup:${PASSWORD}@127.0.0.1:${port}/?replicaSet=rs0`;
    const error = await check(uri, 500);
    expect(error.problem).toBe("unreachable");
    expect(error.exitCode).toBe(EXIT_BAD_CONFIGURATION);
    expect(error.message).toContain(`127.0.0.1:${port}`);
    expect(error.hint).toMatch(/hosts and ports/);
    expect(error.describe()).not.toContain(PASSWORD);
  });

  it("authentication failed: its own message and hint, no password", async () => {
    const uri = emulator.uri.replace(encodeURIComponent(PASSWORD), "wrong-password");
    const error = await check(uri);
    expect(error.problem).toBe("authentication");
    expect(error.exitCode).toBe(2);
    expect(error.message).toMatch(/authentication to 127\.0\.0\.1:\d+ failed/);
    expect(error.hint).toMatch(/user name and password/);
    expect(error.describe()).not.toContain("wrong-password");
  });

  it("not a replica set: a standalone mongod is refused with how to convert it", async () => {
    const standalone = await startStandalone();
    try {
      const error = await check(standalone.uri);
      expect(error.problem).toBe("not_replica_set");
      expect(error.message).toMatch(/standalone mongod, not a replica set/);
      expect(error.hint).toMatch(/--replSet/);
    } finally {
      await standalone.stop();
    }
  });

  it("missing privilege on the oplog: names the privilege and the backup role", async () => {
    emulator.faults.failCommand("find", 13, 1); // Unauthorized, as mongod answers without the privilege
    const error = await check(emulator.uri);
    expect(error.problem).toBe("missing_privilege");
    expect(error.message).toMatch(/backup@admin may not read the oplog/);
    expect(error.hint).toMatch(/grantRolesToUser\('backup', \[\{ role: 'backup'/);
  });

  it("missing privilege to list databases", async () => {
    emulator.faults.failCommand("listDatabases", 13, 1);
    const error = await check(emulator.uri);
    expect(error.problem).toBe("missing_privilege");
    expect(error.message).toMatch(/may not list the databases/);
  });

  it("an invalid connection string is a configuration error too", async () => {
    const error = await check(`mongodb://backup:${PASSWORD}@127.0.0.1:27017/?wtimeoutMS=-5`);
    expect(error.problem).toBe("invalid_option");
    expect(error.hint).toMatch(/mongodb:\/\/user:password@host1/);
    expect(error.describe()).not.toContain(PASSWORD);
  });
});
