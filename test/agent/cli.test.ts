/**
 * `tidemark agent` as an operator runs it (the built CLI in a child process): help with examples,
 * exit code 2 and a clear message for a configuration that cannot work (never the password),
 * a backup run to its end with exit code 0 when the deployment is terminated, and SIGTERM.
 */
import net from "node:net";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { killAll, runCli, runCliToEnd } from "../helpers/cli.js";
import { withEmulator, type AnyDoc, type EmulatorFixture } from "../helpers/emulator.js";
import { withServer, type ServerFixture } from "../helpers/server.js";

const PASSWORD = "pw-never-logged";

async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

async function until(probe: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error("timed out");
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe("tidemark agent", () => {
  let source: EmulatorFixture;
  let fx: ServerFixture;
  beforeAll(async () => {
    source = await withEmulator({ user: "backup", password: PASSWORD });
    await source.client
      .db("shop")
      .collection<AnyDoc>("orders")
      .insertMany(Array.from({ length: 300 }, (_, i) => ({ _id: i, item: `item ${i}` })));
    fx = await withServer({ oplogFlushSeconds: 0.5 });
  });
  afterEach(() => killAll());
  afterAll(async () => {
    await fx?.close();
    await source?.close();
  });

  it("--help lists the options and examples", async () => {
    const { code, stdout } = await runCliToEnd(["agent", "--help"]);
    expect(code).toBe(0);
    for (const option of [
      "--server",
      "--key",
      "--source",
      "--slice-mb",
      "--codec",
      "--clone-parallelism",
      "--oplog-flush-seconds",
      "--tls-ca-file",
      "--tls-certificate-key-file",
      "--tls-allow-invalid-certificates",
    ]) {
      expect(stdout).toContain(option);
    }
    expect(stdout).toMatch(/Examples:\n {2}\$ tidemark agent --server/);
  });

  it("an unreachable source: exit code 2, the hosts, a hint, no password", async () => {
    const port = await closedPort();
    const { code, stderr } = await runCliToEnd([
      "agent",
      "--server",
      fx.server.url,
      "--key",
      "tdm_agent_x",
      "--source",
      `mongodb://backup:${PASSWORD}@127.0.0.1:${port}/?replicaSet=rs0&serverSelectionTimeoutMS=300`,
    ]);
    expect(code).toBe(2);
    expect(stderr).toMatch(new RegExp(`cannot reach the deployment at 127\\.0\\.0\\.1:${port}`));
    expect(stderr).toMatch(/hint: check the hosts and ports/);
    expect(stderr).toContain("backup:****@");
    expect(stderr).not.toContain(PASSWORD);
  });

  it("a wrong password: exit code 2 with its own message", async () => {
    const uri = source.emulator.uri.replace(PASSWORD, "not-the-password");
    const { code, stderr } = await runCliToEnd([
      "agent",
      "--server",
      fx.server.url,
      "--key",
      "k",
      "--source",
      uri,
    ]);
    expect(code).toBe(2);
    expect(stderr).toMatch(/authentication to 127\.0\.0\.1:\d+ failed/);
    expect(stderr).not.toContain("not-the-password");
  });

  it("an unknown agent key: exit code 2", async () => {
    const created = await fx.api<{ id: string }>("POST", "/api/v1/deployments", { name: "wrong-key" });
    const { code, stderr } = await runCliToEnd([
      "agent",
      "--server",
      fx.server.url,
      "--key",
      "tdm_agent_unknown",
      "--deployment",
      created.body.id,
      "--source",
      source.emulator.uri,
    ]);
    expect(code).toBe(2);
    expect(stderr).toMatch(/the server refused the agent key \(401/);
    expect(stderr).toMatch(/hint: check --key/);
  });

  it("backs a deployment up, and exits 0 when it is terminated (key and source from the environment)", async () => {
    const created = await fx.api<{ id: string; agentKey: string }>("POST", "/api/v1/deployments", {
      name: "cli",
    });
    await fx.api("POST", "/api/v1/deployments/cli/backup/start");
    const run = runCli(
      [
        "agent",
        "--server",
        fx.server.url,
        "--deployment",
        created.body.id,
        "--slice-mb",
        "0.01",
        "--codec",
        "gzip",
      ],
      { TIDEMARK_AGENT_KEY: created.body.agentKey, TIDEMARK_SOURCE_URI: source.emulator.uri },
    );
    await until(async () => {
      const view = await fx.api<{ initialSync: { cloneCompleteAt: unknown } }>(
        "GET",
        "/api/v1/deployments/cli",
      );
      return view.body.initialSync.cloneCompleteAt !== null;
    });
    const slices = await fx.api<{ slices: Array<{ stream: string; codec: string }> }>(
      "GET",
      "/api/v1/deployments/cli/slices?kind=documents",
    );
    expect(slices.body.slices.length).toBeGreaterThan(1);
    expect(slices.body.slices.every((s) => s.codec === "gzip")).toBe(true);
    await fx.api("DELETE", "/api/v1/deployments/cli");
    const { code } = await run.exited;
    expect(code).toBe(0);
    expect(run.stderr()).toMatch(/INFO {2}clone: clone complete t1=\d+:\d+/);
    expect(run.stderr()).toContain("backup:****@");
    expect(run.stderr()).not.toContain(PASSWORD);
  });

  it("stops cleanly on SIGTERM", async () => {
    const created = await fx.api<{ id: string; agentKey: string }>("POST", "/api/v1/deployments", {
      name: "sigterm",
    });
    const run = runCli([
      "agent",
      "--server",
      fx.server.url,
      "--key",
      created.body.agentKey,
      "--deployment",
      created.body.id,
      "--source",
      source.emulator.uri,
    ]);
    await until(async () => run.stderr().includes("job state=inactive"));
    run.child.kill("SIGTERM");
    const { code } = await run.exited;
    expect(code).toBe(0);
    expect(run.stderr()).toContain("agent stopped");
  });
});
