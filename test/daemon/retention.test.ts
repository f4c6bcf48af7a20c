/**
 * The oplog retention window (src/daemon/retention.ts) on a real SQLite catalog and a real
 * file-system oplog store: only applied slices older than the window go, never the newest one,
 * objects and rows both.
 */
import { describe, expect, it } from "vitest";
import { Catalog } from "../../src/catalog/index.js";
import { removeExpiredOplogSlices } from "../../src/daemon/retention.js";
import type { OplogStore } from "../../src/oplogstore/oplogStore.js";
import { OPLOG_STREAM } from "../../src/protocol/agentProtocol.js";
import { useRetentionFixture } from "../helpers/retention.js";

const HOUR = 3600_000;
const NOW = Date.UTC(2026, 10, 24, 12);

describe("oplog retention window", () => {
  let catalog: Catalog;
  let store: OplogStore;
  let deploymentId: string;
  const { remaining, objects } = useRetentionFixture("tidemark-retention-", NOW, (fixture) => {
    ({ catalog, store, deploymentId } = fixture);
  });

  it("removes the applied slices whose newest entry is older than the window, objects and rows", async () => {
    // Window 4.5 h: slices 0..5 end 10..5 hours ago, 6..9 end 4..1 hours ago.
    const pass = { deploymentId, generation: 0, appliedSequence: 9, windowMs: 4.5 * HOUR, nowMs: NOW };
    expect(await removeExpiredOplogSlices(catalog, store, pass)).toBe(6);
    expect(remaining()).toEqual([6, 7, 8, 9]);
    expect(await objects()).toEqual([6, 7, 8, 9]);
    // Again: nothing more to do.
    expect(await removeExpiredOplogSlices(catalog, store, pass)).toBe(0);
  });

  it("never removes a slice the head database has not applied", async () => {
    const pass = { deploymentId, generation: 0, appliedSequence: 2, windowMs: HOUR / 2, nowMs: NOW };
    expect(await removeExpiredOplogSlices(catalog, store, pass)).toBe(3);
    expect(remaining()).toEqual([3, 4, 5, 6, 7, 8, 9]);
    const nothingApplied = { ...pass, appliedSequence: -1 };
    expect(await removeExpiredOplogSlices(catalog, store, nothingApplied)).toBe(0);
  });

  it("keeps the newest slice, whose sequence tells the agent where to resume", async () => {
    const pass = { deploymentId, generation: 0, appliedSequence: 9, windowMs: 1, nowMs: NOW };
    expect(await removeExpiredOplogSlices(catalog, store, pass)).toBe(9);
    expect(remaining()).toEqual([9]);
    const head = catalog.slices.streamHeads(deploymentId, 0).find((h) => h.stream === OPLOG_STREAM);
    expect(head?.lastSequence).toBe(9);
  });

  it("finishes the job after a crash between deleting an object and its row", async () => {
    await store.delete(`${deploymentId}/g0/oplog/0.slice`);
    const pass = { deploymentId, generation: 0, appliedSequence: 9, windowMs: 8.5 * HOUR, nowMs: NOW };
    expect(await removeExpiredOplogSlices(catalog, store, pass)).toBe(2);
    expect(remaining()).toEqual([2, 3, 4, 5, 6, 7, 8, 9]);
  });

  it("leaves other generations and deployments alone", async () => {
    const pass = { deploymentId, generation: 1, appliedSequence: 9, windowMs: 1, nowMs: NOW };
    expect(await removeExpiredOplogSlices(catalog, store, pass)).toBe(0);
    const other = catalog.deployments.create("other", "hash2").id;
    expect(
      await removeExpiredOplogSlices(catalog, store, { ...pass, generation: 0, deploymentId: other }),
    ).toBe(0);
    expect(remaining()).toHaveLength(10);
  });
});
