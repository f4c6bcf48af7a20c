import { Long, type Document } from "bson";
import type { ClientConnection } from "../connection.js";
import type { Deployment } from "../deployment.js";
import { CommandError, ErrorCode } from "../errors.js";
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
  let reply: Document;
  try {
    const definition = commandRegistry.get(name);
    if (!definition) throw new CommandError(ErrorCode.CommandNotFound, `no such command: '${name}'`);
    if (deployment.authRequired && !definition.noAuth && !connection.user) {
      throw new CommandError(ErrorCode.Unauthorized, `Command ${name} requires authentication`);
    }
    deployment.faults.beforeCommand(name);
    const session = bindSession(deployment, command, definition.write === true);
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

function errorReply(deployment: Deployment, name: string, error: unknown): Document {
  if (error instanceof CommandError) return error.toReply();
  const message = error instanceof Error ? error.message : String(error);
  deployment.options.log(
    `command ${name} failed with an internal error: ${error instanceof Error ? error.stack : message}`,
  );
  return new CommandError(ErrorCode.InternalError, message).toReply();
}
