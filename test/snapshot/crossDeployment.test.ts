/**
 * Blocks are stored once per store, whichever deployment writes them: two deployments holding the
 * same data (here, two backups of one emulator) share every block of their first snapshots, and
 * groom keeps a block as long as either deployment's snapshot refers to it.
 */
import { ObjectId } from "mongodb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { manifestBlocks, parseManifest } from "../../src/snapshot/manifest.js";
import type { snapshotView } from "../../src/server/routes/snapshots.js";
import { startActiveBackup, type ActiveBackup } from "../helpers/activeBackup.js";
import { withEmulator, type AnyDoc, type EmulatorFixture } from "../helpers/emulator.js";
import { withServer, type ServerFixture } from "../helpers/server.js";
import { waitFor } from "../helpers/wait.js";

type SnapshotView = ReturnType<typeof snapshotView> & { manifest?: unknown };

describe("deduplication across deployments in one block store", () => {
  let source: EmulatorFixture;
  let fx: ServerFixture;
  const backups: ActiveBackup[] = [];

  beforeAll(async () => {
    source = await withEmulator();
    fx = await withServer({
      sliceMb: 0.1,
      oplogFlushSeconds: 0.2,
      snapshotBlockBytes: 64 * 1024,
      snapshotSchedule: { enabled: false },
    });
    const docs = Array.from({ length: 6000 }, (_, i) => ({
      _id: new ObjectId(),
      n: i,
      body: `document ${i} `.repeat(12),
    }));
    await source.client.db("shop").collection<AnyDoc>("orders").insertMany(docs);
    backups.push(await startActiveBackup(fx, source, "first"));
    backups.push(await startActiveBackup(fx, source, "second"));
  }, 180_000);

  afterAll(async () => {
    for (const backup of backups) await backup.agent.stop();
    await fx?.close();
    await source?.close();
  });

  async function take(backup: ActiveBackup): Promise<SnapshotView> {
    await backup.caughtUp();
    const started = await fx.api<SnapshotView>("POST", `/api/v1/deployments/${backup.id}/snapshots`, {});
    expect(started.status, JSON.stringify(started.body)).toBe(202);
    const done = await waitFor("the snapshot to end", async () => {
      const view = (await fx.api<SnapshotView>("GET", `/api/v1/snapshots/${started.body.id}?manifest=true`))
        .body;
      return view.status !== "writing" ? view : undefined;
    });
    expect(done.status, done.error ?? "").toBe("complete");
    return done;
  }

  it("the second deployment's first snapshot stores almost nothing, and groom keeps the shared blocks", async () => {
    const first = await take(backups[0]);
    const second = await take(backups[1]);
    expect(first.storedBytes).toBeGreaterThan(0);
    expect(second.logicalBytes).toBe(first.logicalBytes);
    // Only what differs between the two head databases (none of the documents) is new.
    expect(second.storedBytes).toBeLessThanOrEqual(second.logicalBytes * 0.01);
    const ordersBlocks = (view: SnapshotView) =>
      parseManifest(view.manifest, view.id)
        .collections.find((c) => c.namespace === "shop.orders")!
        .runs!.flatMap((run) => run.blocks.map((block) => block.hash));
    expect(ordersBlocks(second)).toEqual(ordersBlocks(first));

    // The first deployment's snapshot goes; the blocks stay for the second one.
    expect((await fx.api("DELETE", `/api/v1/snapshots/${first.id}`)).status).toBe(200);
    const groomed = await fx.api<{ blocksRemoved: number; errors: string[] }>("POST", "/api/v1/groom");
    expect(groomed.body.errors).toEqual([]);
    expect(groomed.body.blocksRemoved).toBe(0);
    const verified = await fx.api("POST", `/api/v1/snapshots/${second.id}/verify`);
    expect(verified.status).toBe(202);
    const outcome = await waitFor("the verification", async () => {
      const view = (await fx.api<SnapshotView>("GET", `/api/v1/snapshots/${second.id}`)).body;
      return view.verification.state !== "verifying" ? view.verification.state : undefined;
    });
    expect(outcome).toBe("passed");

    // Once no snapshot refers to them, groom removes them all.
    expect((await fx.api("DELETE", `/api/v1/snapshots/${second.id}`)).status).toBe(200);
    const emptied = await fx.api<{ blocksRemoved: number }>("POST", "/api/v1/groom");
    expect(emptied.body.blocksRemoved).toBe(manifestBlocks(parseManifest(second.manifest, second.id)).size);
  });
});
