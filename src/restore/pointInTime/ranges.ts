/**
 * Restorable ranges of a deployment (DESIGN.md "Restores"): a point in time T can be restored when
 * a complete snapshot at or before T exists and the oplog slices from that snapshot up to T are
 * all stored. The oplog stream is contiguous by sequence, so stored slices with consecutive
 * sequences (a run) hold every entry between the run's first entry and its last; a slice removed
 * by the retention window, or a resync (a new generation), breaks the oplog into gaps. Every
 * complete snapshot is also restorable on its own, as a single point.
 */
import type { OpTimeJson } from "../../protocol/agentProtocol.js";
import { compareOpTimes, formatOpTime } from "../../protocol/optime.js";

/** What ranges are computed from: a deployment's snapshots and its current generation's oplog slices. */
export interface RangeSnapshot {
  id: string;
  ts: OpTimeJson;
  /** Null for a snapshot taken before generations were recorded: restorable only as itself. */
  generation: number | null;
  /** Oldest entry of a transaction open at `ts` (the manifest's `heldFrom`): the oplog must reach back to it. */
  heldFrom?: OpTimeJson;
}

export interface RangeSlice {
  sequence: number;
  firstTs: OpTimeJson;
  lastTs: OpTimeJson;
}

export interface RestoreRange {
  from: OpTimeJson;
  to: OpTimeJson;
  /** The snapshots a restore in this range may start from, oldest first. */
  snapshots: string[];
  /** "oplog": any entry from `from` to `to`; "snapshot": just the snapshot at `from` (= `to`). */
  kind: "oplog" | "snapshot";
}

interface OplogRun {
  first: RangeSlice;
  last: RangeSlice;
}

/** Stored slices cut where a sequence is missing, in order. */
function oplogRuns(slices: readonly RangeSlice[]): OplogRun[] {
  const sorted = [...slices].sort((a, b) => a.sequence - b.sequence);
  const runs: OplogRun[] = [];
  for (const slice of sorted) {
    const current = runs[runs.length - 1];
    if (current && slice.sequence === current.last.sequence + 1) current.last = slice;
    else runs.push({ first: slice, last: slice });
  }
  return runs;
}

/** The run that holds every entry after `snapshot.ts` (and since its `heldFrom`), if one does. */
function runAfter(runs: readonly OplogRun[], snapshot: RangeSnapshot): OplogRun | undefined {
  const needFrom = snapshot.heldFrom ?? snapshot.ts;
  return runs.find(
    (run) =>
      compareOpTimes(run.first.firstTs, needFrom) <= 0 && compareOpTimes(run.last.lastTs, snapshot.ts) >= 0,
  );
}

/** How far each snapshot reaches: from its ts to the end of the oplog run after it (or just itself). */
export function snapshotReach(
  snapshots: readonly RangeSnapshot[],
  slices: readonly RangeSlice[],
  generation: number,
): RestoreRange[] {
  const runs = oplogRuns(slices);
  return snapshots.map((snapshot) => {
    const run = snapshot.generation === generation ? runAfter(runs, snapshot) : undefined;
    const to = run && compareOpTimes(run.last.lastTs, snapshot.ts) > 0 ? run.last.lastTs : snapshot.ts;
    return {
      from: snapshot.ts,
      to,
      snapshots: [snapshot.id],
      kind: compareOpTimes(to, snapshot.ts) > 0 ? "oplog" : "snapshot",
    };
  });
}

/** The restorable ranges, oldest first: the snapshots' reaches, overlapping ones merged. */
export function restorableRanges(reach: readonly RestoreRange[]): RestoreRange[] {
  const sorted = [...reach].sort((a, b) => compareOpTimes(a.from, b.from) || compareOpTimes(a.to, b.to));
  const merged: RestoreRange[] = [];
  for (const range of sorted) {
    const last = merged[merged.length - 1];
    if (last && compareOpTimes(range.from, last.to) <= 0) {
      if (compareOpTimes(range.to, last.to) > 0) last.to = range.to;
      last.snapshots.push(...range.snapshots);
      if (compareOpTimes(last.to, last.from) > 0) last.kind = "oplog";
    } else merged.push({ ...range, snapshots: [...range.snapshots] });
  }
  return merged;
}

/**
 * A point to restore to: an exact oplog timestamp, or a wall-clock second (`--at`), which takes
 * every entry of that second (the oplog's clock has second precision: ending at the second's
 * first entry is how restores "stop a second early").
 */
export type RestoreTarget = { kind: "ts"; ts: OpTimeJson } | { kind: "second"; seconds: number };

export function describeTarget(target: RestoreTarget): string {
  return target.kind === "ts"
    ? `${formatOpTime(target.ts)} (${isoOf(target.ts)})`
    : `${new Date(target.seconds * 1000).toISOString()}`;
}

export function isoOf(ts: OpTimeJson): string {
  return new Date(ts.t * 1000).toISOString();
}

/** Raised for a target no range holds; names the nearest restorable points. */
export class TargetNotRestorableError extends Error {
  override readonly name = "TargetNotRestorableError";
  readonly code = "TARGET_NOT_RESTORABLE";
  constructor(
    message: string,
    readonly before?: OpTimeJson,
    readonly after?: OpTimeJson,
  ) {
    super(message);
  }
}

export interface LocatedTarget {
  range: RestoreRange;
  /** The newest ts to apply: the target, or a range's last entry for a second it ends in. */
  ts: OpTimeJson;
}

/** The range holding `target` and the exact ts to restore to; TargetNotRestorableError if none. */
export function locateTarget(
  ranges: readonly RestoreRange[],
  target: RestoreTarget,
  deployment: string,
): LocatedTarget {
  const upper: OpTimeJson = target.kind === "ts" ? target.ts : { t: target.seconds, i: 0xffffffff };
  const holding = ranges.find((r) => compareOpTimes(r.from, upper) <= 0 && compareOpTimes(upper, r.to) <= 0);
  if (holding) return { range: holding, ts: upper };
  // The second a range ends in (none holds all of it): everything stored of it, up to that end.
  if (target.kind === "second") {
    const ending = [...ranges]
      .reverse()
      .find((r) => compareOpTimes(r.from, upper) <= 0 && r.to.t === target.seconds);
    if (ending) return { range: ending, ts: ending.to };
  }
  const before = [...ranges].reverse().find((r) => compareOpTimes(r.to, upper) < 0)?.to;
  const after = ranges.find((r) => compareOpTimes(r.from, upper) > 0)?.from;
  const nearest = [
    before && `before it ${formatOpTime(before)} (${isoOf(before)})`,
    after && `after it ${formatOpTime(after)} (${isoOf(after)})`,
  ].filter(Boolean);
  const why =
    ranges.length === 0
      ? "it has no complete snapshot to start from"
      : !before
        ? "that is before its oldest snapshot"
        : !after
          ? "that is after the newest oplog entry stored (the agent sends the oplog every few seconds: a moment ago may need a moment more)"
          : "that falls in a gap of the oplog (between ranges)";
  throw new TargetNotRestorableError(
    `deployment '${deployment}' cannot be restored to ${describeTarget(target)}: ${why}` +
      (nearest.length ? `; the nearest restorable points are ${nearest.join(" and ")}` : ""),
    before,
    after,
  );
}

/**
 * The snapshot a restore to `ts` starts from: of those whose own reach holds `ts`, the newest
 * (the least oplog to replay). `ts` comes from `locateTarget`, so one exists.
 */
export function baseSnapshotId(reach: readonly RestoreRange[], ts: OpTimeJson): string {
  const holding = reach
    .filter((r) => compareOpTimes(r.from, ts) <= 0 && compareOpTimes(ts, r.to) <= 0)
    .sort((a, b) => compareOpTimes(b.from, a.from));
  if (holding.length === 0) throw new Error(`no snapshot reaches ${formatOpTime(ts)}`);
  return holding[0].snapshots[0];
}
