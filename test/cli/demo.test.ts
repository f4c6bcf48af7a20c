/**
 * `tidemark demo` (what `npm run demo` runs), as a child process: the emulator with sample data,
 * a server on the data directory, an agent, the write workload; the backup reaches active and
 * follows the writes; Ctrl-C (SIGINT) stops everything with exit code 0. And what the restores
 * issue asks of the demo: a snapshot restored into a second emulator, a point in time between two
 * snapshots equal to the source then, an archive exported and imported.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MongoClient } from "mongodb";
import { afterAll, describe, expect, it } from "vitest";
import { compareOpTimes } from "../../src/protocol/optime.js";
import type { DeploymentView } from "../../src/server/deploymentView.js";
import { killAll, runCli, runCliToEnd, waitForLine, type Run } from "../helpers/cli.js";
import { withEmulator } from "../helpers/emulator.js";
import { waitFor } from "../helpers/wait.js";

interface DemoInfo {
  deployment: string;
  backupPage: string;
  adminKey: string;
  dataDir: string;
  workload: boolean;
}

async function startDemo(dataDir: string, extra: string[] = []): Promise<{ run: Run; info: DemoInfo }> {
  const run = runCli(["demo", "--port", "0", "--mongo-port", "0", "--data-dir", dataDir, "--json", ...extra]);
  const line = await waitForLine(run, /"backupPage"/);
  return { run, info: JSON.parse(line) as DemoInfo };
}

function demoView(info: DemoInfo): Promise<DeploymentView> {
  return fetch(`${info.backupPage}api/v1/deployments/demo`, {
    headers: { authorization: `Bearer ${info.adminKey}` },
  }).then(async (response) => (await response.json()) as DeploymentView);
}

describe("tidemark demo", () => {
  const dirs: string[] = [];
  const tempDir = () => {
    const dir = mkdtempSync(join(tmpdir(), "tidemark-demo-"));
    dirs.push(dir);
    return dir;
  };
  afterAll(() => {
    killAll();
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });

  it("backs the emulator up while the workload writes; Ctrl-C stops everything cleanly", async () => {
    const dataDir = join(tempDir(), "demo-data");
    const { run, info } = await startDemo(dataDir, ["--writes-per-second", "40"]);
    expect(info.dataDir).toBe(dataDir);
    expect(info.workload).toBe(true);
    expect(info.adminKey).toMatch(/^tdm_admin_/);

    // The Backup page is served, and the key is not part of its address.
    const page = await fetch(info.backupPage);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain("<title>");
    expect(info.backupPage).not.toContain(info.adminKey);

    const active = await waitFor("the demo backup to become active", async () => {
      const view = await demoView(info);
      return view.state === "active" ? view : undefined;
    });
    expect(active.phase).toBe("complete");
    // Phase changes are printed as JSON lines.
    await waitFor("the active line", async () => (/"state":"active"/.test(run.stdout()) ? true : undefined));

    // The workload keeps writing, and the head database follows it.
    const client = new MongoClient(info.deployment, { serverSelectionTimeoutMS: 5000 });
    try {
      const count = () =>
        client
          .db("shop")
          .collection("orders")
          .countDocuments({ "items.sku": /^DEMO-/ });
      const before = await count();
      const applied = active.head.appliedTs!;
      await waitFor("more workload writes", async () => ((await count()) > before ? true : undefined));
      await waitFor("the head database to move on", async () => {
        const view = await demoView(info);
        return view.head.appliedTs && compareOpTimes(view.head.appliedTs, applied) > 0 ? true : undefined;
      });
    } finally {
      await client.close();
    }

    run.child.kill("SIGINT");
    const exit = await run.exited;
    expect(exit.code).toBe(0);
    expect(run.stderr()).toContain("stopping: workload, agent, server, emulator");
    expect(existsSync(join(dataDir, "catalog.sqlite"))).toBe(true);
    expect(existsSync(join(dataDir, ".tidemark-demo"))).toBe(true);
    // The server's port is closed.
    await expect(fetch(info.backupPage)).rejects.toThrow();
  }, 120_000);

  it("--no-workload: once active, `tidemark headdb verify demo` finds every collection matching", async () => {
    const { run, info } = await startDemo(join(tempDir(), "data"), ["--no-workload"]);
    expect(info.workload).toBe(false);
    await waitFor("the demo backup to become active", async () =>
      (await demoView(info)).state === "active" ? true : undefined,
    );
    const verify = await runCliToEnd(["headdb", "verify", "demo", "--json"], {
      TIDEMARK_URL: info.backupPage.replace(/\/$/, ""),
      TIDEMARK_API_KEY: info.adminKey,
    });
    expect(verify.code, verify.stderr).toBe(0);
    const result = JSON.parse(verify.stdout) as { match: boolean; collections: Array<{ match: boolean }> };
    expect(result.match).toBe(true);
    expect(result.collections.length).toBeGreaterThan(5);
    run.child.kill("SIGINT");
    expect((await run.exited).code).toBe(0);
  }, 120_000);

  it("restores on the demo: a snapshot into a second emulator, a point between two snapshots, an archive round trip", async () => {
    const { run, info } = await startDemo(join(tempDir(), "data"));
    const env = { TIDEMARK_URL: info.backupPage.replace(/\/$/, ""), TIDEMARK_API_KEY: info.adminKey };
    const cli = (...args: string[]) => runCliToEnd(args, env);
    const target = await withEmulator();
    const client = new MongoClient(info.deployment, { serverSelectionTimeoutMS: 5000 });
    try {
      // The schedule takes a first snapshot once the backup is active.
      await waitFor(
        "the demo's first snapshot",
        async () => ((await demoView(info)).lastSnapshot ? true : undefined),
        90_000,
      );
      // Marks written while the workload runs, each with the check database's hash at its ts.
      const marks: Array<{ ts: string; md5: string }> = [];
      for (let k = 0; k < 5; k++) {
        await client.db("check").collection<{ _id: number }>("marks").insertOne({ _id: k });
        const hash = (await client.db("check").command({ dbHash: 1 })).collections as Record<string, string>;
        // The workload writes elsewhere meanwhile: the mark's own oplog entry is the point.
        const [entry] = await client
          .db("local")
          .collection("oplog.rs")
          .find({ ns: "check.marks", "o._id": k })
          .toArray();
        marks.push({ ts: `${entry.ts.high}:${entry.ts.low}`, md5: hash.marks });
      }
      // The second snapshot after the marks: the head database has applied them first.
      const [t, i] = marks[4].ts.split(":").map(Number);
      await waitFor("the head database to apply the marks", async () => {
        const applied = (await demoView(info)).head.appliedTs;
        return applied && compareOpTimes(applied, { t, i }) >= 0 ? true : undefined;
      });
      const second = await cli("snapshots", "take", "demo", "--wait", "--json");
      expect(second.code, second.stderr).toBe(0);
      const secondId = (JSON.parse(second.stdout) as { id: string }).id;

      const restored = await cli(
        "restore",
        "--snapshot",
        secondId,
        "--to",
        target.emulator.uri,
        "--drop",
        "--json",
      );
      expect(restored.code, restored.stderr).toBe(0);
      expect((JSON.parse(restored.stdout) as { verified: boolean }).verified).toBe(true);

      const mark = marks[2];
      const point = await cli(
        "restore",
        "--deployment",
        "demo",
        "--at-ts",
        mark.ts,
        "--to",
        target.emulator.uri,
        "--drop",
        "--json",
      );
      expect(point.code, point.stderr).toBe(0);
      expect((JSON.parse(point.stdout) as { verified: boolean }).verified).toBe(true);
      const restoredMarks = async () =>
        ((await target.client.db("check").command({ dbHash: 1 })).collections as Record<string, string>)
          .marks;
      expect(await restoredMarks()).toBe(mark.md5);
      expect(await target.client.db("check").collection("marks").countDocuments()).toBe(3);

      const archive = join(tempDir(), "demo.archive.gz");
      const exported = await cli(
        "export",
        "--deployment",
        "demo",
        "--at-ts",
        marks[3].ts,
        "--archive",
        archive,
        "--gzip",
      );
      expect(exported.code, exported.stderr).toBe(0);
      const imported = await cli("import", archive, "--to", target.emulator.uri, "--drop");
      expect(imported.code, imported.stderr).toBe(0);
      expect(await restoredMarks()).toBe(marks[3].md5);
    } finally {
      await client.close();
      await target.close();
      run.child.kill("SIGINT");
      await run.exited;
    }
  }, 180_000);

  it("never empties a data directory that is not a demo's", async () => {
    const dataDir = tempDir();
    writeFileSync(join(dataDir, "catalog.sqlite"), "a real server's catalog");
    const result = await runCliToEnd(["demo", "--port", "0", "--mongo-port", "0", "--data-dir", dataDir]);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/holds data that is not a demo's/);
    expect(result.stderr).toMatch(/hint: choose another --data-dir/);
    expect(readFileSync(join(dataDir, "catalog.sqlite"), "utf8")).toBe("a real server's catalog");
  });

  it("says which port is taken and how to pick another", async () => {
    const busy = createServer();
    await new Promise<void>((resolve) => busy.listen(0, "127.0.0.1", resolve));
    const { port } = busy.address() as AddressInfo;
    try {
      const result = await runCliToEnd([
        "demo",
        "--port",
        String(port),
        "--mongo-port",
        "0",
        "--data-dir",
        join(tempDir(), "d"),
      ]);
      expect(result.code).toBe(2);
      expect(result.stderr).toContain(`the server cannot listen on port ${port}: it is in use`);
      expect(result.stderr).toMatch(/hint: .*--port \(0 picks a free one\)/);
    } finally {
      busy.close();
    }
  });

  it("refuses a bad option with a clear message", async () => {
    const result = await runCliToEnd(["demo", "--writes-per-second", "-3"]);
    expect(result.code).not.toBe(0);
    expect(result.stderr).toMatch(/writes-per-second.*positive number/);
  });
});
