/**
 * Restorable ranges (src/restore/pointInTime/ranges.ts): which points a set of snapshots and
 * stored oplog slices can restore, where the gaps are, which snapshot a restore starts from, and
 * the nearest points named for a target that cannot be restored.
 */
import { describe, expect, it } from "vitest";
import {
  baseSnapshotId,
  locateTarget,
  restorableRanges,
  snapshotReach,
  TargetNotRestorableError,
  type RangeSlice,
  type RangeSnapshot,
} from "../../src/restore/pointInTime/index.js";

const ts = (t: number, i = 1) => ({ t, i });
/** Slice `sequence` holding the entries of seconds `from` to `to`. */
const slice = (sequence: number, from: number, to: number): RangeSlice => ({
  sequence,
  firstTs: ts(from),
  lastTs: ts(to, 9),
});
const snap = (id: string, t: number, extra: Partial<RangeSnapshot> = {}): RangeSnapshot => ({
  id,
  ts: ts(t, 9),
  generation: 1,
  ...extra,
});

describe("restorable ranges", () => {
  const slices = [slice(0, 100, 109), slice(1, 110, 119), slice(2, 120, 129), slice(3, 130, 139)];

  it("runs from the oldest snapshot to the newest stored entry, merging snapshots", () => {
    const ranges = restorableRanges(snapshotReach([snap("a", 109), snap("b", 125)], slices, 1));
    expect(ranges).toEqual([{ from: ts(109, 9), to: ts(139, 9), snapshots: ["a", "b"], kind: "oplog" }]);
  });

  it("cuts at a missing slice; a snapshot past the gap starts a new range", () => {
    const withGap = slices.filter((s) => s.sequence !== 2);
    const ranges = restorableRanges(snapshotReach([snap("a", 109), snap("b", 130)], withGap, 1));
    expect(ranges.map((r) => [r.from, r.to, r.snapshots])).toEqual([
      [ts(109, 9), ts(119, 9), ["a"]],
      [ts(130, 9), ts(139, 9), ["b"]],
    ]);
  });

  it("keeps a snapshot of another generation, or without oplog after it, as a single point", () => {
    const ranges = restorableRanges(
      snapshotReach(
        [snap("old", 50, { generation: 0 }), snap("unknown", 60, { generation: null }), snap("a", 139)],
        slices,
        1,
      ),
    );
    expect(ranges.map((r) => [r.from.t, r.to.t, r.kind])).toEqual([
      [50, 50, "snapshot"],
      [60, 60, "snapshot"],
      [139, 139, "snapshot"],
    ]);
  });

  it("needs the oplog back to the oldest open transaction entry (heldFrom)", () => {
    const later = slices.filter((s) => s.sequence >= 1);
    const open = snap("a", 115, { heldFrom: ts(105) });
    expect(restorableRanges(snapshotReach([open], later, 1))[0].kind).toBe("snapshot");
    expect(restorableRanges(snapshotReach([open], slices, 1))[0].to).toEqual(ts(139, 9));
  });

  it("has nothing to restore without a snapshot", () => {
    expect(restorableRanges(snapshotReach([], slices, 1))).toEqual([]);
    expect(() => locateTarget([], { kind: "ts", ts: ts(120) }, "rs")).toThrow(/no complete snapshot/);
  });
});

describe("locating a target", () => {
  const slices = [slice(0, 100, 109), slice(1, 110, 119), slice(3, 130, 139)];
  const snapshots = [snap("a", 105), snap("b", 112), snap("c", 131)];
  const reach = snapshotReach(snapshots, slices, 1);
  const ranges = restorableRanges(reach);

  it("restores an exact ts from the newest snapshot at or before it", () => {
    const located = locateTarget(ranges, { kind: "ts", ts: ts(115, 3) }, "rs");
    expect(located.ts).toEqual(ts(115, 3));
    expect(baseSnapshotId(reach, located.ts)).toBe("b");
    expect(baseSnapshotId(reach, ts(112, 9))).toBe("b");
    expect(baseSnapshotId(reach, ts(112, 8))).toBe("a");
  });

  it("takes every entry of a wall-clock second, up to the range's end in its last second", () => {
    expect(locateTarget(ranges, { kind: "second", seconds: 115 }, "rs").ts).toEqual(ts(115, 0xffffffff));
    expect(locateTarget(ranges, { kind: "second", seconds: 119 }, "rs").ts).toEqual(ts(119, 9));
    expect(locateTarget(ranges, { kind: "second", seconds: 139 }, "rs").ts).toEqual(ts(139, 9));
  });

  it("takes a whole second from the range that holds it, not from one ending in it before a gap", () => {
    // Range one ends at 119:9 (slice 2 is missing); a snapshot at 119:20 starts range two.
    const split = snapshotReach(
      [snap("a", 105), { id: "z", ts: ts(119, 20), generation: 1 }],
      [slice(0, 100, 109), slice(1, 110, 119), slice(3, 119, 139)],
      1,
    );
    const located = locateTarget(restorableRanges(split), { kind: "second", seconds: 119 }, "rs");
    expect(located.ts).toEqual(ts(119, 0xffffffff));
    expect(baseSnapshotId(split, located.ts)).toBe("z");
  });

  it("names the nearest points for a target in a gap, before the first snapshot or after the end", () => {
    const refuse = (target: Parameters<typeof locateTarget>[1]) => {
      try {
        locateTarget(ranges, target, "rs");
      } catch (error) {
        expect(error).toBeInstanceOf(TargetNotRestorableError);
        return error as TargetNotRestorableError;
      }
      throw new Error("not refused");
    };
    const gap = refuse({ kind: "second", seconds: 125 });
    expect(gap.message).toContain("falls in a gap");
    expect([gap.before, gap.after]).toEqual([ts(119, 9), ts(131, 9)]);
    expect(gap.message).toContain("119:9");
    expect(gap.message).toContain("131:9");
    const early = refuse({ kind: "ts", ts: ts(105, 8) });
    expect(early.message).toContain("before its oldest snapshot");
    expect(early.after).toEqual(ts(105, 9));
    const late = refuse({ kind: "second", seconds: 140 });
    expect(late.message).toContain("after the newest oplog entry stored");
    expect(late.before).toEqual(ts(139, 9));
  });
});
