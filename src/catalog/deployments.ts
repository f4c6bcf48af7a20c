import { randomUUID } from "node:crypto";
import type { JobState, OpTimeJson } from "../protocol/agentProtocol.js";
import type { CatalogDatabase } from "./catalog.js";

/** Initial-sync phases, in order (DESIGN.md "Initial sync"). */
export const PHASES = [
  "starting",
  "transferring",
  "building",
  "applying_oplogs",
  "fetching_missing_documents",
  "creating_indexes",
  "complete",
] as const;
export type Phase = (typeof PHASES)[number];

export interface DeploymentRecord {
  id: string;
  name: string;
  agentKeyHash: string;
  state: JobState;
  phase: Phase | null;
  generation: number;
  createdAt: number;
  agentLastSeen: number | null;
  agentInfo: Record<string, unknown> | null;
  t0: OpTimeJson | null;
  cloneCompleteAt: OpTimeJson | null;
  estimate: { bytes: number; documents: number; collections: number } | null;
  resyncReason: string | null;
  /** The deployment's own snapshot store spec, overriding the server's (`--snapshot-store`). */
  snapshotStore: string | null;
  /** The deployment's snapshot schedule and retention, overriding the server's (JSON, see src/snapshot/policy.ts). */
  snapshotSchedule: Record<string, unknown> | null;
}

interface Row {
  id: string;
  name: string;
  agent_key_hash: string;
  state: JobState;
  phase: Phase | null;
  generation: number;
  created_at: number;
  agent_last_seen: number | null;
  agent_info: string | null;
  t0: string | null;
  clone_complete_at: string | null;
  estimate_bytes: number | null;
  estimate_documents: number | null;
  estimate_collections: number | null;
  resync_reason: string | null;
  snapshot_store: string | null;
  snapshot_schedule: string | null;
}

function fromRow(row: Row): DeploymentRecord {
  return {
    id: row.id,
    name: row.name,
    agentKeyHash: row.agent_key_hash,
    state: row.state,
    phase: row.phase,
    generation: row.generation,
    createdAt: row.created_at,
    agentLastSeen: row.agent_last_seen,
    agentInfo: row.agent_info ? (JSON.parse(row.agent_info) as Record<string, unknown>) : null,
    t0: row.t0 ? (JSON.parse(row.t0) as OpTimeJson) : null,
    cloneCompleteAt: row.clone_complete_at ? (JSON.parse(row.clone_complete_at) as OpTimeJson) : null,
    estimate:
      row.estimate_bytes === null
        ? null
        : {
            bytes: row.estimate_bytes,
            documents: row.estimate_documents ?? 0,
            collections: row.estimate_collections ?? 0,
          },
    resyncReason: row.resync_reason,
    snapshotStore: row.snapshot_store,
    snapshotSchedule: row.snapshot_schedule
      ? (JSON.parse(row.snapshot_schedule) as Record<string, unknown>)
      : null,
  };
}

/** Deployments and their backup jobs: one row each, the job's state beside the deployment. */
export class DeploymentRepository {
  constructor(private readonly db: CatalogDatabase) {}

  create(name: string, agentKeyHash: string): DeploymentRecord {
    const id = randomUUID();
    this.db
      .prepare(
        "INSERT INTO deployments (id, name, agent_key_hash, state, phase, created_at) VALUES (?, ?, ?, 'inactive', NULL, ?)",
      )
      .run(id, name, agentKeyHash, Date.now());
    return this.get(id)!;
  }

  list(): DeploymentRecord[] {
    return (this.db.prepare("SELECT * FROM deployments ORDER BY name").all() as Row[]).map(fromRow);
  }

  get(id: string): DeploymentRecord | undefined {
    const row = this.db.prepare("SELECT * FROM deployments WHERE id = ?").get(id) as Row | undefined;
    return row && fromRow(row);
  }

  findByName(name: string): DeploymentRecord | undefined {
    const row = this.db.prepare("SELECT * FROM deployments WHERE name = ?").get(name) as Row | undefined;
    return row && fromRow(row);
  }

  findByAgentKeyHash(hash: string): DeploymentRecord | undefined {
    const row = this.db.prepare("SELECT * FROM deployments WHERE agent_key_hash = ?").get(hash) as
      Row | undefined;
    return row && fromRow(row);
  }

  setState(id: string, state: JobState, phase: Phase | null): void {
    this.db.prepare("UPDATE deployments SET state = ?, phase = ? WHERE id = ?").run(state, phase, id);
  }

  setPhase(id: string, phase: Phase | null): void {
    this.db.prepare("UPDATE deployments SET phase = ? WHERE id = ?").run(phase, id);
  }

  /** Starts a new initial sync: a new generation, with no T0, T1 or estimate yet. */
  beginInitialSync(id: string): void {
    this.db
      .prepare(
        `UPDATE deployments SET state = 'initial_sync', phase = 'starting', generation = generation + 1,
         t0 = NULL, clone_complete_at = NULL, estimate_bytes = NULL, estimate_documents = NULL,
         estimate_collections = NULL, resync_reason = NULL WHERE id = ?`,
      )
      .run(id);
  }

  recordT0(
    id: string,
    t0: OpTimeJson,
    estimate: { bytes: number; documents: number; collections: number },
  ): void {
    this.db
      .prepare(
        `UPDATE deployments SET t0 = ?, phase = 'transferring', estimate_bytes = ?, estimate_documents = ?,
         estimate_collections = ? WHERE id = ?`,
      )
      .run(JSON.stringify(t0), estimate.bytes, estimate.documents, estimate.collections, id);
  }

  recordCloneComplete(id: string, t1: OpTimeJson): void {
    this.db.prepare("UPDATE deployments SET clone_complete_at = ? WHERE id = ?").run(JSON.stringify(t1), id);
  }

  requireResync(id: string, reason: string): void {
    this.db
      .prepare(
        "UPDATE deployments SET state = 'resync_required', phase = NULL, resync_reason = ? WHERE id = ?",
      )
      .run(reason, id);
  }

  touchAgent(id: string, info?: Record<string, unknown>): void {
    if (info) {
      this.db
        .prepare("UPDATE deployments SET agent_last_seen = ?, agent_info = ? WHERE id = ?")
        .run(Date.now(), JSON.stringify(info), id);
    } else {
      this.db.prepare("UPDATE deployments SET agent_last_seen = ? WHERE id = ?").run(Date.now(), id);
    }
  }

  /** Sets (or with null, clears) the deployment's own snapshot store and schedule; undefined leaves one as it is. */
  setSnapshotSettings(
    id: string,
    settings: { store?: string | null; schedule?: Record<string, unknown> | null },
  ): void {
    if (settings.store !== undefined)
      this.db.prepare("UPDATE deployments SET snapshot_store = ? WHERE id = ?").run(settings.store, id);
    if (settings.schedule !== undefined)
      this.db
        .prepare("UPDATE deployments SET snapshot_schedule = ? WHERE id = ?")
        .run(settings.schedule === null ? null : JSON.stringify(settings.schedule), id);
  }

  delete(id: string): void {
    this.db.prepare("DELETE FROM deployments WHERE id = ?").run(id);
  }
}
