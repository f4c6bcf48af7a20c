/**
 * The oplog applier: applies batches of raw oplog entries to a head database, each batch in one
 * LMDB write transaction that also advances the applied optime (and, when given, the slice
 * cursor and the phase state). A batch either commits whole or leaves no trace.
 *
 * Entries at or before the applied optime are skipped: that is how re-reading a slice after a
 * crash, or applying a batch twice, is harmless. Each operation is also idempotent on its own,
 * because the oplog from T0 is replayed over a clone that is already partly past it (see
 * `crud.ts`, `commands.ts`). An entry the applier does not know stops it with an
 * `OplogApplyError` that shows the entry; nothing is skipped silently, and the batch is not kept.
 */
import { HeadDbError } from "../../headdb/errors.js";
import type { HeadDatabase } from "../../headdb/headDatabase.js";
import type { OpTime } from "../../headdb/resumeState.js";
import {
  applyError,
  defaultNamespaceFilter,
  emptyStats,
  type ApplyStats,
  type NamespaceFilter,
} from "./context.js";
import { compareTimestamps, OplogEntry } from "./entry.js";
import { OplogApplyError } from "./errors.js";
import { applyOperation } from "./operation.js";

export interface OplogApplierOptions {
  /** Which namespaces to keep (default: `defaultNamespaceFilter`). */
  include?: NamespaceFilter;
}

export interface ApplyBatchOptions {
  /** The slice this batch completes: its stream's cursor moves in the same transaction. */
  sliceCursor?: { stream: string; sequence: number };
  /** The daemon's phase state to store in the same transaction. */
  phaseState?: Uint8Array;
}

export interface ApplyBatchResult extends ApplyStats {
  /** The applied optime after the batch (unchanged when every entry was skipped). */
  appliedOptime?: OpTime;
}

export class OplogApplier {
  private readonly include: NamespaceFilter;

  constructor(
    private readonly head: HeadDatabase,
    options: OplogApplierOptions = {},
  ) {
    this.include = options.include ?? defaultNamespaceFilter;
  }

  /** Applies `entries` (raw BSON oplog entries, in oplog order) in one write transaction. */
  applyBatch(entries: Iterable<Uint8Array>, options: ApplyBatchOptions = {}): ApplyBatchResult {
    const { head } = this;
    return head.write(() => {
      const stats = emptyStats();
      const ctx = { head, include: this.include, stats };
      const before = head.state.appliedOptime();
      let last: OpTime | undefined;
      for (const bytes of entries) {
        const entry = new OplogEntry(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
        const optime = entry.optime;
        if (!optime) throw applyError(entry, "MALFORMED_ENTRY", "an oplog entry needs a Timestamp 'ts'");
        if (before && compareTimestamps(optime.ts, before.ts) <= 0) {
          stats.skipped++;
          continue;
        }
        if (last && compareTimestamps(optime.ts, last.ts) <= 0)
          throw applyError(
            entry,
            "OUT_OF_ORDER",
            `ts ${optime.ts.t}:${optime.ts.i} is not after ${last.ts.t}:${last.ts.i}`,
          );
        try {
          applyOperation(ctx, entry);
        } catch (error) {
          if (error instanceof HeadDbError)
            throw applyError(entry, "HEAD_DB_ERROR", error.message, { cause: error });
          if (error instanceof OplogApplyError) throw error;
          throw applyError(entry, "MALFORMED_ENTRY", (error as Error).message, { cause: error });
        }
        stats.applied++;
        last = optime;
      }
      if (last) head.state.setAppliedOptime(last);
      if (options.sliceCursor)
        head.state.setSliceCursor(options.sliceCursor.stream, options.sliceCursor.sequence);
      if (options.phaseState) head.state.setPhaseState(options.phaseState);
      return { ...stats, appliedOptime: last ?? before };
    });
  }
}
