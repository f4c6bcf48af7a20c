/**
 * Held oplog entries of transactions that are not finished yet: the `partialTxn` entries of a
 * large transaction until its last applyOps, and a prepared transaction's entries until its
 * commitTransaction or abortTransaction. They live in the head database, in the transaction of
 * the batch that saw them, because the applied optime moves past them: after a crash, nothing
 * else would bring them back.
 */
import type { Timestamp } from "bson";
import { removeRange } from "./documents.js";
import { rangeEntries, type HeadEnvironment, type ReadOptions } from "./environment.js";
import { prefixRange, timestampKey } from "./keys.js";

export interface HeldEntry {
  /** The entry's ts, big-endian (see `timestampKey`). */
  tsKey: Buffer;
  raw: Buffer;
}

export class PendingTransactions {
  /** `read`: a view's read options (see `HeadEnvironment.readView`); such an instance only reads. */
  constructor(
    private readonly env: HeadEnvironment,
    private readonly read: ReadOptions = {},
  ) {}

  hold(txnId: string, ts: Timestamp, raw: Uint8Array): void {
    this.env.assertWriting("holding a transaction entry");
    this.env.stores.pending.putSync(Buffer.concat([prefix(txnId), timestampKey(ts)]), Buffer.from(raw));
  }

  /** The held entries of a transaction, oldest first. */
  entries(txnId: string): HeldEntry[] {
    const start = prefix(txnId);
    return [...this.env.stores.pending.getRange(prefixRange(start))].map(({ key, value }) => ({
      tsKey: Buffer.from(key.subarray(start.length)),
      raw: value,
    }));
  }

  /** The newest held entry of a transaction. */
  last(txnId: string): HeldEntry | undefined {
    const start = prefix(txnId);
    const range = prefixRange(start);
    for (const { key, value } of this.env.stores.pending.getRange({
      start: range.end,
      end: range.start,
      reverse: true,
      limit: 1,
    })) {
      if (!key.subarray(0, start.length).equals(start)) return undefined;
      return { tsKey: Buffer.from(key.subarray(start.length)), raw: value };
    }
    return undefined;
  }

  /** Forgets a transaction's held entries (applied or aborted); returns how many there were. */
  release(txnId: string): number {
    this.env.assertWriting("releasing a transaction");
    return removeRange(this.env.stores.pending, prefixRange(prefix(txnId)));
  }

  /** The ids of the transactions with held entries. */
  transactions(): string[] {
    const ids = new Set<string>();
    for (const key of this.env.stores.pending.getKeys({})) {
      const nul = key.indexOf(0);
      ids.add(key.subarray(0, nul).toString("utf8"));
    }
    return [...ids];
  }

  count(): number {
    return this.env.stores.pending.getCount({ ...this.read });
  }

  /**
   * The ts of the oldest held entry, as `{t, i}`: a point-in-time restore from a snapshot taken
   * now replays the oplog from there, so the transactions still open get their earlier entries.
   */
  oldestHeld(): { t: number; i: number } | undefined {
    let oldest: Buffer | undefined;
    for (const { key } of rangeEntries(this.env.stores.pending, { start: Buffer.alloc(0) }, this.read)) {
      const tsKey = key.subarray(key.indexOf(0) + 1);
      if (!oldest || Buffer.compare(tsKey, oldest) < 0) oldest = Buffer.from(tsKey);
    }
    return oldest && { t: oldest.readUInt32BE(0), i: oldest.readUInt32BE(4) };
  }
}

function prefix(txnId: string): Buffer {
  return Buffer.from(`${txnId}\0`, "utf8");
}
