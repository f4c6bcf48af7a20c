/**
 * The catalog's schema, as numbered migrations. A migration never changes once released; a
 * change is a new migration, applied in order at open.
 */
export const MIGRATIONS: string[] = [
  `
  CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);

  CREATE TABLE deployments (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    agent_key_hash TEXT NOT NULL UNIQUE,
    state TEXT NOT NULL,
    phase TEXT,
    generation INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    agent_last_seen INTEGER,
    agent_info TEXT,
    t0 TEXT,
    clone_complete_at TEXT,
    estimate_bytes INTEGER,
    estimate_documents INTEGER,
    estimate_collections INTEGER,
    resync_reason TEXT
  );

  CREATE TABLE slices (
    deployment_id TEXT NOT NULL REFERENCES deployments(id) ON DELETE CASCADE,
    generation INTEGER NOT NULL,
    stream TEXT NOT NULL,
    sequence INTEGER NOT NULL,
    kind TEXT NOT NULL,
    namespace TEXT,
    first_ts TEXT,
    last_ts TEXT,
    last_id TEXT,
    count INTEGER NOT NULL,
    bytes INTEGER NOT NULL,
    uncompressed_bytes INTEGER NOT NULL,
    codec TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    store_key TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (deployment_id, generation, stream, sequence)
  );

  CREATE TABLE collections_done (
    deployment_id TEXT NOT NULL REFERENCES deployments(id) ON DELETE CASCADE,
    generation INTEGER NOT NULL,
    namespace TEXT NOT NULL,
    documents INTEGER NOT NULL,
    PRIMARY KEY (deployment_id, generation, namespace)
  );

  CREATE TABLE missing_requests (
    id TEXT PRIMARY KEY,
    deployment_id TEXT NOT NULL REFERENCES deployments(id) ON DELETE CASCADE,
    generation INTEGER NOT NULL,
    namespace TEXT NOT NULL,
    ids TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    answered_at INTEGER
  );
  `,
  `
  CREATE TABLE verifications (
    id TEXT PRIMARY KEY,
    deployment_id TEXT NOT NULL REFERENCES deployments(id) ON DELETE CASCADE,
    generation INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    state TEXT NOT NULL,
    answered_at INTEGER,
    answer TEXT,
    completed_at INTEGER,
    result TEXT
  );
  CREATE INDEX verifications_by_deployment ON verifications (deployment_id, generation, state);
  `,
];
