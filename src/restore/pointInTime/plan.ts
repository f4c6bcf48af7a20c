/**
 * Plans a point-in-time restore from the catalog: the deployment's restorable ranges, the base
 * snapshot for a target, and the oplog slices to replay over it.
 */
import type { Catalog } from "../../catalog/index.js";
import type { DeploymentRecord } from "../../catalog/deployments.js";
import type { SliceRecord } from "../../catalog/slices.js";
import type { SnapshotRecord } from "../../catalog/snapshots.js";
import type { OpTimeJson } from "../../protocol/agentProtocol.js";
import { compareOpTimes } from "../../protocol/optime.js";
import { parseManifest, type SnapshotManifest } from "../../snapshot/manifest.js";
import {
  baseSnapshotId,
  locateTarget,
  restorableRanges,
  snapshotReach,
  type RangeSlice,
  type RangeSnapshot,
  type RestoreRange,
  type RestoreTarget,
} from "./ranges.js";

export interface PointInTimePlan {
  deployment: DeploymentRecord;
  base: SnapshotRecord;
  manifest: SnapshotManifest;
  /** The newest oplog ts to apply (the target, or the end of the range for a second it ends in). */
  targetTs: OpTimeJson;
  /** The oplog slices to read, in sequence order. */
  slices: SliceRecord[];
}

interface Inputs {
  snapshots: Array<RangeSnapshot & { record: SnapshotRecord }>;
  slices: SliceRecord[];
}

function inputsOf(catalog: Catalog, deployment: DeploymentRecord): Inputs {
  const snapshots = catalog.snapshots
    .forDeployment(deployment.id)
    .filter((s) => s.status === "complete" && s.ts)
    .map((record) => {
      const heldFrom = (record.manifest as { heldFrom?: OpTimeJson } | null)?.heldFrom;
      return { id: record.id, ts: record.ts!, generation: record.generation, heldFrom, record };
    });
  const slices = catalog.slices
    .list(deployment.id, deployment.generation, "oplog")
    .filter((s) => s.firstTs && s.lastTs && s.count > 0);
  return { snapshots, slices };
}

function rangeSlices(slices: SliceRecord[]): RangeSlice[] {
  return slices.map((s) => ({ sequence: s.sequence, firstTs: s.firstTs!, lastTs: s.lastTs! }));
}

/** The deployment's restorable ranges, oldest first. */
export function deploymentRanges(catalog: Catalog, deployment: DeploymentRecord): RestoreRange[] {
  const { snapshots, slices } = inputsOf(catalog, deployment);
  return restorableRanges(snapshotReach(snapshots, rangeSlices(slices), deployment.generation));
}

/** What to restore `target` from; TargetNotRestorableError when no range holds it. */
export function planPointInTime(
  catalog: Catalog,
  deployment: DeploymentRecord,
  target: RestoreTarget,
): PointInTimePlan {
  const { snapshots, slices } = inputsOf(catalog, deployment);
  const reach = snapshotReach(snapshots, rangeSlices(slices), deployment.generation);
  const located = locateTarget(restorableRanges(reach), target, deployment.name);
  const baseId = baseSnapshotId(reach, located.ts);
  const base = snapshots.find((s) => s.id === baseId)!.record;
  const manifest = parseManifest(base.manifest, base.id);
  const from = manifest.heldFrom ?? manifest.ts;
  const needed =
    compareOpTimes(located.ts, manifest.ts) <= 0
      ? []
      : slices
          .filter((s) => compareOpTimes(s.lastTs!, from) >= 0 && compareOpTimes(s.firstTs!, located.ts) <= 0)
          .sort((a, b) => a.sequence - b.sequence);
  return { deployment, base, manifest, targetTs: located.ts, slices: needed };
}
