import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { killAll, runCli, runCliToEnd, waitForLine, type Run } from "../helpers/cli.js";

/** tidemark server and the commands over its API, run as an operator would. */
describe("tidemark server, deployments, backup and slices commands", () => {
  let dataDir: string;
  let server: Run;
  let env: Record<string, string>;

  beforeAll(async () => {
    dataDir = mkdtempSync(join(tmpdir(), "tidemark-cli-"));
    server = runCli(["server", "--data-dir", dataDir, "--port", "0"], { TIDEMARK_ADMIN_KEY: undefined });
    const ready = await waitForLine(server, /tidemark server ready: /);
    const url = ready.split("ready: ")[1].trim();
    const keyLine = server
      .stdout()
      .split("\n")
      .find((l) => l.startsWith("admin key"))!;
    env = { TIDEMARK_URL: url, TIDEMARK_API_KEY: keyLine.split(": ")[1].trim() };
  });
  afterAll(() => {
    killAll();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it("prints a generated admin key once, and keeps only its hash", async () => {
    expect(env.TIDEMARK_API_KEY).toMatch(/^tdm_admin_/);
    const { readFileSync } = await import("node:fs");
    expect(readFileSync(join(dataDir, "catalog.sqlite")).includes(Buffer.from(env.TIDEMARK_API_KEY))).toBe(
      false,
    );
  });

  it("adds, lists and shows a deployment, as text and as JSON", async () => {
    const added = await runCliToEnd(["deployments", "add", "prod-rs", "--json"], env);
    expect(added.code).toBe(0);
    const created = JSON.parse(added.stdout) as { id: string; agentKey: string };
    expect(created.agentKey).toMatch(/^tdm_agent_/);
    const list = await runCliToEnd(["deployments", "list"], env);
    expect(list.stdout).toMatch(/prod-rs\s+inactive/);
    const shown = JSON.parse((await runCliToEnd(["deployments", "show", "prod-rs", "--json"], env)).stdout);
    expect(shown).toMatchObject({ id: created.id, state: "inactive" });
    const text = await runCliToEnd(["deployments", "show", "prod-rs"], env);
    expect(text.stdout).toContain("transferring");
  });

  it("starts and stops the backup", async () => {
    const started = JSON.parse((await runCliToEnd(["backup", "start", "prod-rs", "--json"], env)).stdout);
    expect(started).toMatchObject({ state: "initial_sync", phase: "starting" });
    const stopped = await runCliToEnd(["backup", "stop", "prod-rs"], env);
    expect(stopped.stdout).toContain("stopped");
    const slices = JSON.parse((await runCliToEnd(["slices", "list", "prod-rs", "--json"], env)).stdout);
    expect(slices.slices).toEqual([]);
  });

  it("explains errors: a wrong key, an unknown deployment, an unreachable server", async () => {
    const wrongKey = await runCliToEnd(["deployments", "list"], { ...env, TIDEMARK_API_KEY: "nope" });
    expect(wrongKey.code).toBe(1);
    expect(wrongKey.stderr).toContain("UNAUTHORIZED");
    const unknown = await runCliToEnd(["deployments", "show", "nothing"], env);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain("not found");
    const down = await runCliToEnd(["deployments", "list"], { ...env, TIDEMARK_URL: "http://127.0.0.1:9" });
    expect(down.code).toBe(1);
    expect(down.stderr).toContain("cannot reach the Tidemark server");
    expect(down.stderr).toContain("hint:");
  });

  it("has --help with examples on every command", async () => {
    for (const args of [["server"], ["deployments", "add"], ["backup", "start"], ["slices", "list"]]) {
      const help = await runCliToEnd([...args, "--help"], env);
      expect(help.stdout, args.join(" ")).toContain("Example");
    }
  });
});
