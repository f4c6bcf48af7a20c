/**
 * The oplog retention window with snapshots in the catalog (src/daemon/retention.ts): a
 * point-in-time restore to the window's start replays the oplog from the newest complete snapshot
 * at or before it, so the slices after that snapshot stay however old they are, and the ones
 * before it go. Without such a snapshot the plain window applies; snapshots being written, failed
 * ones, newer ones and other deployments' do not count.
 */
import { describe, expect, it } from "vitest";
import { Catalog } from "../../src/catalog/index.js";
import { pointInTimeBase, removeExpiredOplogSlices } from "../../src/daemon/retention.js";
import type { OplogStore } from "../../src/oplogstore/oplogStore.js";
import { useRetentionFixture } from "../helpers/retention.js";

const HOUR = 3600_000;
const NOW = Date.UTC(2026, 10, 24, 12);
const WINDOW = 4.5 * HOUR;
const seconds = (ms: number) => Math.floor(ms / 1000);
const WINDOW_START = seconds(NOW - WINDOW);

describe("oplog retention with snapshots: the point-in-time base", () => {
  let catalog: Catalog;
  let store: OplogStore;
  let deploymentId: string;
  const { remaining, objects } = useRetentionFixture("tidemark-snapshot-retention-", NOW, (fixture) => {
    ({ catalog, store, deploymentId } = fixture);
  });

  /** A snapshot of the deployment at `t` (seconds), in the state asked for. */
  function snapshotAt(
    t: number,
    status: "complete" | "failed" | "writing" = "complete",
    of = deploymentId,
    manifest: Record<string, unknown> = {},
  ) {
    const record = catalog.snapshots.create({
      deploymentId: of,
      deploymentName: "rs",
      trigger: "scheduled",
      store: "file:///tmp/blockstore.sqlite",
      storeKind: "blockstore",
      generation: 0,
    });
    if (status === "writing") return record;
    catalog.snapshots.complete(record.id, {
      ts: { t, i: 5 },
      wallTime: t * 1000,
      changeNumber: 1,
      logicalBytes: 1,
      storedBytes: 1,
      manifest,
    });
    // A failed one with a T, as if it had failed after reading the head database: still no base.
    if (status === "failed")
      catalog.db
        .prepare("UPDATE snapshots SET status = 'failed', error = 'test' WHERE id = ?")
        .run(record.id);
    return record;
  }

  /** One retention pass as the daemon makes it (src/daemon/daemon.ts enforceRetention). */
  const pass = () =>
    removeExpiredOplogSlices(catalog, store, {
      deploymentId,
      generation: 0,
      appliedSequence: 9,
      windowMs: WINDOW,
      nowMs: NOW,
      keepAfterSeconds: pointInTimeBase(catalog, deploymentId, WINDOW_START),
    });

  it("keeps the slices after the newest complete snapshot at or before the window's start, removes older ones", async () => {
    // Snapshots 9.5 h and 7.5 h ago; the window starts 4.5 h ago. From the one 7.5 h ago a
    // restore to the window's start needs slices 3 (ends 7 h ago) and on.
    snapshotAt(seconds(NOW - 9.5 * HOUR));
    snapshotAt(seconds(NOW - 7.5 * HOUR));
    expect(pointInTimeBase(catalog, deploymentId, WINDOW_START)).toBe(seconds(NOW - 7.5 * HOUR));
    expect(await pass()).toBe(3);
    expect(remaining()).toEqual([3, 4, 5, 6, 7, 8, 9]);
    expect(await objects()).toEqual([3, 4, 5, 6, 7, 8, 9]);
    expect(await pass()).toBe(0);
  });

  it("keeps the slice the snapshot's T falls in, and one ending in the same second", async () => {
    // T 30 s into slice 5's minute: slice 5 holds entries after T.
    snapshotAt(seconds(NOW - 5 * HOUR) - 30);
    expect(await pass()).toBe(5);
    expect(remaining()).toEqual([5, 6, 7, 8, 9]);
    // T in the second slice 5's newest entry is in (a ts of the same second may come after T).
    snapshotAt(seconds(NOW - 5 * HOUR));
    expect(await pass()).toBe(0);
    expect(remaining()).toEqual([5, 6, 7, 8, 9]);
  });

  it("keeps the slices back to the oldest entry of a transaction open at the base snapshot", async () => {
    // The snapshot 7.5 h ago held a transaction begun 8.5 h ago: slice 1 (ends 9 h ago) may go,
    // slice 2 (8 h ago) holds the transaction's first entry and stays.
    snapshotAt(seconds(NOW - 7.5 * HOUR), "complete", deploymentId, {
      heldFrom: { t: seconds(NOW - 8.5 * HOUR), i: 1 },
    });
    expect(pointInTimeBase(catalog, deploymentId, WINDOW_START)).toBe(seconds(NOW - 8.5 * HOUR));
    expect(await pass()).toBe(2);
    expect(remaining()).toEqual([2, 3, 4, 5, 6, 7, 8, 9]);
  });

  it("a snapshot exactly at the window's start is the base", async () => {
    snapshotAt(WINDOW_START);
    expect(pointInTimeBase(catalog, deploymentId, WINDOW_START)).toBe(WINDOW_START);
    // Slices 0..5 end 10..5 h ago, before it: all go, as with the plain window.
    expect(await pass()).toBe(6);
    expect(remaining()).toEqual([6, 7, 8, 9]);
  });

  it("without a snapshot at or before the window's start, the plain window applies", async () => {
    expect(pointInTimeBase(catalog, deploymentId, WINDOW_START)).toBeUndefined();
    // Snapshots inside the window are no base for its start.
    snapshotAt(seconds(NOW - 2 * HOUR));
    snapshotAt(WINDOW_START + 1);
    expect(pointInTimeBase(catalog, deploymentId, WINDOW_START)).toBeUndefined();
    expect(await pass()).toBe(6);
    expect(remaining()).toEqual([6, 7, 8, 9]);
  });

  it("snapshots inside the window do not move the base: the newest one at or before the start does", async () => {
    snapshotAt(seconds(NOW - 8.5 * HOUR));
    snapshotAt(seconds(NOW - 1 * HOUR));
    expect(await pass()).toBe(2);
    expect(remaining()).toEqual([2, 3, 4, 5, 6, 7, 8, 9]);
  });

  it("failed snapshots and snapshots being written are no base", async () => {
    snapshotAt(seconds(NOW - 9.5 * HOUR));
    snapshotAt(seconds(NOW - 6.5 * HOUR), "failed");
    snapshotAt(0, "writing");
    expect(pointInTimeBase(catalog, deploymentId, WINDOW_START)).toBe(seconds(NOW - 9.5 * HOUR));
    expect(await pass()).toBe(1);
    expect(remaining()).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9]);
  });

  it("only failed or unfinished snapshots: the plain window applies", async () => {
    snapshotAt(seconds(NOW - 6.5 * HOUR), "failed");
    snapshotAt(0, "writing");
    expect(pointInTimeBase(catalog, deploymentId, WINDOW_START)).toBeUndefined();
    expect(await pass()).toBe(6);
    expect(remaining()).toEqual([6, 7, 8, 9]);
  });

  it("another deployment's snapshots do not count", async () => {
    const other = catalog.deployments.create("other", "hash2").id;
    snapshotAt(seconds(NOW - 9.5 * HOUR), "complete", other);
    expect(pointInTimeBase(catalog, deploymentId, WINDOW_START)).toBeUndefined();
    expect(pointInTimeBase(catalog, other, WINDOW_START)).toBe(seconds(NOW - 9.5 * HOUR));
    expect(await pass()).toBe(6);
  });

  it("when groom deletes the base, the next older snapshot is the base; without any, the plain window", async () => {
    const old = snapshotAt(seconds(NOW - 9.5 * HOUR));
    const newer = snapshotAt(seconds(NOW - 6.5 * HOUR));
    // Slices 0..3 end 10..7 h ago, before the base.
    expect(await pass()).toBe(4);
    catalog.snapshots.delete(newer.id);
    expect(pointInTimeBase(catalog, deploymentId, WINDOW_START)).toBe(seconds(NOW - 9.5 * HOUR));
    expect(await pass()).toBe(0);
    catalog.snapshots.delete(old.id);
    expect(await pass()).toBe(2);
    expect(remaining()).toEqual([6, 7, 8, 9]);
  });

  it("still never removes a slice that is not applied, nor the newest one", async () => {
    snapshotAt(seconds(NOW - 0.5 * HOUR));
    const base = pointInTimeBase(catalog, deploymentId, seconds(NOW));
    expect(base).toBe(seconds(NOW - 0.5 * HOUR));
    const removed = await removeExpiredOplogSlices(catalog, store, {
      deploymentId,
      generation: 0,
      appliedSequence: 9,
      windowMs: 0,
      nowMs: NOW,
      keepAfterSeconds: base,
    });
    expect(removed).toBe(9);
    expect(remaining()).toEqual([9]);
    const unapplied = await removeExpiredOplogSlices(catalog, store, {
      deploymentId,
      generation: 0,
      appliedSequence: -1,
      windowMs: 0,
      nowMs: NOW + 10 * HOUR,
    });
    expect(unapplied).toBe(0);
  });
});
