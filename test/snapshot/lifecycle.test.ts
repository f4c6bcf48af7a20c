/**
 * The snapshot lifecycle on its own clock, through the HTTP API: a server whose schedule takes a
 * snapshot every 2 s and keeps it 8 s (no daily, weekly or monthly ones), grooms every 3 s and
 * checks every snapshot's integrity every 3 s. Scheduled snapshots appear without any request,
 * every one complete; groom removes the older ones while the newest stay; the integrity job
 * verifies snapshots nobody asked to verify; an on-demand snapshot keeps the days asked for; the
 * deployment shows its last snapshot.
 */
import { ObjectId } from "mongodb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { SnapshotVerification } from "../../src/snapshot/verify.js";
import type { DeploymentView } from "../../src/server/deploymentView.js";
import { startActiveBackup, type ActiveBackup } from "../helpers/activeBackup.js";
import { withEmulator, type AnyDoc, type EmulatorFixture } from "../helpers/emulator.js";
import { withServer, type ServerFixture } from "../helpers/server.js";
import {
  listSnapshots,
  snapshotEnd,
  snapshotServerOptions,
  SMALL_SNAPSHOT_BLOCKS,
  type SnapshotView,
} from "../helpers/snapshots.js";
import { waitFor } from "../helpers/wait.js";

const INTERVAL_MS = 2000;
const KEEP_MS = 8000;
const GROOM_MS = 3000;

describe("snapshot lifecycle: schedule, groom and the integrity job on their own", () => {
  let source: EmulatorFixture;
  let fx: ServerFixture;
  let backup: ActiveBackup;
  const logLines: string[] = [];
  let writer: NodeJS.Timeout | undefined;

  const list = () => listSnapshots(fx, "rs");

  beforeAll(async () => {
    source = await withEmulator();
    fx = await withServer(
      snapshotServerOptions({
        ...SMALL_SNAPSHOT_BLOCKS,
        snapshotSchedule: {
          intervalHours: INTERVAL_MS / 3_600_000,
          keepDays: KEEP_MS / 86_400_000,
          dailyKeepDays: 0,
          weeklyKeepWeeks: 0,
          monthlyKeepMonths: 0,
        },
        groomIntervalMinutes: GROOM_MS / 60_000,
        integrityCheckDays: 3 / 86_400,
        log: (line) => logLines.push(`${new Date().toISOString()} ${line}`),
      }),
    );
    await source.client
      .db("shop")
      .collection<AnyDoc>("orders")
      .insertMany(
        Array.from({ length: 2000 }, (_, i) => ({ _id: new ObjectId(), n: i, note: `order ${i}` })),
      );
    backup = await startActiveBackup(fx, source, "rs", (line) => logLines.push(line));
    // Writes keep coming, so each snapshot holds a later T.
    let n = 0;
    writer = setInterval(() => {
      void source.client
        .db("shop")
        .collection<AnyDoc>("events")
        .insertOne({ _id: n++, at: new Date() })
        .catch(() => undefined);
    }, 300);
  }, 60_000);

  afterAll(async () => {
    clearInterval(writer);
    await backup?.agent.stop();
    await fx?.close();
    await source?.close();
    if (process.env.TIDEMARK_TEST_LOG) process.stderr.write(`${logLines.join("\n")}\n`);
  });

  let firstScheduled: SnapshotView;

  it("takes scheduled snapshots on its own, every one complete, about every 2 s", async () => {
    const snapshots = await waitFor(
      "three complete scheduled snapshots",
      async () => {
        const all = await list();
        return all.filter((s) => s.status === "complete").length >= 3 ? all : undefined;
      },
      20_000,
      200,
    );
    expect(snapshots.every((s) => s.trigger === "scheduled")).toBe(true);
    // None failed: each one is complete, or the newest is still being written.
    const done = snapshots.filter((s) => s.status !== "writing");
    expect(
      done.map((s) => `${s.status} ${s.error ?? ""}`),
      logLines.join("\n"),
    ).toEqual(done.map(() => "complete "));
    expect(snapshots.slice(0, -1).every((s) => s.status === "complete")).toBe(true);
    // Classes are given as each completes: the first of the day is also the daily (and, being
    // the first ever, weekly and monthly) one; the next ones of the same day are regular.
    const complete = snapshots.filter((s) => s.status === "complete");
    expect(complete[0].classes).toEqual(["regular", "daily", "weekly", "monthly"]);
    const sameDay = (a: string, b: string) => a.slice(0, 10) === b.slice(0, 10);
    if (sameDay(complete[0].createdAt, complete[1].createdAt))
      expect(complete[1].classes).toEqual(["regular"]);
    for (const s of done) {
      expect(s).toMatchObject({ deploymentName: "rs", storeKind: "blockstore", expiresAt: null });
      expect(s.ts).not.toBeNull();
      expect(s.collections.map((c) => c.namespace)).toContain("shop.orders");
    }
    // At least the interval apart; the T of each is no earlier than the one before.
    const created = snapshots.map((s) => Date.parse(s.createdAt));
    for (let k = 1; k < created.length; k++) {
      expect(created[k] - created[k - 1]).toBeGreaterThanOrEqual(INTERVAL_MS);
      expect(created[k] - created[k - 1]).toBeLessThan(INTERVAL_MS + 5000);
    }
    const times = done.map((s) => s.ts!.t * 1e6 + s.ts!.i);
    expect([...times].sort((a, b) => a - b)).toEqual(times);
    firstScheduled = snapshots[0];
  }, 30_000);

  it("groom removes the older ones once their 8 s are up, while the newest stay", async () => {
    const createdAt = Date.parse(firstScheduled.createdAt);
    const gone = await waitFor(
      "groom to remove the first scheduled snapshot",
      async () => {
        const all = await list();
        return all.some((s) => s.id === firstScheduled.id) ? undefined : all;
      },
      KEEP_MS + 2 * GROOM_MS + 5000,
      200,
    );
    const removedAfter = Date.now() - createdAt;
    expect(removedAfter).toBeGreaterThanOrEqual(KEEP_MS);
    expect(removedAfter).toBeLessThan(KEEP_MS + 2 * GROOM_MS + 5000);
    expect((await fx.api("GET", `/api/v1/snapshots/${firstScheduled.id}`)).status).toBe(404);
    // The newest stay: several complete ones, none older than what groom may still have left.
    const complete = gone.filter((s) => s.status === "complete");
    expect(complete.length).toBeGreaterThanOrEqual(2);
    const now = Date.now();
    for (const s of gone)
      expect(now - Date.parse(s.createdAt), s.createdAt).toBeLessThan(KEEP_MS + GROOM_MS + 3000);
    expect(logLines.some((line) => /groom: [1-9]\d* expired snapshots removed/.test(line))).toBe(true);
  }, 30_000);

  it("the integrity job verifies snapshots without being asked", async () => {
    const verified = await waitFor(
      "a snapshot verified by the integrity job",
      async () => (await list()).find((s) => s.verification.state === "passed"),
      15_000,
      200,
    );
    expect(verified.verification.verifiedAt).not.toBeNull();
    const result = verified.verification.result as SnapshotVerification;
    expect(result).toMatchObject({ snapshotId: verified.id, ok: true });
    expect(result.collections.length).toBeGreaterThan(0);
    expect(result.bytesRead).toBeGreaterThan(0);
    // No verify request was ever made; none of the checks failed.
    expect((await list()).filter((s) => s.verification.state === "failed")).toEqual([]);
  }, 20_000);

  it("an on-demand snapshot with keepDays gets its expiry, and outlives the scheduled ones", async () => {
    // One snapshot at a time per deployment: retry while a scheduled one is being written.
    const started = await waitFor(
      "the on-demand snapshot to start",
      async () => {
        const response = await fx.api<SnapshotView & { code?: string }>(
          "POST",
          "/api/v1/deployments/rs/snapshots",
          { keepDays: 1 },
        );
        if (response.status === 409 && response.body.code === "SNAPSHOT_IN_PROGRESS") return undefined;
        return response;
      },
      10_000,
      100,
    );
    expect(started.status, JSON.stringify(started.body)).toBe(202);
    const requestedAt = Date.now();
    const onDemand = started.body;
    expect(onDemand.trigger).toBe("on_demand");
    const expiresAt = Date.parse(onDemand.expiresAt!);
    expect(Math.abs(expiresAt - (requestedAt + 86_400_000))).toBeLessThan(5000);
    const done = await snapshotEnd(fx, onDemand.id, { timeoutMs: 15_000, intervalMs: 100 });
    expect(done.status, done.error ?? "").toBe("complete");
    expect(done.expiresAt).toBe(onDemand.expiresAt);

    // A bad keepDays is refused.
    for (const keepDays of [0, -1, "1"]) {
      const bad = await fx.api("POST", "/api/v1/deployments/rs/snapshots", { keepDays });
      expect(bad.status, JSON.stringify(keepDays)).toBe(400);
    }

    // Past the scheduled snapshots' 8 s and a groom: the on-demand one is still there.
    const scheduledThen = (await list()).filter((s) => s.trigger === "scheduled").map((s) => s.id);
    await waitFor(
      "groom to remove the scheduled snapshots there were",
      async () => {
        const ids = new Set((await list()).map((s) => s.id));
        return scheduledThen.every((id) => !ids.has(id));
      },
      KEEP_MS + 2 * GROOM_MS + 5000,
      200,
    );
    const view = await fx.api<SnapshotView>("GET", `/api/v1/snapshots/${onDemand.id}`);
    expect(view.status).toBe(200);
    expect(view.body.status).toBe("complete");
  }, 40_000);

  it("the deployment shows its last complete snapshot", async () => {
    // Snapshots keep coming: read the two until no new one completed in between.
    const { deployment, last } = await waitFor("a deployment view and a list that agree", async () => {
      const deployment = (await fx.api<DeploymentView>("GET", "/api/v1/deployments/rs")).body;
      const complete = (await list()).filter((s) => s.status === "complete");
      const last = complete[complete.length - 1];
      return deployment.lastSnapshot?.id === last?.id ? { deployment, last } : undefined;
    });
    expect(deployment.lastSnapshot).toEqual({
      id: last.id,
      ts: last.ts,
      wallTime: last.wallTime,
      storeKind: "blockstore",
    });
  });
});
