import { deserialize, type Document } from "bson";
import { RawDocument } from "../bson/rawDocument.js";
import type { Oplog, OplogOperation } from "./oplog/oplog.js";
import type { Collection, IdKey } from "./storage/collection.js";
import { NO_PREVIOUS_OPTIME, type SessionState, type Transaction } from "./transactions.js";

/** `{_id}` of a stored document with the `_id`'s exact BSON type, for o2 and delete entries. */
export function idDocumentOf(raw: Uint8Array): Document {
  return { _id: deserialize(raw, { promoteValues: false })._id };
}

export interface RetryableWrite {
  lsid: Document;
  state: SessionState;
}

/**
 * Changes collections and records each change for the oplog: at once for plain and retryable
 * writes (with lsid, txnNumber, stmtId and a prevOpTime chain), or into the transaction, which
 * logs them at commit.
 */
export class Writer {
  /** The statement id of the next retryable-write entry: the statement's index in its command. */
  private stmtId = 0;

  constructor(
    private readonly oplog: Oplog,
    private readonly options: { transaction?: Transaction; retryable?: RetryableWrite } = {},
  ) {}

  /**
   * Sets the statement id for the entries that follow: mongod stamps a retryable write's entry
   * with the index of its statement in the command (`documents`, `updates` or `deletes`), so a
   * statement that writes nothing leaves a gap.
   */
  atStatement(index: number): this {
    this.stmtId = index;
    return this;
  }

  /** An insert entry: `o` is the stored document byte for byte, `o2` its document key `{_id}` (5.3+). */
  insert(collection: Collection, raw: Buffer): IdKey {
    const key = collection.insert(raw);
    this.record(
      { op: "i", ns: collection.ns, ui: collection.uuid, o: new RawDocument(raw), o2: idDocumentOf(raw) },
      () => collection.remove(key),
    );
    return key;
  }

  replace(collection: Collection, key: IdKey, raw: Buffer, o: Document | RawDocument): void {
    const old = collection.replace(key, raw);
    this.record({ op: "u", ns: collection.ns, ui: collection.uuid, o, o2: idDocumentOf(raw) }, () =>
      collection.replace(key, old),
    );
  }

  remove(collection: Collection, key: IdKey): Buffer | undefined {
    const old = collection.remove(key);
    if (!old) return undefined;
    this.record({ op: "d", ns: collection.ns, ui: collection.uuid, o: idDocumentOf(old) }, () =>
      collection.insert(old),
    );
    return old;
  }

  /**
   * A DDL entry on `<db>.$cmd`. Inside a transaction (an implicit or explicit create) it joins
   * the transaction's applyOps, and `undo` rolls it back on abort; outside, it is logged at once
   * and never carries session fields, even during a retryable write.
   */
  command(
    db: string,
    o: Document,
    extra: { ui?: Collection["uuid"]; o2?: Document } = {},
    undo: () => void = () => {},
  ): void {
    const operation: OplogOperation = { op: "c", ns: `${db}.$cmd`, ui: extra.ui, o };
    if (extra.o2) operation.o2 = extra.o2;
    if (this.options.transaction) this.options.transaction.record(operation, undo);
    else this.oplog.append(operation);
  }

  private record(operation: OplogOperation, undo: () => void): void {
    const { transaction, retryable } = this.options;
    if (transaction) {
      transaction.record(operation, undo);
      return;
    }
    if (retryable) {
      const opTime = this.oplog.append(operation, {
        lsid: retryable.lsid,
        txnNumber: retryable.state.txnNumber,
        stmtId: this.stmtId++,
        prevOpTime: retryable.state.lastOpTime ?? NO_PREVIOUS_OPTIME,
      });
      retryable.state.lastOpTime = opTime;
      return;
    }
    this.oplog.append(operation);
  }
}
