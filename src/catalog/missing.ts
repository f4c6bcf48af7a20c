import { randomUUID } from "node:crypto";
import type { CatalogDatabase } from "./catalog.js";

export interface MissingRequestRecord {
  id: string;
  deploymentId: string;
  generation: number;
  namespace: string;
  /** Canonical Extended JSON of `{ids: [...]}`. */
  ids: string;
  createdAt: number;
  answeredAt: number | null;
}

/** The daemon's requests for documents the head database misses (answered by the agent). */
export class MissingRequestRepository {
  constructor(private readonly db: CatalogDatabase) {}

  create(deploymentId: string, generation: number, namespace: string, ids: string): MissingRequestRecord {
    const id = randomUUID();
    this.db
      .prepare(
        "INSERT INTO missing_requests (id, deployment_id, generation, namespace, ids, created_at) VALUES (?, ?, ?, ?, ?, ?)",
      )
      .run(id, deploymentId, generation, namespace, ids, Date.now());
    return { id, deploymentId, generation, namespace, ids, createdAt: Date.now(), answeredAt: null };
  }

  pending(deploymentId: string, generation: number): MissingRequestRecord[] {
    const rows = this.db
      .prepare(
        `SELECT id, deployment_id, generation, namespace, ids, created_at FROM missing_requests
         WHERE deployment_id = ? AND generation = ? AND answered_at IS NULL ORDER BY created_at`,
      )
      .all(deploymentId, generation) as Array<{
      id: string;
      deployment_id: string;
      generation: number;
      namespace: string;
      ids: string;
      created_at: number;
    }>;
    return rows.map((row) => ({
      id: row.id,
      deploymentId: row.deployment_id,
      generation: row.generation,
      namespace: row.namespace,
      ids: row.ids,
      createdAt: row.created_at,
      answeredAt: null,
    }));
  }

  markAnswered(id: string): void {
    this.db.prepare("UPDATE missing_requests SET answered_at = ? WHERE id = ?").run(Date.now(), id);
  }
}
