/**
 * The daemon's phase state, stored in the head database (`ResumeState.setPhaseState`) in the same
 * transaction as the data it describes, so a restarted server carries on where it stopped.
 */
import type { OpTimeJson } from "../protocol/agentProtocol.js";

export type DaemonPhase =
  "building" | "applying_oplogs" | "fetching_missing_documents" | "creating_indexes" | "complete";

/** One round of missing-document requests (fetching_missing_documents). */
export interface MissingFetch {
  /** Catalog missing requests, one per collection: request id, collection UUID and `_id` keys (hex). */
  requests: Array<{ id: string; uuid: string; keys: string[] }>;
  /** Set once every answer is inserted: the oplog must be applied past this optime. */
  untilTs?: OpTimeJson;
}

export interface PhaseState {
  /** The catalog generation this head database belongs to; another one means a resync. */
  generation: number;
  phase: DaemonPhase;
  fetch?: MissingFetch;
  /** fetching_missing_documents: `_id`s asked of the agent over all rounds. */
  missingAsked?: number;
  /** creating_indexes: how many indexes the head catalog records. */
  indexes?: number;
}

export function encodePhaseState(state: PhaseState): Buffer {
  return Buffer.from(JSON.stringify(state), "utf8");
}

export function decodePhaseState(raw: Uint8Array | undefined): PhaseState | undefined {
  return raw === undefined ? undefined : (JSON.parse(Buffer.from(raw).toString("utf8")) as PhaseState);
}
