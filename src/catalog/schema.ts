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
  `
  CREATE TABLE snapshots (
    id TEXT PRIMARY KEY,
    -- No foreign key: a terminated deployment's snapshots stay until they expire or are deleted.
    deployment_id TEXT NOT NULL,
    deployment_name TEXT NOT NULL,
    trigger TEXT NOT NULL,
    status TEXT NOT NULL,
    store TEXT NOT NULL,
    store_kind TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    completed_at INTEGER,
    ts TEXT,
    wall_time INTEGER,
    change_number INTEGER,
    logical_bytes INTEGER NOT NULL DEFAULT 0,
    stored_bytes INTEGER NOT NULL DEFAULT 0,
    expires_at INTEGER,
    manifest TEXT,
    error TEXT,
    verify_state TEXT,
    verified_at INTEGER,
    verify_result TEXT
  );
  CREATE INDEX snapshots_by_deployment ON snapshots (deployment_id, created_at);

  -- Every block a snapshot refers to, written before the block is stored, so groom never removes
  -- a block that a snapshot being written uses.
  CREATE TABLE snapshot_blocks (
    snapshot_id TEXT NOT NULL REFERENCES snapshots(id) ON DELETE CASCADE,
    store TEXT NOT NULL,
    hash TEXT NOT NULL,
    PRIMARY KEY (snapshot_id, hash)
  );
  CREATE INDEX snapshot_blocks_by_hash ON snapshot_blocks (store, hash);

  CREATE TABLE data_keys (
    id TEXT PRIMARY KEY,
    master_fingerprint TEXT NOT NULL,
    wrapped BLOB NOT NULL,
    created_at INTEGER NOT NULL
  );

  ALTER TABLE deployments ADD COLUMN snapshot_store TEXT;
  ALTER TABLE deployments ADD COLUMN snapshot_schedule TEXT;
  `,
  `
  ALTER TABLE snapshots ADD COLUMN classes TEXT;
  `,
  `
  -- The backup generation a snapshot was taken in: a point-in-time restore replays that
  -- generation's oplog slices over it. NULL for snapshots taken before it was recorded.
  ALTER TABLE snapshots ADD COLUMN generation INTEGER;

  CREATE TABLE restores (
    id TEXT PRIMARY KEY,
    created_at INTEGER NOT NULL,
    -- What is restored (JSON): a snapshot, or a deployment at a point in time.
    source TEXT NOT NULL,
    -- Where it goes (JSON): a deployment (URI kept only in memory), an archive, or a stream.
    delivery TEXT NOT NULL,
    status TEXT NOT NULL,
    progress TEXT,
    result TEXT,
    error TEXT,
    completed_at INTEGER,
    -- Files of the job (temporary head database, archive) go once this passes.
    expires_at INTEGER
  );
  `,
];
