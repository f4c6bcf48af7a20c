import { existsSync } from "node:fs";
import { MongoClient } from "mongodb";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { cli, killAll, runCli, waitForLine, type Run } from "../helpers/cli.js";

/* The built CLI (test/helpers/cli.ts), run as a child process the way an operator would. */

const run = (args: string[]): Run => runCli(args);

/** Resolves with the first line the process prints, or rejects if it exits first. */
const firstLine = (r: Run): Promise<string> => waitForLine(r, /./);

beforeAll(() => {
  // test/globalSetup.ts built dist/ for this run.
  expect(existsSync(cli)).toBe(true);
});

afterEach(() => killAll());

describe("tidemark emulator (built CLI)", () => {
  it("--port 0 --json prints the real port; the driver authenticates, writes and reads; SIGTERM exits 0", async () => {
    const r = run(["emulator", "--port", "0", "--user", "admin", "--password", "pw", "--json"]);
    const printed = JSON.parse(await firstLine(r)) as { uri: string; host: string; port: number };
    expect(printed.host).toBe("127.0.0.1");
    expect(Number.isInteger(printed.port)).toBe(true);
    expect(printed.port).toBeGreaterThan(0);
    expect(printed.uri).toBe(`mongodb://<user>:<password>@127.0.0.1:${printed.port}/?replicaSet=rs0`);
    expect(r.stdout()).not.toContain("pw"); // the password is never printed

    // Closed after the emulator is gone, the client waits serverSelectionTimeoutMS to send
    // endSessions: keep it short.
    const client = new MongoClient(`mongodb://admin:pw@${printed.host}:${printed.port}/?replicaSet=rs0`, {
      serverSelectionTimeoutMS: 1500,
    });
    const anonymous = new MongoClient(`mongodb://${printed.host}:${printed.port}/?directConnection=true`, {
      serverSelectionTimeoutMS: 5000,
    });
    try {
      await client.connect();
      const coll = client.db("cli").collection<{ _id: number; name: string }>("things");
      await coll.insertOne({ _id: 1, name: "from the CLI test" });
      expect(await coll.find({}).toArray()).toEqual([{ _id: 1, name: "from the CLI test" }]);
      // --user made authentication mandatory.
      await expect(anonymous.db("admin").command({ listDatabases: 1 })).rejects.toMatchObject({ code: 13 });

      // SIGTERM while the driver is still connected: a clean shutdown.
      r.child.kill("SIGTERM");
      expect(await r.exited).toEqual({ code: 0, signal: null });
    } finally {
      await anonymous.close();
      await client.close();
    }
  });

  it("prints a text line with the real port without --json, and exits 0 on SIGINT", async () => {
    const r = run(["emulator", "--port", "0", "--replset", "demo"]);
    const line = await firstLine(r);
    const match = /^emulator ready: mongodb:\/\/127\.0\.0\.1:(\d+)\/\?replicaSet=demo$/.exec(line);
    expect(match).not.toBeNull();
    const port = Number(match![1]);
    expect(port).toBeGreaterThan(0);
    const client = new MongoClient(`mongodb://127.0.0.1:${port}/?replicaSet=demo`, {
      serverSelectionTimeoutMS: 5000,
    });
    try {
      expect((await client.db("admin").command({ hello: 1 })).setName).toBe("demo");
    } finally {
      await client.close();
    }
    r.child.kill("SIGINT");
    expect(await r.exited).toEqual({ code: 0, signal: null });
  });

  it("--help shows the options and the example lines", async () => {
    const r = run(["emulator", "--help"]);
    expect(await r.exited).toEqual({ code: 0, signal: null });
    const help = r.stdout();
    expect(help).toContain("Usage: tidemark emulator [options]");
    expect(help).toContain("--port <port>");
    expect(help).toContain("--json");
    expect(help).toContain("Examples:");
    expect(help).toContain("$ tidemark emulator --port 27117 --user admin --password pw");
    expect(help).toContain("$ tidemark emulator --sample-data");
    expect(help).toContain('$ mongosh "mongodb://127.0.0.1:27017/?replicaSet=rs0"');
  });

  it.each([
    ["abc", /--port.*'abc'.*(port|whole number)/],
    ["70000", /--port.*'70000'.*0\.\.65535/],
    ["-1", /--port.*'-1'/],
    ["1.5", /--port.*'1\.5'/],
  ])("rejects --port %s with a clear message and a non-zero exit", async (value, message) => {
    const r = run(["emulator", "--port", value]);
    const { code } = await r.exited;
    expect(code).not.toBe(0);
    expect(code).not.toBeNull();
    expect(r.stderr()).toMatch(message);
    expect(r.stdout()).not.toContain("emulator ready");
  });

  it("rejects --user without --password", async () => {
    const r = run(["emulator", "--port", "0", "--user", "admin"]);
    const { code } = await r.exited;
    expect(code).not.toBe(0);
    expect(r.stderr()).toMatch(/--user and --password go together/);
  });
});
