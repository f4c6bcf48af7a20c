import { randomUUID } from "node:crypto";
import type { CatalogDatabase } from "./catalog.js";

/**
 * queued → materializing (a point in time being built) → loading (into a deployment) | writing (an
 * archive) | ready (a point in time held for a client to read) → complete; or failed; expired once
 * its files are gone.
 */
export type RestoreStatus =
  "queued" | "materializing" | "loading" | "writing" | "ready" | "complete" | "failed" | "expired";

export interface RestoreRecord {
  id: string;
  createdAt: number;
  /** What is restored: `{snapshotId}` or `{deploymentId, deploymentName, target}` (JSON). */
  source: unknown;
  /** Where it goes, without credentials (JSON). */
  delivery: unknown;
  status: RestoreStatus;
  progress: unknown;
  result: unknown;
  error: string | null;
  completedAt: number | null;
  expiresAt: number | null;
}

interface Row {
  id: string;
  created_at: number;
  source: string;
  delivery: string;
  status: RestoreStatus;
  progress: string | null;
  result: string | null;
  error: string | null;
  completed_at: number | null;
  expires_at: number | null;
}

const json = (text: string | null): unknown => (text === null ? null : JSON.parse(text));

function fromRow(row: Row): RestoreRecord {
  return {
    id: row.id,
    createdAt: row.created_at,
    source: json(row.source),
    delivery: json(row.delivery),
    status: row.status,
    progress: json(row.progress),
    result: json(row.result),
    error: row.error,
    completedAt: row.completed_at,
    expiresAt: row.expires_at,
  };
}

/** Said of a restore the server stopped in the middle of. */
export const RESTORE_INTERRUPTED = "interrupted: the server stopped during the restore";

/** Restore jobs (HTTP `POST /api/v1/restores`, and the CLI's point-in-time restores). */
export class RestoreRepository {
  constructor(private readonly db: CatalogDatabase) {}

  create(source: unknown, delivery: unknown): RestoreRecord {
    const id = randomUUID();
    this.db
      .prepare(
        "INSERT INTO restores (id, created_at, source, delivery, status) VALUES (?, ?, ?, ?, 'queued')",
      )
      .run(id, Date.now(), JSON.stringify(source), JSON.stringify(delivery));
    return this.get(id)!;
  }

  get(id: string): RestoreRecord | undefined {
    const row = this.db.prepare("SELECT * FROM restores WHERE id = ?").get(id) as Row | undefined;
    return row && fromRow(row);
  }

  /** Every restore, newest first. */
  list(): RestoreRecord[] {
    return (
      this.db.prepare("SELECT * FROM restores ORDER BY created_at DESC, rowid DESC").all() as Row[]
    ).map(fromRow);
  }

  setStatus(id: string, status: RestoreStatus): void {
    this.db.prepare("UPDATE restores SET status = ? WHERE id = ?").run(status, id);
  }

  setProgress(id: string, progress: unknown): void {
    this.db.prepare("UPDATE restores SET progress = ? WHERE id = ?").run(JSON.stringify(progress), id);
  }

  /** A restore that ended; its files (if any) stay until `expiresAt`. */
  finish(
    id: string,
    outcome: {
      status: "complete" | "failed" | "ready";
      result?: unknown;
      error?: string;
      expiresAt: number | null;
    },
  ): void {
    this.db
      .prepare(
        "UPDATE restores SET status = ?, result = ?, error = ?, completed_at = ?, expires_at = ? WHERE id = ?",
      )
      .run(
        outcome.status,
        outcome.result === undefined ? null : JSON.stringify(outcome.result),
        outcome.error ?? null,
        outcome.status === "ready" ? null : Date.now(),
        outcome.expiresAt,
        id,
      );
  }

  /** Keeps a job's files until `expiresAt` (a held point in time that was just read). */
  extend(id: string, expiresAt: number): void {
    this.db.prepare("UPDATE restores SET expires_at = ? WHERE id = ?").run(expiresAt, id);
  }

  /** Its files are gone: an archive can no longer be downloaded, a point in time no longer read. */
  expire(id: string): void {
    this.db
      .prepare(
        "UPDATE restores SET status = 'expired', completed_at = COALESCE(completed_at, ?) WHERE id = ?",
      )
      .run(Date.now(), id);
  }

  /** At server start: restores that were running are failed (interrupted). Returns them. */
  failInterrupted(): RestoreRecord[] {
    const cut = (
      this.db
        .prepare("SELECT * FROM restores WHERE status IN ('queued', 'materializing', 'loading', 'writing')")
        .all() as Row[]
    ).map(fromRow);
    for (const restore of cut)
      this.finish(restore.id, { status: "failed", error: RESTORE_INTERRUPTED, expiresAt: Date.now() });
    return cut;
  }

  /** Restores whose files should go now (a failed one's went when it failed). */
  due(now: number): RestoreRecord[] {
    return (
      this.db
        .prepare(
          "SELECT * FROM restores WHERE status NOT IN ('expired', 'failed') AND expires_at IS NOT NULL AND expires_at <= ?",
        )
        .all(now) as Row[]
    ).map(fromRow);
  }
}
