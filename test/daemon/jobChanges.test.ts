/**
 * The daemon when the job changes under it (real catalog, oplog store and head databases): a
 * resync while a step reads a slice of the old generation is not an error and the new generation
 * is built; an error of one generation does not outlive a resync; a terminated deployment's head
 * database is deleted.
 */
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Binary, Long, serialize, Timestamp, UUID } from "bson";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Catalog } from "../../src/catalog/index.js";
import type { SliceKind } from "../../src/catalog/slices.js";
import { Daemon } from "../../src/daemon/daemon.js";
import { openOplogStore } from "../../src/oplogstore/open.js";
import type { OplogStore } from "../../src/oplogstore/oplogStore.js";
import { sliceStoreKey } from "../../src/server/sliceCleanup.js";
import { putStoredSlice } from "../helpers/storedSlices.js";

const uuid = new UUID();
const insert = (t: number, id: number) =>
  Buffer.from(
    serialize({
      op: "i",
      ns: "d.c",
      ui: uuid,
      o: { _id: id },
      ts: new Timestamp({ t, i: 1 }),
      t: Long.fromNumber(1),
      v: Long.fromNumber(2),
      wall: new Date(t * 1000),
    }),
  );
const catalogEntry = Buffer.from(
  serialize({
    name: "c",
    type: "collection",
    uuid: new Binary(Buffer.from(uuid.buffer), 4),
    options: {},
    indexes: [],
  }),
);

describe("the daemon when the job changes", () => {
  let dir: string;
  let catalog: Catalog;
  let store: OplogStore;
  let deploymentId: string;
  let daemon: Daemon;
  const logs: string[] = [];
  /** Called before each store read: a test's way to act while the daemon is mid-step. */
  let beforeRead: ((key: string) => Promise<void>) | undefined;

  async function putSlice(
    generation: number,
    kind: SliceKind,
    stream: string,
    sequence: number,
    docs: Buffer[],
  ) {
    const firstTs = new Timestamp({ t: 10 + sequence, i: 1 });
    const header =
      kind === "oplog" ? { firstTs, lastTs: firstTs } : { namespace: stream.slice(stream.indexOf("/") + 1) };
    await putStoredSlice(catalog, store, { deploymentId, generation, kind, stream, sequence, docs, header });
  }

  /** Generation `generation` with T0, T1 and a catalog slice: what an agent leaves after a clone. */
  async function cloned(generation: number): Promise<void> {
    catalog.deployments.recordT0(deploymentId, { t: 9, i: 1 }, { bytes: 0, documents: 0, collections: 1 });
    catalog.deployments.recordCloneComplete(deploymentId, { t: 10, i: 1 });
    await putSlice(generation, "catalog", "catalog/d", 0, [catalogEntry]);
    await putSlice(generation, "oplog", "oplog", 0, [insert(10, 1)]);
  }

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), "tidemark-jobchange-"));
    catalog = Catalog.open(join(dir, "catalog.sqlite"));
    const real = await openOplogStore(join(dir, "oplogstore"), { dataDir: dir });
    store = Object.assign(Object.create(real) as OplogStore, {
      get: async (key: string) => {
        await beforeRead?.(key);
        return real.get(key);
      },
    });
    deploymentId = catalog.deployments.create("rs", "hash").id;
    catalog.deployments.beginInitialSync(deploymentId);
    logs.length = 0;
    daemon = new Daemon({
      catalog,
      store,
      dataDir: dir,
      log: (line) => logs.push(line),
      oplogRetentionMs: 1e9,
    });
  });
  afterEach(async () => {
    await daemon.stop();
    await store.close();
    catalog.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const generation = () => catalog.deployments.get(deploymentId)!.generation;

  it("a resync while a step reads an old slice is not an error; the new generation is built", async () => {
    await cloned(generation());
    await daemon.tick();
    await daemon.tick();
    expect(catalog.deployments.get(deploymentId)!.state).toBe("active");
    const old = generation();
    await putSlice(old, "oplog", "oplog", 1, [insert(11, 2)]);
    // The operator resyncs while the daemon reads oplog #1: the old generation's objects go.
    beforeRead = async (key) => {
      if (!key.includes("/oplog/")) return;
      beforeRead = undefined;
      catalog.deployments.beginInitialSync(deploymentId);
      await store.deletePrefix(`${deploymentId}/g${old}/`);
    };
    await daemon.tick();
    expect(generation()).toBe(old + 1);
    expect(daemon.status(deploymentId)?.error ?? null).toBeNull();
    expect(logs.join("\n")).not.toMatch(/backup daemon stopped/);
    expect(logs.join("\n")).toMatch(/step interrupted \(the job changed\)/);

    await cloned(generation());
    await daemon.tick();
    await daemon.tick();
    expect(catalog.deployments.get(deploymentId)!.state).toBe("active");
    expect(daemon.status(deploymentId)?.appliedTs).toEqual({ t: 10, i: 1 });
  });

  it("an error stops only its generation: after a resync the daemon works again", async () => {
    await cloned(generation());
    // A damaged slice: the deployment's work stops with an error naming it, and stays stopped.
    const damaged = sliceStoreKey(deploymentId, generation(), "oplog", 0);
    await store.put(damaged, Buffer.from("not a slice"));
    await daemon.tick();
    await daemon.tick();
    const error = daemon.status(deploymentId)?.error;
    expect(error).toMatch(/oplog#0/);
    expect(logs.join("\n")).toMatch(/tidemark backup resync rs/);
    // A resync starts the new generation's work afresh.
    catalog.deployments.beginInitialSync(deploymentId);
    await cloned(generation());
    await daemon.tick();
    await daemon.tick();
    expect(daemon.status(deploymentId)?.error ?? null).toBeNull();
    expect(catalog.deployments.get(deploymentId)!.state).toBe("active");
  });

  it("skips the documents of a collection missing from the catalog slice: the oplog creates and fills it", async () => {
    // An agent restarted mid-clone lists namespaces again and clones one created after T0.
    const later = new UUID();
    catalog.deployments.recordT0(deploymentId, { t: 9, i: 1 }, { bytes: 0, documents: 0, collections: 1 });
    catalog.deployments.recordCloneComplete(deploymentId, { t: 11, i: 1 });
    await putSlice(generation(), "catalog", "catalog/d", 0, [catalogEntry]);
    await putSlice(generation(), "documents", "documents/d.later", 0, [Buffer.from(serialize({ _id: "x" }))]);
    const entry = (t: number, doc: Record<string, unknown>) =>
      Buffer.from(
        serialize({
          ts: new Timestamp({ t, i: 1 }),
          t: Long.fromNumber(1),
          v: Long.fromNumber(2),
          wall: new Date(),
          ...doc,
        }),
      );
    await putSlice(generation(), "oplog", "oplog", 0, [
      entry(10, {
        op: "c",
        ns: "d.$cmd",
        ui: later,
        o: { create: "later", idIndex: { v: 2, key: { _id: 1 }, name: "_id_" } },
      }),
      entry(11, { op: "i", ns: "d.later", ui: later, o: { _id: "x" }, o2: { _id: "x" } }),
    ]);
    await daemon.tick();
    await daemon.tick();
    expect(daemon.status(deploymentId)?.error ?? null).toBeNull();
    expect(catalog.deployments.get(deploymentId)!.state).toBe("active");
    expect(logs.join("\n")).toMatch(/d\.later: documents slice #0 skipped/);
    const head = daemon.headDatabase(deploymentId)!;
    expect(head.documents.count(later)).toBe(1);
  });

  it("deletes a terminated deployment's head database", async () => {
    await cloned(generation());
    await daemon.tick();
    const headDir = join(dir, "headdb", deploymentId);
    expect(existsSync(headDir)).toBe(true);
    catalog.deployments.setState(deploymentId, "terminated", null);
    await daemon.tick();
    expect(existsSync(headDir)).toBe(false);
    expect(daemon.status(deploymentId)).toBeUndefined();
    expect(logs.join("\n")).toMatch(/rs: head database deleted \(deployment terminated\)/);
  });
});
