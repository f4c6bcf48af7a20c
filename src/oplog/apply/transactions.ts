/**
 * applyOps and transactions (`op: "c"`, `o.applyOps: [...]`):
 *
 * - applyOps without a session (`lsid`), or nested inside another applyOps, is a group of
 *   operations applied at once; it is not a transaction;
 * - a small unprepared transaction is one applyOps entry with `lsid`, `txnNumber` and a null
 *   `prevOpTime`: applied at once;
 * - a large one is a chain of entries with `o.partialTxn: true`, each `prevOpTime` pointing at the
 *   previous entry, ended by an applyOps without `partialTxn` (with `o.count`): the partial
 *   entries are held until that last entry, then the whole chain is applied in order;
 * - a prepared transaction ends its chain with `o.prepare: true`; it is held until a
 *   commitTransaction (applied then) or abortTransaction (dropped) of the same session and
 *   txnNumber;
 * - vectored inserts (`multiOpType: 1`) are applyOps entries of a retryable write, chained by
 *   `prevOpTime` but each applied on its own.
 *
 * Held entries are stored in the head database (`PendingTransactions`), so a chain survives a
 * crash between the batches that carry it. A chain whose beginning the applier never saw (it
 * started before the first applied entry) cannot be applied, and stops the applier.
 */
import { EJSON } from "bson";
import { applyError, type ApplyContext } from "./context.js";
import { compareTimestamps, isNullOpTime, OplogEntry } from "./entry.js";
import { applyOperation } from "./operation.js";

/** A transaction's identity: its session (`lsid`, with internal-session fields) and txnNumber. */
export function transactionId(entry: OplogEntry): string | undefined {
  const lsid = entry.lsid;
  const txnNumber = entry.txnNumber;
  if (!lsid || txnNumber === undefined) return undefined;
  return `${EJSON.stringify(lsid, { relaxed: false })}#${txnNumber.toString()}`;
}

export function applyApplyOps(ctx: ApplyContext, entry: OplogEntry): void {
  const o = entry.o!;
  const txnId = entry.parent ? undefined : transactionId(entry);
  if (o.partialTxn === true || o.prepare === true) {
    if (!txnId)
      throw applyError(entry, "MALFORMED_ENTRY", "a partialTxn or prepare applyOps needs lsid and txnNumber");
    checkLink(ctx, entry, txnId);
    ctx.head.pending.hold(txnId, entry.ts!, entry.raw);
    ctx.stats.held++;
    return;
  }
  if (txnId && entry.multiOpType === undefined) {
    if (ctx.head.pending.last(txnId)) {
      checkLink(ctx, entry, txnId);
      applyChain(ctx, [...heldEntries(ctx, txnId), entry], txnId);
      return;
    }
    if (!isNullOpTime(entry.prevOpTime)) {
      throw applyError(
        entry,
        "TXN_CHAIN_BROKEN",
        "this applyOps ends a transaction whose earlier entries (prevOpTime) were not seen by the applier",
      );
    }
    ctx.stats.transactionsApplied++;
  }
  applyOperations(ctx, entry);
}

/** `{commitTransaction: 1, commitTimestamp}`: apply the prepared transaction of this session. */
export function commitTransaction(ctx: ApplyContext, entry: OplogEntry): void {
  const txnId = requireTransactionId(entry);
  const held = heldEntries(ctx, txnId);
  if (held.length === 0 || held[held.length - 1].o?.prepare !== true) {
    throw applyError(
      entry,
      "TXN_CHAIN_BROKEN",
      "commitTransaction of a transaction whose prepared applyOps the applier has not seen",
    );
  }
  applyChain(ctx, held, txnId);
}

/** `{abortTransaction: 1}`: the transaction's held entries are dropped; nothing was applied. */
export function abortTransaction(ctx: ApplyContext, entry: OplogEntry): void {
  const txnId = requireTransactionId(entry);
  if (ctx.head.pending.release(txnId) > 0) ctx.stats.transactionsAborted++;
}

function requireTransactionId(entry: OplogEntry): string {
  const txnId = entry.parent ? undefined : transactionId(entry);
  if (!txnId) throw applyError(entry, "MALFORMED_ENTRY", "a transaction command needs lsid and txnNumber");
  return txnId;
}

function heldEntries(ctx: ApplyContext, txnId: string): OplogEntry[] {
  return ctx.head.pending.entries(txnId).map((held) => new OplogEntry(held.raw));
}

/** The entry's prevOpTime must point at the last held entry of its transaction (or be null if none). */
function checkLink(ctx: ApplyContext, entry: OplogEntry, txnId: string): void {
  const newest = ctx.head.pending.last(txnId);
  const prev = entry.prevOpTime;
  if (!newest) {
    if (!isNullOpTime(prev))
      throw applyError(
        entry,
        "TXN_CHAIN_BROKEN",
        "this transaction entry follows entries (prevOpTime) that the applier has not seen",
      );
    return;
  }
  const last = new OplogEntry(newest.raw);
  if (last.o?.prepare === true)
    throw applyError(
      entry,
      "TXN_CHAIN_BROKEN",
      "an applyOps follows a prepared applyOps of the same transaction",
    );
  if (!prev || isNullOpTime(prev) || compareTimestamps(prev.ts, last.ts!) !== 0) {
    const at = prev ? `${prev.ts.t}:${prev.ts.i}` : "none";
    throw applyError(
      entry,
      "TXN_CHAIN_BROKEN",
      `prevOpTime ${at} does not point at the transaction's last held entry ${last.ts!.t}:${last.ts!.i}`,
    );
  }
}

/**
 * Applies a whole chain in order and forgets what was held for it. The chain's last applyOps (the
 * one without partialTxn, or the prepared one) counts the operations of the whole chain.
 */
function applyChain(ctx: ApplyContext, chain: OplogEntry[], txnId: string): void {
  const last = chain[chain.length - 1];
  const count = last.o?.count;
  if (count !== undefined) {
    const total = chain.reduce((sum, entry) => sum + operationsOf(entry).length, 0);
    if (Number(count) !== total)
      throw applyError(
        last,
        "TXN_COUNT_MISMATCH",
        `the transaction counts ${Number(count)} operations; its chain holds ${total}`,
      );
  }
  for (const entry of chain) applyOperations(ctx, entry);
  ctx.head.pending.release(txnId);
  ctx.stats.transactionsApplied++;
}

function operationsOf(entry: OplogEntry): Buffer[] {
  const o = entry.oBytes!;
  const holder = new OplogEntry(o, entry);
  const operations = holder.arrayDocuments("applyOps");
  if (!operations) throw applyError(entry, "MALFORMED_ENTRY", "'applyOps' must be an array of operations");
  return operations;
}

/** Applies the operations inside an applyOps entry, in order, each with the entry's ts. */
function applyOperations(ctx: ApplyContext, entry: OplogEntry): void {
  for (const raw of operationsOf(entry)) applyOperation(ctx, new OplogEntry(raw, entry));
}
