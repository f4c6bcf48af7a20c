/**
 * The point-in-time window of the oplog store: an oplog slice is removed once the head database
 * has applied it and its newest entry is older than the window (DESIGN.md: slices are kept for
 * point-in-time restores; none is removed before it is applied). The newest oplog slice always
 * stays, because the stream's head tells the agent where to resume.
 *
 * Counted from the snapshots that exist: a point-in-time restore to a time in the window starts
 * from the newest snapshot at or before it, so the slices after the newest complete snapshot at
 * or before the window's start stay too (`keepAfterSeconds`), however old.
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
  /** Slices whose newest entry is at or after this (seconds) stay (see `pointInTimeBase`). */
  keepAfterSeconds?: number;
}

/**
 * The ts (seconds) of the newest complete snapshot at or before the window's start (or of the
 * oldest entry of a transaction open at it, if earlier): restores to the start of the window
 * replay the oplog from there. Undefined without such a snapshot.
 */
export function pointInTimeBase(
  catalog: Catalog,
  deploymentId: string,
  windowStartSeconds: number,
): number | undefined {
  let base: { ts: number; from: number } | undefined;
  for (const snapshot of catalog.snapshots.forDeployment(deploymentId)) {
    if (snapshot.status !== "complete" || !snapshot.ts || snapshot.ts.t > windowStartSeconds) continue;
    // From the oldest entry of a transaction open at the snapshot: a restore replays from there.
    const heldFrom = (snapshot.manifest as { heldFrom?: { t: number } } | null)?.heldFrom;
    const from = Math.min(snapshot.ts.t, heldFrom?.t ?? snapshot.ts.t);
    if (base === undefined || snapshot.ts.t > base.ts) base = { ts: snapshot.ts.t, from };
  }
  return base?.from;
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
  const windowStart = Math.floor((pass.nowMs - pass.windowMs) / 1000);
  const beforeSeconds = Math.min(windowStart, pass.keepAfterSeconds ?? windowStart);
  const expired = catalog.slices.expiredOplogSlices(deploymentId, generation, beforeSeconds, maxSequence);
  for (const slice of expired) {
    // The object first: a crash in between leaves a row pointing at nothing (already applied,
    // never read again) rather than an object nobody knows about.
    await store.delete(slice.storeKey);
    catalog.slices.delete(deploymentId, generation, slice.stream, slice.sequence);
  }
  return expired.length;
}
