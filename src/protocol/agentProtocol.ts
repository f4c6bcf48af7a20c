import { z } from "zod";

/**
 * The agent ↔ server protocol (HTTP, JSON unless noted). Both sides import these schemas, so a
 * change here is a change to both. Every agent request carries `Authorization: Bearer <agentKey>`
 * and targets `/api/v1/agent/deployments/:deploymentId/...`; a key of another deployment gets 403,
 * an unknown key 401.
 *
 * Values that must keep their exact BSON type (an `_id`, an optime) travel as canonical Extended
 * JSON (`EJSON.stringify(value, { relaxed: false })`).
 */

export const OpTimeJson = z.object({ t: z.number().int().nonnegative(), i: z.number().int().nonnegative() });
export type OpTimeJson = z.infer<typeof OpTimeJson>;

export const JOB_STATES = [
  "inactive",
  "initial_sync",
  "active",
  "stopped",
  "resync_required",
  "terminated",
] as const;
export type JobState = (typeof JOB_STATES)[number];

/** Where a document stream (one collection's clone) stands on the server. */
export const CollectionResume = z.object({
  namespace: z.string(),
  /** The next sequence number the server expects for stream `documents/<namespace>`. */
  nextSequence: z.number().int().nonnegative(),
  /** Canonical Extended JSON of `{_id: <last acknowledged _id>}`, absent before the first slice. */
  lastId: z.string().optional(),
  /** The agent said this collection's clone is complete. */
  done: z.boolean(),
});
export type CollectionResume = z.infer<typeof CollectionResume>;

export const MissingRequest = z.object({
  id: z.string(),
  namespace: z.string(),
  /** Canonical Extended JSON of `{ids: [<_id>, ...]}`. */
  ids: z.string(),
});
export type MissingRequest = z.infer<typeof MissingRequest>;

/** A `tidemark headdb verify` waiting for the agent's dbHash of the deployment. */
export const VerificationRequest = z.object({ id: z.string() });
export type VerificationRequest = z.infer<typeof VerificationRequest>;

/** dbHash per database: collection name → hex MD5 (views have none). */
export const DatabaseHashes = z.record(
  z.string(),
  z.object({ collections: z.record(z.string(), z.string().regex(/^[0-9a-f]{32}$/, "an MD5 in hex")) }),
);
export type DatabaseHashes = z.infer<typeof DatabaseHashes>;

/**
 * POST .../verifications/:verificationId — the agent's answer to a VerificationRequest: the dbHash
 * of every backed-up database on the primary, with `asOf` the newest oplog ts, the same before and
 * after hashing apart from no-op entries (so no write happened in between); or why it could not
 * produce one. 404 for an unknown request, 409 for one that is no longer waiting (expired, other
 * generation); an answer already stored is kept (200).
 */
export const VerificationAnswer = z.union([
  z.object({ asOf: OpTimeJson, databases: DatabaseHashes }),
  z.object({ error: z.string().min(1) }),
]);
export type VerificationAnswer = z.infer<typeof VerificationAnswer>;

/**
 * GET /api/v1/agent/self — the deployment an agent key belongs to (401 for an unknown key), so an
 * agent started with only the server URL and its key can build the paths above.
 */
export const AgentSelf = z.object({ deploymentId: z.string(), name: z.string() });
export type AgentSelf = z.infer<typeof AgentSelf>;

/** GET .../job — what the agent should be doing now. */
export const AgentJob = z.object({
  deploymentId: z.string(),
  name: z.string(),
  state: z.enum(JOB_STATES),
  /** Increments on every resync; slices of an older generation are refused (409). */
  generation: z.number().int().nonnegative(),
  /** The initial sync's start (T0), once the agent recorded it. */
  t0: OpTimeJson.optional(),
  /** Set once the agent reported the end of the clone (T1). */
  cloneCompleteAt: OpTimeJson.optional(),
  oplog: z.object({
    nextSequence: z.number().int().nonnegative(),
    /** ts of the last acknowledged oplog entry: the tail resumes here (inclusive, for the gap check). */
    lastTs: OpTimeJson.optional(),
  }),
  collections: z.array(CollectionResume),
  /** Databases whose catalog slice is stored. */
  catalogs: z.array(z.string()),
  missing: z.array(MissingRequest),
  /** Verifications waiting for the agent's dbHash (absent from servers that predate them). */
  verifications: z.array(VerificationRequest).default([]),
  settings: z.object({
    sliceMb: z.number().positive(),
    oplogFlushSeconds: z.number().positive(),
  }),
});
export type AgentJob = z.infer<typeof AgentJob>;

/** POST .../initial-sync/start — the agent recorded T0 and the clone's size estimate. */
export const InitialSyncStart = z.object({
  t0: OpTimeJson,
  estimate: z.object({
    bytes: z.number().nonnegative(),
    documents: z.number().nonnegative(),
    collections: z.number().nonnegative(),
  }),
});

/** POST .../clone/collection-done — every document of `namespace` is in acknowledged slices. */
export const CollectionDone = z.object({ namespace: z.string(), documents: z.number().nonnegative() });

/** POST .../initial-sync/clone-done — the clone ended at T1 (minValid). */
export const CloneDone = z.object({ t1: OpTimeJson });

/** POST .../oplog-gap — the resume optime is no longer in the deployment's oplog. */
export const OplogGap = z.object({
  resumeTs: OpTimeJson,
  oldestTs: OpTimeJson.optional(),
  message: z.string(),
});

/** POST .../heartbeat */
export const Heartbeat = z.object({
  agentVersion: z.string(),
  hostname: z.string(),
  /** What the agent is doing, for the Backup page. */
  activity: z.string().optional(),
});

/**
 * PUT .../slices/:stream/:sequence with the slice file as the body
 * (`Content-Type: application/octet-stream`, header `X-Tidemark-Generation`). `:stream` is
 * URL-encoded ("documents%2Fshop.orders"). Replies: 201 stored, 200 already stored with the same
 * checksum, 400 corrupt or inconsistent slice (nothing stored), 401/403 key, 409 wrong generation
 * or a different slice already under that sequence, 507 the oplog store is full (retry later).
 */
export const SliceAck = z.object({
  stream: z.string(),
  sequence: z.number().int().nonnegative(),
  stored: z.boolean(),
  duplicate: z.boolean(),
});
export type SliceAck = z.infer<typeof SliceAck>;

/** Error bodies of every endpoint. */
export const ApiError = z.object({ error: z.string(), code: z.string(), hint: z.string().optional() });
export type ApiError = z.infer<typeof ApiError>;

export function streamForCollection(namespace: string): string {
  return `documents/${namespace}`;
}

export function streamForCatalog(db: string): string {
  return `catalog/${db}`;
}

export function streamForMissing(requestId: string): string {
  return `missing/${requestId}`;
}

export const OPLOG_STREAM = "oplog";
