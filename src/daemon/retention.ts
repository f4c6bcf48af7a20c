/**
 * The point-in-time window of the oplog store: an oplog slice is removed once the head database
 * has applied it and its newest entry is older than the window (DESIGN.md: slices are kept for
 * point-in-time restores; none is removed before it is applied). The newest oplog slice always
 * stays, because the stream's head tells the agent where to resume.
 */
import type { Catalog } from "../catalog/index.js";
import type { OplogStore } from "../oplogstore/oplogStore.js";
import { OPLOG_STREAM } from "../protocol/agentProtocol.js";

export interface RetentionPass {
  deploymentId: string;
  generation: number;
  /** The head database's oplog cursor: slices up to this sequence are applied. */
  appliedSequence: number;
  /** The window in milliseconds, and the time it ends at (now). */
  windowMs: number;
  nowMs: number;
}

/** Removes what the window lets go; returns how many slices were removed. */
export async function removeExpiredOplogSlices(
  catalog: Catalog,
  store: OplogStore,
  pass: RetentionPass,
): Promise<number> {
  const { deploymentId, generation } = pass;
  const newest = catalog.slices
    .streamHeads(deploymentId, generation)
    .find((head) => head.stream === OPLOG_STREAM)?.lastSequence;
  if (newest === undefined) return 0;
  const maxSequence = Math.min(pass.appliedSequence, newest - 1);
  const beforeSeconds = Math.floor((pass.nowMs - pass.windowMs) / 1000);
  const expired = catalog.slices.expiredOplogSlices(deploymentId, generation, beforeSeconds, maxSequence);
  for (const slice of expired) {
    // The object first: a crash in between leaves a row pointing at nothing (already applied,
    // never read again) rather than an object nobody knows about.
    await store.delete(slice.storeKey);
    catalog.slices.delete(deploymentId, generation, slice.stream, slice.sequence);
  }
  return expired.length;
}
