import type { Document } from "bson";
import { CommandError, ErrorCode } from "../errors.js";
import { NO_PREVIOUS_OPTIME } from "../transactions.js";
import type { CommandContext, CommandDefinition } from "./context.js";

function requireTransaction(ctx: CommandContext) {
  const transaction = ctx.session.transaction;
  if (!transaction) {
    throw new CommandError(
      ErrorCode.NoSuchTransaction,
      "Given transaction number does not match any in-progress transactions.",
      {},
      ["TransientTransactionError"],
    );
  }
  return transaction;
}

/**
 * Commits: the transaction's operations become one applyOps oplog entry (with lsid, txnNumber
 * and a prevOpTime of {ts: Timestamp(0, 0), t: -1}), as MongoDB logs an unprepared transaction.
 */
function commitTransaction(ctx: CommandContext): Document {
  const transaction = requireTransaction(ctx);
  if (transaction.state === "committed") return {}; // a retried commit succeeds again
  transaction.assertInProgress();
  if (transaction.operations.length > 0) {
    ctx.deployment.oplog.append(
      { op: "c", ns: "admin.$cmd", o: { applyOps: transaction.operations.map((op) => ({ ...op })) } },
      { lsid: transaction.lsid, txnNumber: transaction.txnNumber, prevOpTime: NO_PREVIOUS_OPTIME },
    );
  }
  transaction.state = "committed";
  return {};
}

function abortTransaction(ctx: CommandContext): Document {
  const transaction = requireTransaction(ctx);
  transaction.assertInProgress();
  transaction.rollback();
  return {};
}

export const transactionCommands: CommandDefinition[] = [
  { names: ["commitTransaction"], handler: commitTransaction },
  { names: ["abortTransaction"], handler: abortTransaction },
];
