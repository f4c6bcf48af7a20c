import { randomUUID } from "node:crypto";
import type { OpTimeJson, VerificationAnswer } from "../protocol/agentProtocol.js";
import type { CatalogDatabase } from "./catalog.js";

/**
 * waiting_for_agent → (the agent's dbHash arrives) waiting_for_head → (the head database reached
 * its asOf and was hashed) done; failed from either waiting state.
 */
export const VERIFICATION_STATES = ["waiting_for_agent", "waiting_for_head", "done", "failed"] as const;
export type VerificationState = (typeof VERIFICATION_STATES)[number];

/** One collection compared; a hash is null on the side that does not have the collection. */
export interface CollectionComparison {
  db: string;
  collection: string;
  deployment: string | null;
  head: string | null;
  match: boolean;
}

/** What a finished verification found (stored as JSON). */
export interface VerificationResult {
  /** The head database's applied optime when it was hashed. */
  headAppliedTs: OpTimeJson | null;
  collections: CollectionComparison[];
  /** Every collection matches; false when failed. */
  match: boolean;
  warnings: string[];
  error?: string;
  hint?: string;
}

export interface VerificationRecord {
  id: string;
  deploymentId: string;
  generation: number;
  createdAt: number;
  state: VerificationState;
  answeredAt: number | null;
  answer: VerificationAnswer | null;
  completedAt: number | null;
  result: VerificationResult | null;
}

interface Row {
  id: string;
  deployment_id: string;
  generation: number;
  created_at: number;
  state: VerificationState;
  answered_at: number | null;
  answer: string | null;
  completed_at: number | null;
  result: string | null;
}

function fromRow(row: Row): VerificationRecord {
  return {
    id: row.id,
    deploymentId: row.deployment_id,
    generation: row.generation,
    createdAt: row.created_at,
    state: row.state,
    answeredAt: row.answered_at,
    answer: row.answer ? (JSON.parse(row.answer) as VerificationAnswer) : null,
    completedAt: row.completed_at,
    result: row.result ? (JSON.parse(row.result) as VerificationResult) : null,
  };
}

/** Verifications of a head database against the deployment (`tidemark headdb verify`). */
export class VerificationRepository {
  constructor(private readonly db: CatalogDatabase) {}

  create(deploymentId: string, generation: number): VerificationRecord {
    const id = randomUUID();
    this.db
      .prepare(
        "INSERT INTO verifications (id, deployment_id, generation, created_at, state) VALUES (?, ?, ?, ?, 'waiting_for_agent')",
      )
      .run(id, deploymentId, generation, Date.now());
    return this.get(id)!;
  }

  get(id: string): VerificationRecord | undefined {
    const row = this.db.prepare("SELECT * FROM verifications WHERE id = ?").get(id) as Row | undefined;
    return row && fromRow(row);
  }

  /** Requests the agent has yet to answer, oldest first, created at or after `since` (ms). */
  waitingForAgent(deploymentId: string, generation: number, since: number): Array<{ id: string }> {
    return this.db
      .prepare(
        `SELECT id FROM verifications WHERE deployment_id = ? AND generation = ?
         AND state = 'waiting_for_agent' AND created_at >= ? ORDER BY created_at`,
      )
      .all(deploymentId, generation, since) as Array<{ id: string }>;
  }

  /** Stores the agent's answer, unless one is stored already; false then (the first stands). */
  recordAnswer(id: string, answer: VerificationAnswer, state: VerificationState): boolean {
    const changed = this.db
      .prepare(
        `UPDATE verifications SET answer = ?, answered_at = ?, state = ?
         WHERE id = ? AND state = 'waiting_for_agent'`,
      )
      .run(JSON.stringify(answer), Date.now(), state, id).changes;
    return changed === 1;
  }

  /** Ends a verification (done or failed) with what it found; a finished one is left alone. */
  finish(id: string, state: "done" | "failed", result: VerificationResult): void {
    this.db
      .prepare(
        `UPDATE verifications SET state = ?, result = ?, completed_at = ?
         WHERE id = ? AND state IN ('waiting_for_agent', 'waiting_for_head')`,
      )
      .run(state, JSON.stringify(result), Date.now(), id);
  }
}
