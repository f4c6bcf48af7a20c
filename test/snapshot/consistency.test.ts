/**
 * A snapshot is the head database at one applied optime T while the daemon keeps applying: the
 * snapshot is slowed down (a pause after every block) and writes go on throughout. Each write's
 * oplog ts is known from the driver's session, so the state at T is known exactly: the inserts
 * with ts ≤ T are there and no later one, and a counter holds the number of increments ≤ T.
 */
import { createHash } from "node:crypto";
import { deserialize } from "bson";
import type { ClientSession, Timestamp } from "mongodb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseManifest } from "../../src/snapshot/manifest.js";
import { readCollection } from "../../src/snapshot/reader.js";
import type { snapshotView } from "../../src/server/routes/snapshots.js";
import { startActiveBackup, type ActiveBackup } from "../helpers/activeBackup.js";
import { withEmulator, type AnyDoc, type EmulatorFixture } from "../helpers/emulator.js";
import { withServer, type ServerFixture } from "../helpers/server.js";
import { waitFor } from "../helpers/wait.js";

type SnapshotView = ReturnType<typeof snapshotView> & { manifest?: unknown };

const compareTs = (a: { t: number; i: number }, b: { t: number; i: number }) => a.t - b.t || a.i - b.i;
const asTs = (ts: Timestamp) => ({ t: ts.high, i: ts.low });

describe("a snapshot under concurrent writes holds exactly the state at its T", () => {
  let source: EmulatorFixture;
  let fx: ServerFixture;
  let backup: ActiveBackup;

  beforeAll(async () => {
    source = await withEmulator();
    process.env.TIDEMARK_FAULT_SNAPSHOT_DELAY_MS = "30";
    try {
      fx = await withServer({
        sliceMb: 0.05,
        oplogFlushSeconds: 0.1,
        snapshotBlockBytes: 16 * 1024,
        snapshotSchedule: { enabled: false },
      });
    } finally {
      delete process.env.TIDEMARK_FAULT_SNAPSHOT_DELAY_MS;
    }
    const filler = Array.from({ length: 4000 }, (_, i) => ({
      _id: i,
      body: createHash("sha256").update(String(i)).digest("hex").repeat(4),
    }));
    await source.client.db("app").collection<AnyDoc>("filler").insertMany(filler);
    await source.client.db("app").collection<AnyDoc>("counter").insertOne({ _id: "c", value: 0 });
    backup = await startActiveBackup(fx, source, "rs");
    await backup.caughtUp();
  }, 180_000);

  afterAll(async () => {
    await backup?.agent.stop();
    await fx?.close();
    await source?.close();
  });

  it("inserts and increments with ts ≤ T are in it, later ones are not", async () => {
    const session: ClientSession = source.client.startSession();
    const inserts: Array<{ n: number; ts: { t: number; i: number } }> = [];
    const increments: Array<{ t: number; i: number }> = [];
    let writing = true;
    const app = source.client.db("app");
    const writer = (async () => {
      for (let n = 0; writing; n++) {
        await app.collection<AnyDoc>("events").insertOne({ _id: n, at: new Date() }, { session });
        inserts.push({ n, ts: asTs(session.operationTime!) });
        await app.collection<AnyDoc>("counter").updateOne({ _id: "c" }, { $inc: { value: 1 } }, { session });
        increments.push(asTs(session.operationTime!));
      }
    })();
    let ended: SnapshotView;
    try {
      // Some writes applied before the snapshot starts, more while it is written.
      await waitFor("writes applied in the head database", async () => {
        if (inserts.length < 20) return undefined;
        const applied = (await backup.view()).head.appliedTs;
        return applied !== null && compareTs(applied, inserts[19].ts) >= 0;
      });
      const started = await fx.api<SnapshotView>("POST", "/api/v1/deployments/rs/snapshots", {});
      expect(started.status).toBe(202);
      ended = await waitFor("the snapshot to end", async () => {
        const view = (await fx.api<SnapshotView>("GET", `/api/v1/snapshots/${started.body.id}?manifest=true`))
          .body;
        return view.status !== "writing" ? view : undefined;
      });
    } finally {
      writing = false;
      await writer;
      await session.endSession();
    }
    expect(ended.status, ended.error ?? "").toBe("complete");
    const manifest = parseManifest(ended.manifest, ended.id);
    const T = manifest.ts;
    // Writes happened on both sides of T, so the test means something.
    expect(inserts.some((w) => compareTs(w.ts, T) <= 0)).toBe(true);
    expect(inserts.some((w) => compareTs(w.ts, T) > 0)).toBe(true);
    // ...and the daemon applied past T meanwhile (the snapshot's view did not hold it back).
    const applied = (await backup.view()).head.appliedTs!;
    expect(compareTs(applied, T)).toBeGreaterThan(0);

    const store = await fx.server.context.snapshots!.stores.byLocation(manifest.store);
    const read = async (namespace: string) => {
      const collection = manifest.collections.find((c) => c.namespace === namespace);
      if (!collection) return [];
      const docs = [];
      for await (const raw of readCollection(manifest, collection, store.source)) docs.push(deserialize(raw));
      return docs;
    };
    const events = (await read("app.events")).map((doc) => doc._id as number);
    expect(events).toEqual(inserts.filter((w) => compareTs(w.ts, T) <= 0).map((w) => w.n));
    const [counter] = await read("app.counter");
    expect(counter.value).toBe(increments.filter((ts) => compareTs(ts, T) <= 0).length);
    expect((await read("app.filler")).length).toBe(4000);
  });
});
