import { deploymentRanges, isoOf } from "../restore/pointInTime/index.js";
import type { Catalog } from "../catalog/index.js";
import { PHASES, type DeploymentRecord, type Phase } from "../catalog/deployments.js";
import type { JobState, OpTimeJson } from "../protocol/agentProtocol.js";
import { OPLOG_STREAM } from "../protocol/agentProtocol.js";
import type { Daemon } from "../daemon/daemon.js";

export interface PhaseView {
  name: Phase;
  status: "pending" | "running" | "done";
  done: number;
  total: number | null;
  unit: string;
}

/** A deployment as the API, the CLI (--json) and the Backup page show it. */
export interface DeploymentView {
  id: string;
  name: string;
  state: JobState;
  phase: Phase | null;
  phases: PhaseView[];
  generation: number;
  createdAt: string;
  agent: {
    lastSeen: string | null;
    hostname: string | null;
    version: string | null;
    activity: string | null;
  };
  initialSync: { t0: OpTimeJson | null; cloneCompleteAt: OpTimeJson | null };
  /** The newest oplog entry stored, and when the server received the slice holding it. */
  oplog: { lastTs: OpTimeJson | null; lastReceivedAt: string | null };
  head: { appliedTs: OpTimeJson | null; lagSeconds: number | null; missing: number | null };
  /** The backup daemon's error for this deployment: its work stopped there. */
  daemon: { error: string | null };
  slices: {
    documents: { count: number; bytes: number; documents: number };
    oplog: { count: number; bytes: number; entries: number };
    catalog: { count: number; bytes: number };
    missing: { count: number; bytes: number };
  };
  resyncReason: string | null;
  /** The deployment's own snapshot store and schedule (null: the server's). */
  snapshotStore: string | null;
  snapshotSchedule: Record<string, unknown> | null;
  /** Its newest complete snapshot, if any. */
  lastSnapshot: {
    id: string;
    ts: { t: number; i: number } | null;
    wallTime: string | null;
    storeKind: string;
  } | null;
  /** What can be restored: from the oldest restorable point to the newest, and how many gaps between. */
  restorable: { from: string; to: string; gaps: number } | null;
}

function phaseStatus(record: DeploymentRecord, phase: Phase): PhaseView["status"] {
  if (record.state === "active" || record.phase === "complete") return "done";
  if (record.phase === null) return "pending";
  const current = PHASES.indexOf(record.phase);
  const index = PHASES.indexOf(phase);
  if (index < current) return "done";
  if (index > current) return "pending";
  return "running";
}

export function deploymentView(record: DeploymentRecord, catalog: Catalog, daemon?: Daemon): DeploymentView {
  const totals = catalog.slices.totals(record.id, record.generation);
  const oplogHead = catalog.slices
    .streamHeads(record.id, record.generation)
    .find((head) => head.stream === OPLOG_STREAM);
  const transferred = totals.documents.uncompressedBytes;
  const phases: PhaseView[] = PHASES.map((name) => ({
    name,
    status: phaseStatus(record, name),
    done: 0,
    total: null,
    unit: "steps",
  }));
  const starting = phases[0];
  starting.done = record.t0 ? 1 : 0;
  starting.total = 1;
  const transferring = phases[1];
  transferring.unit = "bytes";
  transferring.done = transferred;
  transferring.total = record.estimate ? Math.max(record.estimate.bytes, transferred) : null;
  // The clone can end before the daemon takes over the phase; it is done all the same.
  if (record.cloneCompleteAt && transferring.status === "running") transferring.status = "done";
  const head = daemon?.status(record.id);
  const building = phases[2];
  building.unit = "slices";
  building.done = head?.documentsSlicesInserted ?? 0;
  building.total = totals.documents.count;
  const applying = phases[3];
  applying.unit = "slices";
  applying.done = head?.oplogSlicesApplied ?? 0;
  // Counted from the stream's head: the retention window removes applied slices from the totals.
  applying.total = oplogHead ? oplogHead.lastSequence + 1 : 0;
  const fetching = phases[4];
  fetching.unit = "documents";
  fetching.done = head ? head.missingAsked - Math.min(head.missing, head.missingAsked) : 0;
  fetching.total = head?.missingAsked ?? null;
  const indexing = phases[5];
  indexing.unit = "indexes";
  // One step records every index of the head catalog (which DDL keeps changing afterwards).
  indexing.total = head?.indexesInCatalog ?? null;
  indexing.done = indexing.status === "done" ? (indexing.total ?? 0) : 0;
  const complete = phases[6];
  complete.done = complete.status === "done" ? 1 : 0;
  complete.total = 1;
  const appliedTs = head?.appliedTs ?? null;
  const newest = oplogHead?.lastTs ?? null;
  const newestOplogSlice =
    oplogHead && catalog.slices.get(record.id, record.generation, OPLOG_STREAM, oplogHead.lastSequence);
  const info = record.agentInfo ?? {};
  return {
    id: record.id,
    name: record.name,
    state: record.state,
    phase: record.phase,
    phases,
    generation: record.generation,
    createdAt: new Date(record.createdAt).toISOString(),
    agent: {
      lastSeen: record.agentLastSeen ? new Date(record.agentLastSeen).toISOString() : null,
      hostname: typeof info.hostname === "string" ? info.hostname : null,
      version: typeof info.agentVersion === "string" ? info.agentVersion : null,
      activity: typeof info.activity === "string" ? info.activity : null,
    },
    initialSync: { t0: record.t0, cloneCompleteAt: record.cloneCompleteAt },
    oplog: {
      lastTs: oplogHead?.lastTs ?? null,
      lastReceivedAt: newestOplogSlice ? new Date(newestOplogSlice.createdAt).toISOString() : null,
    },
    head: {
      appliedTs,
      lagSeconds: appliedTs && newest ? Math.max(0, newest.t - appliedTs.t) : null,
      missing: head?.missing ?? null,
    },
    daemon: { error: head?.error ?? null },
    slices: {
      documents: {
        count: totals.documents.count,
        bytes: totals.documents.bytes,
        documents: totals.documents.documents,
      },
      oplog: { count: totals.oplog.count, bytes: totals.oplog.bytes, entries: totals.oplog.documents },
      catalog: { count: totals.catalog.count, bytes: totals.catalog.bytes },
      missing: { count: totals.missing.count, bytes: totals.missing.bytes },
    },
    resyncReason: record.resyncReason,
    snapshotStore: record.snapshotStore,
    snapshotSchedule: record.snapshotSchedule,
    lastSnapshot: lastSnapshotOf(catalog, record.id),
    restorable: restorableOf(catalog, record),
  };
}

function restorableOf(catalog: Catalog, record: DeploymentRecord): DeploymentView["restorable"] {
  const ranges = deploymentRanges(catalog, record);
  if (ranges.length === 0) return null;
  return { from: isoOf(ranges[0].from), to: isoOf(ranges[ranges.length - 1].to), gaps: ranges.length - 1 };
}

function lastSnapshotOf(catalog: Catalog, deploymentId: string): DeploymentView["lastSnapshot"] {
  const complete = catalog.snapshots.forDeployment(deploymentId).filter((s) => s.status === "complete");
  const last = complete[complete.length - 1];
  if (!last) return null;
  return {
    id: last.id,
    ts: last.ts,
    wallTime: last.wallTime === null ? null : new Date(last.wallTime).toISOString(),
    storeKind: last.storeKind,
  };
}
