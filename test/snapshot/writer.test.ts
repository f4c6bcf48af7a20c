/**
 * The snapshot writer on a head database directly (no server): change tracking starts with the
 * first snapshot, deltas build only on a snapshot of the same head database (a resynced one starts
 * its change numbers over), and what is read back equals the head database's dbHash.
 */
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Long, serialize, Timestamp, UUID } from "bson";
import { afterEach, describe, expect, it } from "vitest";
import { encodeIdKey } from "../../src/bson/keyEncoding.js";
import type { HeadDatabase } from "../../src/headdb/headDatabase.js";
import type { SnapshotManifest } from "../../src/snapshot/manifest.js";
import { SnapshotSchedule } from "../../src/snapshot/policy.js";
import { readCollection } from "../../src/snapshot/reader.js";
import { SqliteBlockStore } from "../../src/snapshot/stores/index.js";
import { writeSnapshot } from "../../src/snapshot/writer.js";
import { tempHead, type TempHead } from "../headdb/helpers.js";

const uuid = new UUID("33333333-3333-4333-8333-333333333333");
let heads: TempHead[] = [];
let dir: string | undefined;

afterEach(async () => {
  for (const temp of heads) await temp.dispose();
  heads = [];
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});

function headWith(count: number): HeadDatabase {
  const temp = tempHead("tidemark-writer-");
  heads.push(temp);
  const head = temp.head;
  head.write(() => {
    head.createCollection({ uuid, db: "app", name: "items" });
    head.insertDocuments(
      uuid,
      Array.from({ length: count }, (_, i) => serialize({ _id: i, text: `item ${i} `.repeat(20) })),
    );
    head.state.setAppliedOptime({ ts: Timestamp.fromBits(1, 1_700_000_000), t: Long.fromNumber(1) });
  });
  return head;
}

async function snapshot(head: HeadDatabase, store: SqliteBlockStore, previous?: SnapshotManifest) {
  return writeSnapshot({
    snapshotId: `s-${Math.random()}`,
    deploymentId: "d",
    deploymentName: "d",
    head,
    target: { kind: "blockstore", blocks: store },
    previous,
    chain: SnapshotSchedule.parse({}),
    referBlocks: () => {},
    targetBlockBytes: 8 * 1024,
  });
}

async function readBackMd5(manifest: SnapshotManifest, store: SqliteBlockStore): Promise<string> {
  const collection = manifest.collections.find((c) => c.namespace === "app.items")!;
  const md5 = createHash("md5");
  for await (const doc of readCollection(manifest, collection, { kind: "blocks", blocks: store }))
    md5.update(doc);
  return md5.digest("hex");
}

describe("snapshot writer", () => {
  it("tracks changes from the first snapshot on; a delta holds them; a resynced head database starts from bases", async () => {
    dir = mkdtempSync(join(tmpdir(), "tidemark-writer-store-"));
    const store = await SqliteBlockStore.open(join(dir, "blocks.sqlite"));
    try {
      const head = headWith(2000);
      expect(head.changes.isTracking()).toBe(false);
      const first = await snapshot(head, store);
      expect(head.changes.isTracking()).toBe(true);
      const runs = (m: SnapshotManifest) => m.collections.find((c) => c.namespace === "app.items")!.runs!;
      expect(runs(first.manifest).map((r) => r.kind)).toEqual(["base"]);
      expect(first.manifest.headId).not.toBe("");

      head.write(() => head.insertDocuments(uuid, [serialize({ _id: 7, text: "changed" })]));
      head.write(() => head.documents.delete(uuid, encodeIdKey(8)));
      const second = await snapshot(head, store, first.manifest);
      expect(runs(second.manifest).map((r) => r.kind)).toEqual(["base", "delta"]);
      const delta = runs(second.manifest)[1];
      expect({ count: delta.count, deletions: delta.deletions }).toEqual({ count: 2, deletions: 1 });
      expect(second.storedBytes).toBeLessThan(first.storedBytes / 20);
      expect(await readBackMd5(second.manifest, store)).toBe(head.dbHash("app").collections.items);

      // The same deployment resynced: a new head database with the same UUIDs and change numbers
      // that start over. Building on the old chain would miss changes; it writes a base.
      const resynced = headWith(2000);
      resynced.write(() => resynced.insertDocuments(uuid, [serialize({ _id: 9, text: "after resync" })]));
      const third = await snapshot(resynced, store, second.manifest);
      expect(third.manifest.headId).not.toBe(second.manifest.headId);
      expect(runs(third.manifest).map((r) => r.kind)).toEqual(["base"]);
      expect(await readBackMd5(third.manifest, store)).toBe(resynced.dbHash("app").collections.items);
    } finally {
      await store.close();
    }
  });
});
