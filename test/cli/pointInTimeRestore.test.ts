/**
 * The CLI's point-in-time commands end to end, with the built `tidemark`: `restore ranges`,
 * `restore --deployment NAME --at-ts|--at … --to URI` and `export --deployment NAME --at-ts …`,
 * against a server backing up one emulator and restoring into another. A point between two
 * snapshots must equal the source as it was then; a point outside the ranges and bad option
 * combinations are refused before anything is written; the server's temporary copy is released.
 */
import { mkdtempSync, readdirSync, readlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { newestOplogOpTime } from "../../src/agent/oplogQueries.js";
import type { OpTimeJson } from "../../src/protocol/agentProtocol.js";
import { startActiveBackup, type ActiveBackup } from "../helpers/activeBackup.js";
import { killAll, runCliToEnd } from "../helpers/cli.js";
import { deploymentState, dropDatabases, type DeploymentState } from "../helpers/deploymentState.js";
import { withEmulator, type AnyDoc, type EmulatorFixture } from "../helpers/emulator.js";
import { ADMIN_KEY, withServer, type ServerFixture } from "../helpers/server.js";
import {
  seedCms,
  snapshotServerOptions,
  takeCaughtUpSnapshot,
  type SnapshotView,
} from "../helpers/snapshots.js";
import { waitFor } from "../helpers/wait.js";

const DATABASES = ["shop", "cms"];

describe("tidemark restore / export at a point in time", () => {
  let source: EmulatorFixture;
  let target: EmulatorFixture;
  let fx: ServerFixture;
  let backup: ActiveBackup;
  let first: SnapshotView;
  let middle: { ts: OpTimeJson; state: DeploymentState };
  let env: Record<string, string>;
  const cli = (...args: string[]) => runCliToEnd(args, env);

  beforeAll(async () => {
    source = await withEmulator();
    target = await withEmulator();
    fx = await withServer(snapshotServerOptions({ sliceMb: 0.02 }));
    env = { TIDEMARK_URL: fx.server.url, TIDEMARK_API_KEY: ADMIN_KEY };
    const orders = source.client.db("shop").collection<AnyDoc>("orders");
    await orders.insertMany(Array.from({ length: 500 }, (_, i) => ({ _id: i, status: "new", n: i })));
    await orders.createIndex({ status: 1 });
    await seedCms(source.client);
    backup = await startActiveBackup(fx, source, "rs");
    first = await takeCaughtUpSnapshot(fx, backup);
    await orders.updateMany({ n: { $lt: 100 } }, { $set: { status: "shipped" } });
    await orders.deleteMany({ n: { $gte: 450 } });
    await source.client.db("shop").collection<AnyDoc>("returns").insertOne({ _id: 1, order: 3 });
    middle = {
      ts: (await newestOplogOpTime(source.client))!,
      state: await deploymentState(source.client, DATABASES),
    };
    // A write after the recorded point, so the second snapshot is strictly after it.
    await orders.insertOne({ _id: 1000, status: "new", n: 1000 });
    await takeCaughtUpSnapshot(fx, backup);
    await orders.updateMany({}, { $set: { status: "archived" } });
    await source.client.db("shop").collection("returns").drop();
    await backup.caughtUp();
    await waitFor("the ranges to reach the last write", async () => {
      const run = await cli("restore", "ranges", "rs", "--json");
      const { ranges } = JSON.parse(run.stdout) as { ranges: Array<{ to: OpTimeJson }> };
      const newest = (await newestOplogOpTime(source.client))!;
      return (
        ranges.length > 0 &&
        ranges[ranges.length - 1].to.t * 2 ** 32 + ranges[ranges.length - 1].to.i >=
          newest.t * 2 ** 32 + newest.i
      );
    });
  }, 120_000);

  afterAll(async () => {
    killAll();
    await backup?.agent.stop();
    await fx?.close();
    await target?.close();
    await source?.close();
  });

  it("lists the restorable ranges, as a table and as JSON", async () => {
    const json = await cli("restore", "ranges", "rs", "--json");
    expect(json.code, json.stderr).toBe(0);
    const { ranges } = JSON.parse(json.stdout) as { ranges: Array<{ from: OpTimeJson; kind: string }> };
    expect(ranges).toHaveLength(1);
    expect(ranges[0].from).toEqual(first.ts);
    expect(ranges[0].kind).toBe("oplog");
    const text = await cli("restore", "ranges", "rs");
    expect(text.stdout).toContain("FROM");
    expect(text.stdout).toContain(`${first.ts!.t}:${first.ts!.i}`);
  });

  it("restores the deployment as it was between the two snapshots, verified, and releases the server's copy", async () => {
    await dropDatabases(target.client, DATABASES);
    const run = await cli(
      "restore",
      "--deployment",
      "rs",
      "--at-ts",
      `${middle.ts.t}:${middle.ts.i}`,
      "--to",
      target.emulator.uri,
      "--json",
    );
    expect(run.code, run.stderr).toBe(0);
    const result = JSON.parse(run.stdout) as {
      verified: boolean;
      pointInTime: OpTimeJson;
      baseSnapshotId: string;
      restoreId: string;
    };
    expect(result.verified).toBe(true);
    expect(result.pointInTime).toEqual(middle.ts);
    expect(result.baseSnapshotId).toBe(first.id);
    expect(await deploymentState(target.client, DATABASES)).toEqual(middle.state);
    const job = await fx.api<{ status: string }>("GET", `/api/v1/restores/${result.restoreId}`);
    expect(job.body.status).toBe("expired");
    // Its temporary head database is closed, not just unlinked (the server runs in this process).
    const open = readdirSync("/proc/self/fd").map((fd) => {
      try {
        return readlinkSync(`/proc/self/fd/${fd}`);
      } catch {
        return "";
      }
    });
    expect(open.filter((file) => file.includes(result.restoreId))).toEqual([]);
  }, 60_000);

  it("exports the same point as an archive that imports equal to it", async () => {
    const file = join(mkdtempSync(join(tmpdir(), "tidemark-pitr-export-")), "rs.archive");
    const exported = await cli(
      "export",
      "--deployment",
      "rs",
      "--at-ts",
      `${middle.ts.t}:${middle.ts.i}`,
      "--archive",
      file,
      "--json",
    );
    expect(exported.code, exported.stderr).toBe(0);
    await dropDatabases(target.client, DATABASES);
    const imported = await cli("import", file, "--to", target.emulator.uri);
    expect(imported.code, imported.stderr).toBe(0);
    expect(await deploymentState(target.client, DATABASES)).toEqual(middle.state);
  }, 60_000);

  it("refuses a point before the first snapshot naming the nearest one, and bad option combinations", async () => {
    await dropDatabases(target.client, DATABASES);
    const early = new Date((first.ts!.t - 86_400) * 1000).toISOString();
    const refused = await cli("restore", "--deployment", "rs", "--at", early, "--to", target.emulator.uri);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain("cannot be restored to");
    expect(refused.stderr).toContain(`${first.ts!.t}:${first.ts!.i}`);
    expect(refused.stderr).toContain("restore ranges");
    const combos: Array<[string[], string]> = [
      [["--snapshot", first.id, "--at-ts", "1:1"], "go with --deployment"],
      [["--deployment", "rs"], "exactly one of --at and --at-ts"],
      [["--deployment", "rs", "--at", "noon"], "not an ISO 8601 time"],
      [["--deployment", "rs", "--at-ts", "5"], "not seconds:increment"],
      [["--deployment", "nope", "--at-ts", "1:1"], "no deployment 'nope'"],
      [[], "either --snapshot ID, or --deployment NAME"],
    ];
    for (const [args, message] of combos) {
      const run = await cli("restore", ...args, "--to", target.emulator.uri);
      expect(run.code, args.join(" ")).toBe(2);
      expect(run.stderr, args.join(" ")).toContain(message);
    }
    expect(await target.client.db("shop").listCollections().toArray()).toEqual([]);
  }, 60_000);

  it("checks the target before the server materialises anything", async () => {
    const jobs = async () =>
      (await fx.api<{ restores: unknown[] }>("GET", "/api/v1/restores")).body.restores.length;
    const before = await jobs();
    const unreachable = "mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=500";
    const run = await cli(
      "restore",
      "--deployment",
      "rs",
      "--at-ts",
      `${middle.ts.t}:${middle.ts.i}`,
      "--to",
      unreachable,
    );
    expect(run.code).toBe(2);
    expect(run.stderr).toContain("127.0.0.1:1");
    expect(run.stderr).toContain("--to URI");
    expect(await jobs()).toBe(before);
  }, 60_000);
});
