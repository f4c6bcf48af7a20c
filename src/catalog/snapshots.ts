import { randomUUID } from "node:crypto";
import type { OpTimeJson } from "../protocol/agentProtocol.js";
import type { CatalogDatabase } from "./catalog.js";

/** writing → complete, or writing → failed (an error, or the server stopped while it was written). */
export type SnapshotStatus = "writing" | "complete" | "failed";
export type SnapshotTrigger = "scheduled" | "on_demand";
export type SnapshotStoreKind = "blockstore" | "s3" | "fs";
/** An integrity check of a snapshot: under way, or its outcome. */
export type SnapshotVerifyState = "verifying" | "passed" | "failed";

export interface SnapshotRecord {
  id: string;
  deploymentId: string;
  deploymentName: string;
  trigger: SnapshotTrigger;
  status: SnapshotStatus;
  /** The store's location (no credentials): "file:///…/blockstore.sqlite", "s3://bucket/prefix", "fs:/path". */
  store: string;
  storeKind: SnapshotStoreKind;
  createdAt: number;
  completedAt: number | null;
  /** The head database's applied optime T the snapshot holds. */
  ts: OpTimeJson | null;
  /** Wall time of T (ms), from the newest applied oplog entry. */
  wallTime: number | null;
  /** The head database's change number at T: the next snapshot's delta runs hold what changed after it. */
  changeNumber: number | null;
  logicalBytes: number;
  /** Bytes this snapshot added to its store (blocks it was first to store, or its files). */
  storedBytes: number;
  /** When it expires regardless of the schedule (on-demand snapshots), ms; null: by the schedule. */
  expiresAt: number | null;
  /** The manifest (src/snapshot/manifest.ts), once complete. */
  manifest: unknown;
  error: string | null;
  verifyState: SnapshotVerifyState | null;
  verifiedAt: number | null;
  verifyResult: unknown;
  /** Retention classes given at completion (src/snapshot/policy.ts), for scheduled snapshots. */
  classes: Array<"regular" | "daily" | "weekly" | "monthly" | "on_demand"> | null;
  /** The backup generation it was taken in (null: taken before generations were recorded). */
  generation: number | null;
}

interface Row {
  id: string;
  deployment_id: string;
  deployment_name: string;
  trigger: SnapshotTrigger;
  status: SnapshotStatus;
  store: string;
  store_kind: SnapshotStoreKind;
  created_at: number;
  completed_at: number | null;
  ts: string | null;
  wall_time: number | null;
  change_number: number | null;
  logical_bytes: number;
  stored_bytes: number;
  expires_at: number | null;
  manifest: string | null;
  error: string | null;
  verify_state: SnapshotVerifyState | null;
  verified_at: number | null;
  verify_result: string | null;
  classes: string | null;
  generation: number | null;
}

function fromRow(row: Row): SnapshotRecord {
  return {
    id: row.id,
    deploymentId: row.deployment_id,
    deploymentName: row.deployment_name,
    trigger: row.trigger,
    status: row.status,
    store: row.store,
    storeKind: row.store_kind,
    createdAt: row.created_at,
    completedAt: row.completed_at,
    ts: row.ts ? (JSON.parse(row.ts) as OpTimeJson) : null,
    wallTime: row.wall_time,
    changeNumber: row.change_number,
    logicalBytes: row.logical_bytes,
    storedBytes: row.stored_bytes,
    expiresAt: row.expires_at,
    manifest: row.manifest ? (JSON.parse(row.manifest) as unknown) : null,
    error: row.error,
    verifyState: row.verify_state,
    verifiedAt: row.verified_at,
    verifyResult: row.verify_result ? (JSON.parse(row.verify_result) as unknown) : null,
    classes: row.classes ? (JSON.parse(row.classes) as SnapshotRecord["classes"]) : null,
    generation: row.generation,
  };
}

export interface NewSnapshot {
  deploymentId: string;
  deploymentName: string;
  trigger: SnapshotTrigger;
  store: string;
  storeKind: SnapshotStoreKind;
  generation: number;
  expiresAt?: number | null;
}

export interface CompletedSnapshot {
  ts: OpTimeJson;
  wallTime: number;
  changeNumber: number;
  logicalBytes: number;
  storedBytes: number;
  manifest: unknown;
  classes?: SnapshotRecord["classes"];
}

/** Said of a snapshot the server stopped writing (a crash or a stop). */
export const INTERRUPTED =
  "interrupted: the server stopped while the snapshot was written; take a new one (groom reclaims what it stored)";

/** Snapshots and the blocks each refers to (DESIGN.md "Snapshots"). */
export class SnapshotRepository {
  constructor(private readonly db: CatalogDatabase) {}

  create(snapshot: NewSnapshot): SnapshotRecord {
    const id = randomUUID();
    this.db
      .prepare(
        `INSERT INTO snapshots (id, deployment_id, deployment_name, trigger, status, store, store_kind, created_at, expires_at, generation)
         VALUES (?, ?, ?, ?, 'writing', ?, ?, ?, ?, ?)`,
      )
      .run(
        id,
        snapshot.deploymentId,
        snapshot.deploymentName,
        snapshot.trigger,
        snapshot.store,
        snapshot.storeKind,
        Date.now(),
        snapshot.expiresAt ?? null,
        snapshot.generation,
      );
    return this.get(id)!;
  }

  get(id: string): SnapshotRecord | undefined {
    const row = this.db.prepare("SELECT * FROM snapshots WHERE id = ?").get(id) as Row | undefined;
    return row && fromRow(row);
  }

  /** A deployment's snapshots, oldest first. */
  forDeployment(deploymentId: string): SnapshotRecord[] {
    return (
      this.db
        .prepare("SELECT * FROM snapshots WHERE deployment_id = ? ORDER BY created_at, rowid")
        .all(deploymentId) as Row[]
    ).map(fromRow);
  }

  /** Every snapshot, oldest first. */
  list(): SnapshotRecord[] {
    return (this.db.prepare("SELECT * FROM snapshots ORDER BY created_at, rowid").all() as Row[]).map(
      fromRow,
    );
  }

  /** The deployment's newest complete snapshot in `store`: what the next one's deltas build on. */
  latestComplete(deploymentId: string, store: string): SnapshotRecord | undefined {
    const row = this.db
      .prepare(
        `SELECT * FROM snapshots WHERE deployment_id = ? AND store = ? AND status = 'complete'
         ORDER BY change_number DESC, completed_at DESC LIMIT 1`,
      )
      .get(deploymentId, store) as Row | undefined;
    return row && fromRow(row);
  }

  /**
   * Records that snapshot `id` refers to block `hash` of `store`: before the block is looked for
   * or stored, so that groom, which removes only blocks no row refers to, never takes it away.
   */
  referBlocks(id: string, store: string, hashes: Iterable<string>): void {
    const insert = this.db.prepare(
      "INSERT OR IGNORE INTO snapshot_blocks (snapshot_id, store, hash) VALUES (?, ?, ?)",
    );
    this.db.transaction(() => {
      for (const hash of hashes) insert.run(id, store, hash);
    })();
  }

  /** Whether any snapshot (complete, or being written) refers to the block. */
  isBlockReferenced(store: string, hash: string): boolean {
    return (
      this.db
        .prepare("SELECT 1 FROM snapshot_blocks WHERE store = ? AND hash = ? LIMIT 1")
        .get(store, hash) !== undefined
    );
  }

  complete(id: string, done: CompletedSnapshot): void {
    this.db
      .prepare(
        `UPDATE snapshots SET status = 'complete', completed_at = ?, ts = ?, wall_time = ?, change_number = ?,
         logical_bytes = ?, stored_bytes = ?, manifest = ?, classes = ? WHERE id = ? AND status = 'writing'`,
      )
      .run(
        Date.now(),
        JSON.stringify(done.ts),
        done.wallTime,
        done.changeNumber,
        done.logicalBytes,
        done.storedBytes,
        JSON.stringify(done.manifest),
        done.classes ? JSON.stringify(done.classes) : null,
        id,
      );
  }

  /** Marks a snapshot being written as failed, and lets go of its blocks (groom reclaims them). */
  fail(id: string, error: string, storedBytes = 0): void {
    this.db.transaction(() => {
      this.db
        .prepare(
          "UPDATE snapshots SET status = 'failed', completed_at = ?, error = ?, stored_bytes = ? WHERE id = ? AND status = 'writing'",
        )
        .run(Date.now(), error, storedBytes, id);
      this.db.prepare("DELETE FROM snapshot_blocks WHERE snapshot_id = ?").run(id);
    })();
  }

  /** At server start: every snapshot still `writing` was cut off by a stop or crash. Returns them. */
  failInterrupted(): SnapshotRecord[] {
    const cut = (this.db.prepare("SELECT * FROM snapshots WHERE status = 'writing'").all() as Row[]).map(
      fromRow,
    );
    for (const snapshot of cut) this.fail(snapshot.id, INTERRUPTED);
    return cut;
  }

  /** Removes the snapshot's record and its block references (not the blocks: groom does that). */
  delete(id: string): void {
    this.db.prepare("DELETE FROM snapshots WHERE id = ?").run(id);
  }

  setVerification(id: string, state: SnapshotVerifyState, result: unknown = null): void {
    this.db
      .prepare("UPDATE snapshots SET verify_state = ?, verified_at = ?, verify_result = ? WHERE id = ?")
      .run(
        state,
        state === "verifying" ? null : Date.now(),
        result === null ? null : JSON.stringify(result),
        id,
      );
  }

  /**
   * Complete snapshots whose last check (or, never checked, whose completion) is before
   * `beforeMs`, longest unchecked first: the integrity job's work.
   */
  dueForVerification(beforeMs: number): SnapshotRecord[] {
    return (
      this.db
        .prepare(
          `SELECT * FROM snapshots WHERE status = 'complete' AND COALESCE(verified_at, completed_at) < ?
           AND (verify_state IS NULL OR verify_state != 'verifying')
           ORDER BY COALESCE(verified_at, completed_at), created_at`,
        )
        .all(beforeMs) as Row[]
    ).map(fromRow);
  }
}
