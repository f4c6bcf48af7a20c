import { Long, Timestamp, type Document } from "bson";
import { CommandError, ErrorCode } from "./errors.js";
import type { OplogOperation } from "./oplog/oplog.js";

export type TransactionState = "in_progress" | "committed" | "aborted";

/**
 * A multi-document transaction. Its writes change the collections at once and keep an undo
 * step each, so abort can roll back; the oplog sees them only at commit, as one applyOps entry.
 * (Readers outside the transaction can see its uncommitted writes: a documented difference
 * from MongoDB's snapshot isolation that Tidemark's tests avoid relying on.)
 */
export class Transaction {
  state: TransactionState = "in_progress";
  readonly operations: OplogOperation[] = [];
  private readonly undo: Array<() => void> = [];

  constructor(
    readonly lsid: Document,
    readonly txnNumber: Long,
  ) {}

  record(operation: OplogOperation, undo: () => void): void {
    this.operations.push(operation);
    this.undo.push(undo);
  }

  rollback(): void {
    for (const step of this.undo.reverse()) step();
    this.undo.length = 0;
    this.operations.length = 0;
    this.state = "aborted";
  }

  assertInProgress(): void {
    if (this.state === "committed") {
      throw new CommandError(
        ErrorCode.TransactionCommitted,
        `Transaction with { txnNumber: ${this.txnNumber} } has been committed.`,
      );
    }
    if (this.state === "aborted") {
      throw new CommandError(
        ErrorCode.NoSuchTransaction,
        `Transaction with { txnNumber: ${this.txnNumber} } has been aborted.`,
        {},
        ["TransientTransactionError"],
      );
    }
  }
}

/** The prevOpTime of the first oplog entry of a transaction or retryable write chain. */
export const NO_PREVIOUS_OPTIME = { ts: new Timestamp({ t: 0, i: 0 }), t: Long.fromNumber(-1) };

/** Per logical session: the highest txnNumber seen, its transaction, and retryable results. */
export interface SessionState {
  txnNumber: Long;
  transaction?: Transaction;
  /** Replies of retryable write commands already executed under `txnNumber`, by command name. */
  retryableReplies: Map<string, Document>;
  /** The last oplog optime written under `txnNumber`, to chain prevOpTime. */
  lastOpTime?: { ts: Timestamp; t: Long };
}

export class SessionRegistry {
  private readonly sessions = new Map<string, SessionState>();

  get(key: string): SessionState | undefined {
    return this.sessions.get(key);
  }

  /** The session's state for `txnNumber`, starting a new number (and dropping the old state) if higher. */
  forTxnNumber(key: string, txnNumber: Long): SessionState {
    const existing = this.sessions.get(key);
    if (existing && existing.txnNumber.greaterThan(txnNumber)) {
      throw new CommandError(
        ErrorCode.TransactionTooOld,
        `Cannot start transaction ${txnNumber} on session because a newer transaction ${existing.txnNumber} has already started`,
      );
    }
    if (existing && existing.txnNumber.equals(txnNumber)) return existing;
    if (existing?.transaction?.state === "in_progress") existing.transaction.rollback();
    const state: SessionState = { txnNumber, retryableReplies: new Map() };
    this.sessions.set(key, state);
    return state;
  }

  end(key: string): void {
    const state = this.sessions.get(key);
    if (state?.transaction?.state === "in_progress") state.transaction.rollback();
    this.sessions.delete(key);
  }

  get activeCount(): number {
    return this.sessions.size;
  }
}
