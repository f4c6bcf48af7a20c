import { Long, type Document, type Timestamp, type UUID } from "bson";
import { buildDocument, RawDocument } from "../../bson/rawDocument.js";
import type { Catalog } from "../storage/catalog.js";
import type { Collection } from "../storage/collection.js";
import { recordIdOf, type ClusterClock, timestampOf } from "./clock.js";

export const OPLOG_DB = "local";
export const OPLOG_COLLECTION = "oplog.rs";
/** A one-member replica set never changes term. */
export const TERM = Long.fromNumber(1);

export interface OplogOperation {
  op: "i" | "u" | "d" | "c" | "n";
  ns: string;
  ui?: UUID;
  o: Document | RawDocument;
  o2?: Document | RawDocument;
}

/** Session fields of retryable writes and transactions (lsid, txnNumber, stmtId, prevOpTime). */
export interface SessionStamp {
  lsid: Document;
  txnNumber: Long;
  stmtId?: number;
  prevOpTime?: OpTime;
}

export interface OpTime {
  ts: Timestamp;
  t: Long;
}

/**
 * local.oplog.rs: a capped collection whose RecordIds are the entries' timestamps, written in
 * MongoDB 7.0's field order. Tailing cursors wait on `waitForEntryAfter`.
 */
export class Oplog {
  readonly collection: Collection;
  private readonly waiters = new Set<() => void>();
  private lastWriteMs = Date.now();

  constructor(
    catalog: Catalog,
    private readonly clock: ClusterClock,
    private maxBytes: number,
  ) {
    this.collection = catalog.createCollection(OPLOG_DB, OPLOG_COLLECTION, {
      options: { capped: true, size: maxBytes },
      autoIndexId: false,
    });
  }

  append(operation: OplogOperation, stamp?: SessionStamp): OpTime {
    const ts = this.clock.next();
    const wall = new Date();
    const entry = buildDocument([
      ["lsid", stamp?.lsid],
      ["txnNumber", stamp?.txnNumber],
      ["op", operation.op],
      ["ns", operation.ns],
      ["ui", operation.ui],
      ["o", operation.o],
      ["o2", operation.o2],
      ["stmtId", stamp?.stmtId],
      ["ts", ts],
      ["t", TERM],
      ["v", Long.fromNumber(2)],
      ["wall", wall],
      ["prevOpTime", stamp?.prevOpTime],
    ]);
    this.collection.insert(entry, recordIdOf(ts));
    this.lastWriteMs = wall.getTime();
    this.trim();
    for (const wake of [...this.waiters]) wake();
    return { ts, t: TERM };
  }

  latest(): OpTime {
    const newest = this.collection.newestRecordId();
    return { ts: newest === undefined ? this.clock.current() : timestampOf(newest), t: TERM };
  }

  oldest(): OpTime | undefined {
    const oldest = this.collection.oldestRecordId();
    return oldest === undefined ? undefined : { ts: timestampOf(oldest), t: TERM };
  }

  get millisSinceLastWrite(): number {
    return Date.now() - this.lastWriteMs;
  }

  /** Resolves when an entry newer than `recordId` exists, or after `timeoutMs`. */
  waitForEntryAfter(recordId: bigint | undefined, timeoutMs: number): Promise<void> {
    const newest = this.collection.newestRecordId();
    if (newest !== undefined && (recordId === undefined || newest > recordId)) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.waiters.delete(done);
        resolve();
      };
      const timer = setTimeout(done, timeoutMs);
      this.waiters.add(done);
    });
  }

  /** Wakes every waiting tailable cursor (used at shutdown). */
  wakeAll(): void {
    for (const wake of [...this.waiters]) wake();
  }

  /** Fault injection: keep only the newest `keep` entries, as if the oplog had rolled over. */
  truncateToNewest(keep: number): number {
    let removed = 0;
    while (this.collection.count > keep) {
      this.collection.removeOldest();
      removed++;
    }
    return removed;
  }

  resize(maxBytes: number): void {
    this.maxBytes = maxBytes;
    this.trim();
  }

  private trim(): void {
    while (this.collection.dataSize > this.maxBytes && this.collection.count > 1)
      this.collection.removeOldest();
  }
}

export { RawDocument };
