/**
 * fetching_missing_documents, step by step on a real catalog, oplog store and head database, with
 * slices written as the agent writes them: a document the clone missed is updated in the oplog,
 * the daemon asks for it, the agent's copy (read at some optime) arrives while newer oplog slices
 * arrive too. The head database must end with the newest version, never the agent's older copy.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Binary, deserialize, Long, serialize, Timestamp, UUID } from "bson";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Catalog } from "../../src/catalog/index.js";
import type { DeploymentRecord } from "../../src/catalog/deployments.js";
import type { SliceKind } from "../../src/catalog/slices.js";
import { DeploymentWorker } from "../../src/daemon/deploymentWorker.js";
import { idKeyOf } from "../../src/headdb/index.js";
import { openOplogStore } from "../../src/oplogstore/open.js";
import type { OplogStore } from "../../src/oplogstore/oplogStore.js";
import { putStoredSlice } from "../helpers/storedSlices.js";

const uuid = new UUID();
const ts = (t: number) => new Timestamp({ t, i: 1 });
const update = (t: number, id: number, v: number) =>
  Buffer.from(
    serialize({
      op: "u",
      ns: "d.c",
      ui: uuid,
      o: { $v: 2, diff: { u: { v } } },
      o2: { _id: id },
      ts: ts(t),
      t: Long.fromNumber(1),
      v: Long.fromNumber(2),
      wall: new Date(t * 1000),
    }),
  );

describe("fetching missing documents", () => {
  let dir: string;
  let catalog: Catalog;
  let store: OplogStore;
  let deploymentId: string;
  let worker: DeploymentWorker;
  let record: DeploymentRecord;

  async function putSlice(
    kind: SliceKind,
    stream: string,
    sequence: number,
    docs: Buffer[],
    extra: { namespace?: string; firstTs?: Timestamp; lastTs?: Timestamp } = {},
  ): Promise<void> {
    await putStoredSlice(catalog, store, {
      deploymentId,
      generation: 0,
      kind,
      stream,
      sequence,
      docs,
      header: extra,
    });
  }
  const putOplog = (sequence: number, entries: Buffer[], first: number, last: number) =>
    putSlice("oplog", "oplog", sequence, entries, { firstTs: ts(first), lastTs: ts(last) });
  const document = (id: number) => {
    const raw = worker.headDatabase.documents.get(uuid, idKeyOf(serialize({ _id: id })));
    return raw && deserialize(raw);
  };
  const phase = () => catalog.deployments.get(deploymentId)!.phase;

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), "tidemark-missing-"));
    catalog = Catalog.open(join(dir, "catalog.sqlite"));
    store = await openOplogStore(join(dir, "oplogstore"), { dataDir: dir });
    deploymentId = catalog.deployments.create("rs", "hash").id;
    catalog.deployments.setState(deploymentId, "initial_sync", "transferring");
    record = {
      ...catalog.deployments.get(deploymentId)!,
      t0: { t: 9, i: 1 },
      cloneCompleteAt: { t: 10, i: 1 },
    };
    const collection = {
      name: "c",
      type: "collection",
      uuid: new Binary(Buffer.from(uuid.buffer), 4),
      options: {},
      indexes: [{ v: 2, key: { _id: 1 }, name: "_id_" }],
    };
    await putSlice("catalog", "catalog/d", 0, [Buffer.from(serialize(collection))], { namespace: "d" });
    // The clone has _id 2 but missed _id 1, which the oplog updates at t=10.
    await putSlice("documents", "documents/d.c", 0, [Buffer.from(serialize({ _id: 2, v: 0 }))], {
      namespace: "d.c",
    });
    await putOplog(0, [update(10, 1, 1)], 10, 10);
    worker = new DeploymentWorker({
      deploymentId,
      path: join(dir, "headdb"),
      catalog,
      store,
      log: () => {},
      stopping: () => false,
    });
  });
  afterEach(async () => {
    await worker.close();
    await store.close();
    catalog.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** Steps until the daemon has asked the agent for _id 1; returns the request id. */
  async function untilAsked(): Promise<string> {
    for (let k = 0; k < 5; k++) {
      await worker.step(record);
      const [request] = catalog.missing.pending(deploymentId, 0);
      if (request) return request.id;
    }
    throw new Error("the daemon never asked for the missing document");
  }

  it("an update arriving while the agent reads is applied after the agent's copy, not lost under it", async () => {
    const requestId = await untilAsked();
    expect(phase()).toBe("fetching_missing_documents");
    expect(worker.status().missing).toBe(1);
    // The agent reads _id 1 at t=11 (v: 2); the deployment sets v: 3 at t=12. The oplog slice
    // with both updates can be stored before the answer: the daemon must not apply it yet.
    await putOplog(1, [update(11, 1, 2), update(12, 1, 3)], 11, 12);
    await worker.step(record);
    expect(worker.status().oplogSlicesApplied).toBe(1);
    await putSlice("missing", `missing/${requestId}`, 0, [Buffer.from(serialize({ _id: 1, v: 2 }))], {
      namespace: "d.c",
      lastTs: ts(11),
    });
    for (let k = 0; k < 5 && phase() !== "complete"; k++) await worker.step(record);
    expect(phase()).toBe("complete");
    expect(document(1)).toEqual({ _id: 1, v: 3 });
    expect(worker.status().missing).toBe(0);
    expect(worker.status().missingAsked).toBe(1);
  });

  it("stays in the phase until the oplog reaches the optime the agent read at", async () => {
    const requestId = await untilAsked();
    // The agent read at t=14, later than any oplog slice stored yet (oplog slices flush later).
    await putSlice("missing", `missing/${requestId}`, 0, [Buffer.from(serialize({ _id: 1, v: 5 }))], {
      namespace: "d.c",
      lastTs: ts(14),
    });
    for (let k = 0; k < 3; k++) await worker.step(record);
    expect(phase()).toBe("fetching_missing_documents");
    await putOplog(1, [update(13, 1, 4), update(14, 1, 5)], 13, 14);
    for (let k = 0; k < 5 && phase() !== "complete"; k++) await worker.step(record);
    expect(phase()).toBe("complete");
    expect(document(1)).toEqual({ _id: 1, v: 5 });
  });

  it("forgets an _id the agent did not find (deleted since)", async () => {
    const requestId = await untilAsked();
    await putSlice("missing", `missing/${requestId}`, 0, [], { namespace: "d.c", lastTs: ts(10) });
    for (let k = 0; k < 5 && phase() !== "complete"; k++) await worker.step(record);
    expect(phase()).toBe("complete");
    expect(document(1)).toBeUndefined();
    expect(worker.status().missing).toBe(0);
  });
});
