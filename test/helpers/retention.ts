/**
 * What the oplog retention tests start from: a real SQLite catalog and a real file-system oplog
 * store in a fresh directory, deployment "rs" in the catalog, and ten of its oplog slices, one an
 * hour, in both.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Catalog } from "../../src/catalog/index.js";
import { openOplogStore } from "../../src/oplogstore/open.js";
import type { OplogStore } from "../../src/oplogstore/oplogStore.js";
import { OPLOG_STREAM } from "../../src/protocol/agentProtocol.js";
import { afterEach, beforeEach } from "vitest";

export const HOUR = 3600_000;

export interface RetentionFixture {
  dir: string;
  catalog: Catalog;
  store: OplogStore;
  deploymentId: string;
  /** The sequences of the deployment's generation-0 oplog slices left in the catalog. */
  remaining(): number[];
  /** The sequences of the deployment's slice objects left in the store, in order. */
  objects(): Promise<number[]>;
  /** Closes the store and the catalog, and removes the directory. */
  close(): Promise<void>;
}

/**
 * A catalog and oplog store in a new directory named after `prefix`, with deployment "rs" and ten
 * applied-looking oplog slices of generation 0: slice s holds the minute before `nowMs` minus
 * (10 - s) hours (so the newest ends an hour before `nowMs`).
 */
export async function openRetentionFixture(prefix: string, nowMs: number): Promise<RetentionFixture> {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const catalog = Catalog.open(join(dir, "catalog.sqlite"));
  const store = await openOplogStore(join(dir, "oplogstore"), { dataDir: dir });
  const deploymentId = catalog.deployments.create("rs", "hash").id;
  for (let sequence = 0; sequence < 10; sequence++) {
    const t = Math.floor((nowMs - (10 - sequence) * HOUR) / 1000);
    const storeKey = `${deploymentId}/g0/oplog/${sequence}.slice`;
    await store.put(storeKey, Buffer.from(`slice ${sequence}`));
    catalog.slices.insert({
      deploymentId,
      generation: 0,
      stream: OPLOG_STREAM,
      sequence,
      kind: "oplog",
      namespace: null,
      firstTs: { t: t - 60, i: 1 },
      lastTs: { t, i: 1 },
      lastId: null,
      count: 1,
      bytes: 7,
      uncompressedBytes: 7,
      codec: "none",
      sha256: "0".repeat(64),
      storeKey,
      createdAt: t * 1000,
    });
  }
  return {
    dir,
    catalog,
    store,
    deploymentId,
    remaining: () => catalog.slices.list(deploymentId, 0, "oplog").map((slice) => slice.sequence),
    async objects() {
      const keys: string[] = [];
      for await (const object of store.list(`${deploymentId}/`)) keys.push(object.key);
      return keys.map((key) => Number(/(\d+)\.slice$/.exec(key)![1])).sort((a, b) => a - b);
    },
    async close() {
      await store.close();
      catalog.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * Opens a fresh `openRetentionFixture(prefix, nowMs)` before each test of the enclosing suite,
 * handing it to `opened`, and closes it after. Returns `remaining` and `objects` of the current
 * test's fixture.
 */
export function useRetentionFixture(
  prefix: string,
  nowMs: number,
  opened: (fixture: RetentionFixture) => void,
): Pick<RetentionFixture, "remaining" | "objects"> {
  let current: RetentionFixture | undefined;
  beforeEach(async () => {
    current = await openRetentionFixture(prefix, nowMs);
    opened(current);
  });
  afterEach(async () => {
    await current?.close();
    current = undefined;
  });
  const now = (): RetentionFixture => {
    if (!current) throw new Error("the retention fixture is open only inside a test");
    return current;
  };
  return { remaining: () => now().remaining(), objects: () => now().objects() };
}
