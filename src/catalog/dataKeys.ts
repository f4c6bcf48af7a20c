import type { CatalogDatabase } from "./catalog.js";

/** A snapshot data key as the catalog keeps it: only wrapped by a master key (src/snapshot/encryption). */
export interface StoredDataKey {
  id: string;
  masterFingerprint: string;
  wrapped: Buffer;
  createdAt: number;
}

interface Row {
  id: string;
  master_fingerprint: string;
  wrapped: Buffer;
  created_at: number;
}

/** The wrapped data keys that encrypt snapshot blocks and files. */
export class DataKeyRepository {
  constructor(private readonly db: CatalogDatabase) {}

  /** Oldest first. */
  list(): StoredDataKey[] {
    return (this.db.prepare("SELECT * FROM data_keys ORDER BY created_at, rowid").all() as Row[]).map(
      (row) => ({
        id: row.id,
        masterFingerprint: row.master_fingerprint,
        wrapped: row.wrapped,
        createdAt: row.created_at,
      }),
    );
  }

  insert(key: StoredDataKey): void {
    this.db
      .prepare("INSERT INTO data_keys (id, master_fingerprint, wrapped, created_at) VALUES (?, ?, ?, ?)")
      .run(key.id, key.masterFingerprint, key.wrapped, key.createdAt);
  }

  /** Re-wrapped under another master key (rotation). */
  replace(key: StoredDataKey): void {
    this.db
      .prepare("UPDATE data_keys SET master_fingerprint = ?, wrapped = ? WHERE id = ?")
      .run(key.masterFingerprint, key.wrapped, key.id);
  }
}
