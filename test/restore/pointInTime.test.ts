/**
 * Point-in-time restores end to end, through the HTTP API (`POST /api/v1/restores`, delivered into
 * a second emulator by the server): a random workload (CRUD, indexes, renames, views, drops,
 * transactions) runs while the backup follows it live and two snapshots are taken; after every
 * step the source's state and newest oplog ts are recorded. Restores to random recorded
 * timestamps (between the snapshots, after the second, exactly at each snapshot, and a wall-clock
 * second) must each equal the state recorded at that timestamp. Then a removed oplog slice makes
 * a gap: the ranges show it, and a target inside it is refused naming the nearest points.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { newestOplogOpTime } from "../../src/agent/oplogQueries.js";
import type { OpTimeJson } from "../../src/protocol/agentProtocol.js";
import { compareOpTimes } from "../../src/protocol/optime.js";
import type { RestoreRange } from "../../src/restore/pointInTime/index.js";
import type { restoreView } from "../../src/server/routes/restores.js";
import { startActiveBackup, type ActiveBackup } from "../helpers/activeBackup.js";
import { deploymentState, dropDatabases, type DeploymentState } from "../helpers/deploymentState.js";
import { withEmulator, type EmulatorFixture } from "../helpers/emulator.js";
import { withServer, type ServerFixture } from "../helpers/server.js";
import { snapshotServerOptions, takeCaughtUpSnapshot, type SnapshotView } from "../helpers/snapshots.js";
import { waitFor } from "../helpers/wait.js";
import { Random } from "../oplog/differential/random.js";
import { DATABASES, Workload } from "../oplog/differential/workload.js";

type RestoreView = ReturnType<typeof restoreView>;

interface Recorded {
  ts: OpTimeJson;
  state: DeploymentState;
}

describe("point-in-time restore", () => {
  let source: EmulatorFixture;
  let target: EmulatorFixture;
  let fx: ServerFixture;
  let backup: ActiveBackup;
  let first: SnapshotView;
  let second: SnapshotView;
  const recorded: Recorded[] = [];
  const rng = new Random(20261125);

  const record = async () => {
    const ts = (await newestOplogOpTime(source.client))!;
    const last = recorded[recorded.length - 1];
    if (last && compareOpTimes(last.ts, ts) === 0) return;
    recorded.push({ ts, state: await deploymentState(source.client, DATABASES) });
  };

  /** Restores `body`'s point into the (emptied) target and waits for the job to end. */
  const restoreTo = async (point: { atTs?: string; at?: string }): Promise<RestoreView> => {
    await dropDatabases(target.client, DATABASES);
    const created = await fx.api<RestoreView>("POST", "/api/v1/restores", {
      deployment: backup.name,
      ...point,
      delivery: { kind: "deployment", uri: target.emulator.uri, drop: true },
    });
    expect(created.status, JSON.stringify(created.body)).toBe(202);
    // The target's URI (credentials and all) stays in the server's memory: shown redacted as `to`.
    expect(created.body.delivery).not.toHaveProperty("uri");
    return waitFor(
      `restore ${created.body.id}`,
      async () => {
        const view = (await fx.api<RestoreView>("GET", `/api/v1/restores/${created.body.id}`)).body;
        return ["complete", "failed"].includes(view.status) ? view : undefined;
      },
      60_000,
    );
  };

  const expectRestoredAt = async (point: Recorded) => {
    const job = await restoreTo({ atTs: `${point.ts.t}:${point.ts.i}` });
    expect(job.status, job.error ?? "").toBe("complete");
    expect((job.result as { ts: OpTimeJson }).ts).toEqual(point.ts);
    expect(await deploymentState(target.client, DATABASES)).toEqual(point.state);
  };

  /** Waits for the agent's oplog slice holding the newest recorded write to reach the server. */
  const slicesCoverLastWrite = () =>
    waitFor("the oplog slices to cover the last write", async () => {
      const ranges = (
        await fx.api<{ ranges: RestoreRange[] }>("GET", `/api/v1/deployments/${backup.id}/restore-ranges`)
      ).body.ranges;
      const last = ranges[ranges.length - 1];
      return last && compareOpTimes(last.to, recorded[recorded.length - 1].ts) >= 0;
    });

  beforeAll(async () => {
    source = await withEmulator();
    target = await withEmulator();
    fx = await withServer(snapshotServerOptions({ sliceMb: 0.02 }));
    const workload = new Workload(source.client, rng);
    await workload.run(40);
    backup = await startActiveBackup(fx, source, "rs");
    first = await takeCaughtUpSnapshot(fx, backup);
    await workload.refresh();
    await record();
    // In four parts, each stored before the next begins, so that whole slices lie between the
    // snapshots however the agent's timing falls (the gap test removes one).
    for (let part = 0; part < 4; part++) {
      await workload.run(15, record);
      await slicesCoverLastWrite();
    }
    second = await takeCaughtUpSnapshot(fx, backup);
    await workload.run(60, record);
    await backup.caughtUp();
    await slicesCoverLastWrite();
  }, 180_000);

  afterAll(async () => {
    await backup?.agent.stop();
    await fx?.close();
    await target?.close();
    await source?.close();
  });

  it("lists one range from the first snapshot to the newest stored entry", async () => {
    const { body } = await fx.api<{ ranges: Array<RestoreRange & { fromTime: string }> }>(
      "GET",
      `/api/v1/deployments/${backup.name}/restore-ranges`,
    );
    expect(body.ranges).toHaveLength(1);
    expect(body.ranges[0].from).toEqual(first.ts);
    expect(body.ranges[0].kind).toBe("oplog");
    expect(body.ranges[0].snapshots).toEqual([first.id, second.id]);
    expect(body.ranges[0].fromTime).toBe(new Date(first.ts!.t * 1000).toISOString());
  });

  it("restores exactly the state at random timestamps between and after the snapshots", async () => {
    const between = recorded.filter((r) => compareOpTimes(r.ts, second.ts!) < 0);
    const after = recorded.filter((r) => compareOpTimes(r.ts, second.ts!) > 0);
    expect(between.length).toBeGreaterThan(10);
    expect(after.length).toBeGreaterThan(10);
    const picks = [
      ...[0, 1, 2].map(() => between[rng.int(between.length)]),
      ...[0, 1, 2].map(() => after[rng.int(after.length)]),
    ];
    for (const point of picks) await expectRestoredAt(point);
  }, 180_000);

  it("restores exactly at each snapshot's timestamp", async () => {
    for (const snapshot of [first, second]) {
      const point = [...recorded].reverse().find((r) => compareOpTimes(r.ts, snapshot.ts!) <= 0)!;
      const job = await restoreTo({ atTs: `${snapshot.ts!.t}:${snapshot.ts!.i}` });
      expect(job.status, job.error ?? "").toBe("complete");
      expect((job.source as { baseSnapshotId: string }).baseSnapshotId).toBe(snapshot.id);
      expect(await deploymentState(target.client, DATABASES)).toEqual(point.state);
    }
  }, 120_000);

  it("takes every entry of the second given with --at (wall time)", async () => {
    const last = recorded[recorded.length - 1];
    const job = await restoreTo({ at: new Date(last.ts.t * 1000).toISOString() });
    expect(job.status, job.error ?? "").toBe("complete");
    expect((job.result as { ts: OpTimeJson }).ts).toEqual(last.ts);
    expect(await deploymentState(target.client, DATABASES)).toEqual(last.state);
  }, 60_000);

  it("refuses a target before the first snapshot, naming the nearest restorable point", async () => {
    const before = { t: first.ts!.t - 3600, i: 1 };
    const refused = await fx.api<{ error: string; code: string; hint: string }>("POST", "/api/v1/restores", {
      deployment: backup.name,
      atTs: `${before.t}:${before.i}`,
      delivery: { kind: "stream" },
    });
    expect(refused.status).toBe(409);
    expect(refused.body.code).toBe("TARGET_NOT_RESTORABLE");
    expect(refused.body.error).toContain("before its oldest snapshot");
    expect(refused.body.error).toContain(`${first.ts!.t}:${first.ts!.i}`);
    expect(refused.body.hint).toContain("restore ranges");
  });

  it("shows a removed oplog slice as a gap and refuses a target inside it", async () => {
    const { catalog } = fx.server.context;
    const deployment = catalog.deployments.get(backup.id)!;
    const slices = catalog.slices.list(deployment.id, deployment.generation, "oplog");
    // A slice between the two snapshots, with slices before it after the first snapshot.
    const gap = slices.find(
      (s) =>
        compareOpTimes(s.firstTs!, first.ts!) > 0 &&
        compareOpTimes(s.lastTs!, second.ts!) < 0 &&
        slices.some((p) => p.sequence === s.sequence - 1 && compareOpTimes(p.firstTs!, first.ts!) > 0),
    )!;
    expect(gap).toBeDefined();
    await fx.server.context.store.delete(gap.storeKey);
    catalog.slices.delete(deployment.id, deployment.generation, gap.stream, gap.sequence);
    const previous = slices.find((s) => s.sequence === gap.sequence - 1)!;

    const { body } = await fx.api<{ ranges: RestoreRange[] }>(
      "GET",
      `/api/v1/deployments/${backup.id}/restore-ranges`,
    );
    expect(body.ranges.map((r) => [r.from, r.to])).toEqual([
      [first.ts, previous.lastTs],
      [second.ts, slices[slices.length - 1].lastTs],
    ]);
    const inGap = gap.lastTs!;
    const refused = await fx.api<{ error: string; code: string }>("POST", "/api/v1/restores", {
      deployment: backup.name,
      atTs: `${inGap.t}:${inGap.i}`,
      delivery: { kind: "stream" },
    });
    expect(refused.status).toBe(409);
    expect(refused.body.error).toContain("falls in a gap");
    expect(refused.body.error).toContain(`${previous.lastTs!.t}:${previous.lastTs!.i}`);
    expect(refused.body.error).toContain(`${second.ts!.t}:${second.ts!.i}`);
    // Both sides of the gap still restore.
    const atEnd = [...recorded].reverse().find((r) => compareOpTimes(r.ts, previous.lastTs!) <= 0)!;
    await expectRestoredAt(atEnd);
  }, 60_000);
});
