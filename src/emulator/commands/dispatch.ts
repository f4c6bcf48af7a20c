import { Long, type Document } from "bson";
import type { ClientConnection } from "../connection.js";
import type { Deployment } from "../deployment.js";
import { CommandError, ErrorCode } from "../errors.js";
import { InjectedCommandError } from "../faults.js";
import { commandRegistry } from "./registry.js";
import { CommandContext } from "./context.js";
import { bindSession } from "./sessionInfo.js";

/** Runs one command and returns its reply document, errors included (never throws). */
export async function dispatchCommand(
  deployment: Deployment,
  connection: ClientConnection,
  db: string,
  command: Document,
  body: Buffer,
  sequences: Map<string, Buffer[]>,
): Promise<Document> {
  const name = Object.keys(command)[0] ?? "";
  deployment.receivedCommandCounts.set(name, (deployment.receivedCommandCounts.get(name) ?? 0) + 1);
  let reply: Document;
  try {
    const definition = commandRegistry.get(name);
    if (!definition) throw new CommandError(ErrorCode.CommandNotFound, `no such command: '${name}'`);
    if (deployment.authRequired && !definition.noAuth && !connection.user) {
      throw new CommandError(ErrorCode.Unauthorized, `Command ${name} requires authentication`);
    }
    deployment.faults.beforeCommand(name);
    const session = bindSession(deployment, command, definition.write === true, connection.user);
    const retried = session.retryable?.state.retryableReplies.get(name);
    if (retried) {
      reply = { ...retried, retriedStmtIds: undefined };
    } else {
      const ctx = new CommandContext(deployment, connection, db, name, command, body, sequences, session);
      reply = await definition.handler(ctx);
      if (session.retryable && reply.ok !== 0) session.retryable.state.retryableReplies.set(name, reply);
    }
    if (reply.ok === undefined) reply.ok = 1;
  } catch (error) {
    reply = errorReply(deployment, name, error);
    addServerErrorFields(deployment, name, command, reply, error);
  }
  if (deployment.faults.replyDelayMs > 0) {
    await new Promise((resolve) => setTimeout(resolve, deployment.faults.replyDelayMs));
  }
  const clusterTime = deployment.oplog.latest().ts;
  reply.$clusterTime = {
    clusterTime,
    signature: { hash: Buffer.alloc(20), keyId: Long.fromNumber(0) },
  };
  reply.operationTime = clusterTime;
  return reply;
}

/** MongoDB's RetriableError codes that the retryable writes specification lists. */
const RETRYABLE_CODES = new Set<number>([
  ErrorCode.HostUnreachable,
  7, // HostNotFound
  89, // NetworkTimeout
  ErrorCode.ShutdownInProgress,
  189, // PrimarySteppedDown
  262, // ExceededTimeLimit
  9001, // SocketException
  ErrorCode.NotWritablePrimary,
  ErrorCode.InterruptedAtShutdown,
  11602, // InterruptedDueToReplStateChange
  13435, // NotPrimaryNoSecondaryOk
  13436, // NotPrimaryOrSecondary
]);

/** The NotPrimaryError and ShutdownError categories, whose replies carry topologyVersion. */
const STATE_CHANGE_CODES = new Set<number>([
  ErrorCode.NotWritablePrimary,
  13435, // NotPrimaryNoSecondaryOk
  13436, // NotPrimaryOrSecondary
  11602, // InterruptedDueToReplStateChange
  189, // PrimarySteppedDown
  ErrorCode.ShutdownInProgress,
  ErrorCode.InterruptedAtShutdown,
]);

/**
 * What mongod adds to an error reply (service_entry_point_common.cpp,
 * appendErrorLabelsAndTopologyVersion): the RetryableWriteError label when a retryable write, or
 * a transaction's commit or abort, fails with a retryable code, and the topologyVersion of a
 * state-change error, which tells the driver whether the error is stale.
 */
function addServerErrorFields(
  deployment: Deployment,
  name: string,
  command: Document,
  reply: Document,
  error: unknown,
): void {
  const code = reply.code as number;
  const explicitLabels = error instanceof InjectedCommandError && error.explicitLabels !== undefined;
  const hasTxnNumber = command.txnNumber !== undefined;
  const retryableWrite = hasTxnNumber && command.autocommit === undefined;
  const commitOrAbort =
    hasTxnNumber &&
    command.autocommit !== undefined &&
    (name === "commitTransaction" || name === "abortTransaction");
  if (!explicitLabels && (retryableWrite || commitOrAbort) && RETRYABLE_CODES.has(code)) {
    const labels = (reply.errorLabels as string[] | undefined) ?? [];
    if (!labels.includes("RetryableWriteError")) reply.errorLabels = [...labels, "RetryableWriteError"];
  }
  if (STATE_CHANGE_CODES.has(code)) reply.topologyVersion = deployment.topologyVersion;
}

function errorReply(deployment: Deployment, name: string, error: unknown): Document {
  if (error instanceof CommandError) return error.toReply();
  const message = error instanceof Error ? error.message : String(error);
  deployment.options.log(
    `command ${name} failed with an internal error: ${error instanceof Error ? error.stack : message}`,
  );
  return new CommandError(ErrorCode.InternalError, message).toReply();
}
