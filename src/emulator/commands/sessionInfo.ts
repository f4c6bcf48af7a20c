import { createHash } from "node:crypto";
import { Binary, Long, type Document } from "bson";
import { CommandError, ErrorCode } from "../errors.js";
import type { Deployment } from "../deployment.js";
import { Transaction } from "../transactions.js";
import type { RetryableWrite } from "../writer.js";

/** How a command relates to its logical session: plain, retryable write, or in a transaction. */
export interface SessionBinding {
  sessionKey?: string;
  transaction?: Transaction;
  retryable?: RetryableWrite;
}

export function sessionKeyOf(lsid: Document): string {
  const id = lsid.id;
  return id instanceof Binary ? Buffer.from(id.buffer).toString("hex") : JSON.stringify(id);
}

/**
 * The logical session id as mongod records it (oplog entries, config.transactions): the client's
 * `id` plus `uid`, the SHA-256 of the authenticated user's `user@db`, or of the empty string when
 * no one is authenticated (`makeLogicalSessionId`; e.g. 47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=
 * in every unauthenticated entry of the mongo-tools and PBM fixtures).
 */
export function logicalSessionId(lsid: Document, user: string | undefined): Document {
  if (lsid.uid !== undefined) return { id: lsid.id, uid: lsid.uid };
  const digest = createHash("sha256");
  digest.update(user ?? "");
  return { id: lsid.id, uid: new Binary(digest.digest()) };
}

/** Reads lsid / txnNumber / startTransaction / autocommit the way mongod does. */
export function bindSession(
  deployment: Deployment,
  command: Document,
  isWrite: boolean,
  user?: string,
): SessionBinding {
  const clientLsid = command.lsid as Document | undefined;
  if (!clientLsid) return {};
  const sessionKey = sessionKeyOf(clientLsid);
  const lsid = logicalSessionId(clientLsid, user);
  const rawTxn = command.txnNumber as unknown;
  if (rawTxn === undefined) return { sessionKey };
  const txnNumber = Long.isLong(rawTxn) ? rawTxn : Long.fromNumber(Number(rawTxn));
  const state = deployment.sessions.forTxnNumber(sessionKey, txnNumber);

  if (command.autocommit === false) {
    if (command.startTransaction === true) {
      if (state.transaction) {
        throw new CommandError(
          50911,
          `Cannot start a transaction at given transaction number ${txnNumber}: a transaction with the same number is in progress`,
        );
      }
      state.transaction = new Transaction(lsid, txnNumber);
    }
    if (!state.transaction) {
      throw new CommandError(
        ErrorCode.NoSuchTransaction,
        `Given transaction number ${txnNumber} does not match any in-progress transactions.`,
        {},
        ["TransientTransactionError"],
      );
    }
    return { sessionKey, transaction: state.transaction };
  }
  return isWrite ? { sessionKey, retryable: { lsid, state } } : { sessionKey };
}
