/**
 * Transactions open at a snapshot's time. A snapshot at T holds only committed writes, but a large
 * or prepared transaction may have written entries before T (`partialTxn`, `prepare`) and commit
 * after it. The head database held those entries when the snapshot was taken (the manifest's
 * `heldFrom` is the oldest); a point-in-time restore reads the oplog from there and gives the
 * applier the entries of exactly those transactions, so their commit after T finds its chain.
 */
import { isNullOpTime, OplogEntry, transactionId } from "../../oplog/apply/index.js";

/** Whether the entry is an applyOps that the applier holds (a chain entry, not applied yet). */
function isHeldEntry(entry: OplogEntry): boolean {
  if (entry.op !== "c") return false;
  const o = entry.o;
  return o?.applyOps !== undefined && (o.partialTxn === true || o.prepare === true);
}

/** Whether the entry ends its transaction's chain (commits, aborts, or is the chain's last applyOps). */
function endsTransaction(entry: OplogEntry): boolean {
  if (entry.op !== "c") return false;
  const o = entry.o;
  if (o?.commitTransaction !== undefined || o?.abortTransaction !== undefined) return true;
  return o?.applyOps !== undefined && entry.multiOpType === undefined && !isHeldEntry(entry);
}

/**
 * The entries, among `entries` (raw oplog entries in order, up to and including T), of the
 * transactions still open after the last one, oldest first. A chain whose first entry is not in
 * `entries` is left out: it began before the oldest entry the head database held, so it had
 * ended by T.
 */
export function openTransactionEntries(entries: Iterable<Uint8Array>): Buffer[] {
  const chains = new Map<string, Buffer[]>();
  for (const bytes of entries) {
    const raw = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const entry = new OplogEntry(raw);
    const txnId = transactionId(entry);
    if (!txnId) continue;
    if (isHeldEntry(entry)) {
      const chain = chains.get(txnId);
      if (chain) chain.push(raw);
      else if (isNullOpTime(entry.prevOpTime)) chains.set(txnId, [raw]);
    } else if (endsTransaction(entry)) chains.delete(txnId);
  }
  return [...chains.values()].flat().sort((a, b) => {
    const x = new OplogEntry(a).ts!;
    const y = new OplogEntry(b).ts!;
    return x.t !== y.t ? x.t - y.t : x.i - y.i;
  });
}
