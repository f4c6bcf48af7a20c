import { EJSON, Timestamp } from "bson";
import type { OpTimeJson } from "../protocol/agentProtocol.js";
import type { SliceHeader } from "../slice/format.js";
import type { CatalogDatabase } from "./catalog.js";

export type SliceKind = "documents" | "oplog" | "catalog" | "missing";

export interface SliceRecord {
  deploymentId: string;
  generation: number;
  stream: string;
  sequence: number;
  kind: SliceKind;
  namespace: string | null;
  firstTs: OpTimeJson | null;
  lastTs: OpTimeJson | null;
  /** Canonical Extended JSON of `{_id}` of the slice's last document (documents slices). */
  lastId: string | null;
  count: number;
  bytes: number;
  uncompressedBytes: number;
  codec: string;
  sha256: string;
  storeKey: string;
  createdAt: number;
}

function opTime(ts: unknown): OpTimeJson | null {
  return ts instanceof Timestamp ? { t: ts.high >>> 0, i: ts.low >>> 0 } : null;
}

/** The catalog's record of a slice of `bytes` bytes stored under `storeKey`, from its header. */
export function sliceRecordOf(
  header: SliceHeader,
  where: { deploymentId: string; generation: number; storeKey: string; bytes: number },
): SliceRecord {
  return {
    deploymentId: where.deploymentId,
    generation: where.generation,
    stream: header.stream,
    sequence: Number(header.sequence),
    kind: header.kind,
    namespace: header.namespace ?? null,
    firstTs: opTime(header.firstTs),
    lastTs: opTime(header.lastTs),
    lastId: header.lastId === undefined ? null : EJSON.stringify({ _id: header.lastId }, { relaxed: false }),
    count: Number(header.count),
    bytes: where.bytes,
    uncompressedBytes: Number(header.uncompressedSize),
    codec: header.codec,
    sha256: header.bodySha256.toString("hex"),
    storeKey: where.storeKey,
    createdAt: Date.now(),
  };
}

interface Row {
  deployment_id: string;
  generation: number;
  stream: string;
  sequence: number;
  kind: SliceKind;
  namespace: string | null;
  first_ts: string | null;
  last_ts: string | null;
  last_id: string | null;
  count: number;
  bytes: number;
  uncompressed_bytes: number;
  codec: string;
  sha256: string;
  store_key: string;
  created_at: number;
}

function fromRow(row: Row): SliceRecord {
  return {
    deploymentId: row.deployment_id,
    generation: row.generation,
    stream: row.stream,
    sequence: row.sequence,
    kind: row.kind,
    namespace: row.namespace,
    firstTs: row.first_ts ? (JSON.parse(row.first_ts) as OpTimeJson) : null,
    lastTs: row.last_ts ? (JSON.parse(row.last_ts) as OpTimeJson) : null,
    lastId: row.last_id,
    count: row.count,
    bytes: row.bytes,
    uncompressedBytes: row.uncompressed_bytes,
    codec: row.codec,
    sha256: row.sha256,
    storeKey: row.store_key,
    createdAt: row.created_at,
  };
}

export interface StreamHead {
  stream: string;
  kind: SliceKind;
  namespace: string | null;
  /**
   * Every sequence up to this one was stored; the oldest applied oplog slices may have been
   * removed since by the retention window, never the newest.
   */
  lastSequence: number;
  lastTs: OpTimeJson | null;
  lastId: string | null;
}

export interface KindTotals {
  count: number;
  bytes: number;
  uncompressedBytes: number;
  documents: number;
}

/** The slices held in the oplog store, one row each; the store has the bytes. */
export class SliceRepository {
  constructor(private readonly db: CatalogDatabase) {}

  insert(slice: SliceRecord): void {
    this.db
      .prepare(
        `INSERT INTO slices (deployment_id, generation, stream, sequence, kind, namespace, first_ts, last_ts,
         last_id, count, bytes, uncompressed_bytes, codec, sha256, store_key, created_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(
        slice.deploymentId,
        slice.generation,
        slice.stream,
        slice.sequence,
        slice.kind,
        slice.namespace,
        slice.firstTs && JSON.stringify(slice.firstTs),
        slice.lastTs && JSON.stringify(slice.lastTs),
        slice.lastId,
        slice.count,
        slice.bytes,
        slice.uncompressedBytes,
        slice.codec,
        slice.sha256,
        slice.storeKey,
        slice.createdAt,
      );
  }

  get(deploymentId: string, generation: number, stream: string, sequence: number): SliceRecord | undefined {
    const row = this.db
      .prepare(
        "SELECT * FROM slices WHERE deployment_id = ? AND generation = ? AND stream = ? AND sequence = ?",
      )
      .get(deploymentId, generation, stream, sequence) as Row | undefined;
    return row && fromRow(row);
  }

  /** Slices of a deployment's generation, optionally of one kind, in stream and sequence order. */
  list(deploymentId: string, generation: number, kind?: SliceKind): SliceRecord[] {
    const rows = kind
      ? this.db
          .prepare(
            "SELECT * FROM slices WHERE deployment_id = ? AND generation = ? AND kind = ? ORDER BY stream, sequence",
          )
          .all(deploymentId, generation, kind)
      : this.db
          .prepare(
            "SELECT * FROM slices WHERE deployment_id = ? AND generation = ? ORDER BY stream, sequence",
          )
          .all(deploymentId, generation);
    return (rows as Row[]).map(fromRow);
  }

  /**
   * The newest slice of every stream. The agent uploads one slice at a time per stream and the
   * server refuses gaps, so a stream's slices were stored as 0..lastSequence (retention removes
   * applied oplog slices from the start, never the newest).
   */
  streamHeads(deploymentId: string, generation: number): StreamHead[] {
    const rows = this.db
      .prepare(
        `SELECT s.* FROM slices s JOIN (
           SELECT stream, MAX(sequence) AS sequence FROM slices
           WHERE deployment_id = ? AND generation = ? GROUP BY stream
         ) m ON s.stream = m.stream AND s.sequence = m.sequence
         WHERE s.deployment_id = ? AND s.generation = ?`,
      )
      .all(deploymentId, generation, deploymentId, generation) as Row[];
    return rows.map((row) => {
      const slice = fromRow(row);
      return {
        stream: slice.stream,
        kind: slice.kind,
        namespace: slice.namespace,
        lastSequence: slice.sequence,
        lastTs: slice.lastTs,
        lastId: slice.lastId,
      };
    });
  }

  totals(deploymentId: string, generation: number): Record<SliceKind, KindTotals> {
    const rows = this.db
      .prepare(
        `SELECT kind, COUNT(*) AS count, SUM(bytes) AS bytes, SUM(uncompressed_bytes) AS uncompressed,
         SUM(count) AS documents FROM slices WHERE deployment_id = ? AND generation = ? GROUP BY kind`,
      )
      .all(deploymentId, generation) as Array<{
      kind: SliceKind;
      count: number;
      bytes: number;
      uncompressed: number;
      documents: number;
    }>;
    const empty = (): KindTotals => ({ count: 0, bytes: 0, uncompressedBytes: 0, documents: 0 });
    const totals: Record<SliceKind, KindTotals> = {
      documents: empty(),
      oplog: empty(),
      catalog: empty(),
      missing: empty(),
    };
    for (const row of rows) {
      totals[row.kind] = {
        count: row.count,
        bytes: row.bytes,
        uncompressedBytes: row.uncompressed,
        documents: row.documents,
      };
    }
    return totals;
  }

  /**
   * Oplog slices whose newest entry is older than `beforeSeconds` (a ts' seconds) and whose
   * sequence is at most `maxSequence`, oldest first: what the retention window lets go.
   */
  expiredOplogSlices(
    deploymentId: string,
    generation: number,
    beforeSeconds: number,
    maxSequence: number,
  ): SliceRecord[] {
    const rows = this.db
      .prepare(
        `SELECT * FROM slices WHERE deployment_id = ? AND generation = ? AND stream = 'oplog'
         AND sequence <= ? AND json_extract(last_ts, '$.t') < ? ORDER BY sequence`,
      )
      .all(deploymentId, generation, maxSequence, beforeSeconds) as Row[];
    return rows.map(fromRow);
  }

  delete(deploymentId: string, generation: number, stream: string, sequence: number): void {
    this.db
      .prepare(
        "DELETE FROM slices WHERE deployment_id = ? AND generation = ? AND stream = ? AND sequence = ?",
      )
      .run(deploymentId, generation, stream, sequence);
  }

  deleteForDeployment(deploymentId: string): void {
    this.db.prepare("DELETE FROM slices WHERE deployment_id = ?").run(deploymentId);
  }

  deleteOlderGenerations(deploymentId: string, generation: number): void {
    this.db
      .prepare("DELETE FROM slices WHERE deployment_id = ? AND generation < ?")
      .run(deploymentId, generation);
  }
}
