import type { CatalogDatabase } from "./catalog.js";

/** Which collections the agent finished cloning, per generation. */
export class CloneProgressRepository {
  constructor(private readonly db: CatalogDatabase) {}

  markDone(deploymentId: string, generation: number, namespace: string, documents: number): void {
    this.db
      .prepare(
        `INSERT INTO collections_done (deployment_id, generation, namespace, documents) VALUES (?, ?, ?, ?)
         ON CONFLICT DO UPDATE SET documents = excluded.documents`,
      )
      .run(deploymentId, generation, namespace, documents);
  }

  doneNamespaces(deploymentId: string, generation: number): Set<string> {
    const rows = this.db
      .prepare("SELECT namespace FROM collections_done WHERE deployment_id = ? AND generation = ?")
      .all(deploymentId, generation) as Array<{ namespace: string }>;
    return new Set(rows.map((row) => row.namespace));
  }
}
