import { Binary, type Document } from "bson";
import { isScramMechanism, ScramAuthenticationError, ScramConversation } from "../auth/scram.js";
import { CommandError, ErrorCode } from "../errors.js";
import type { CommandContext, CommandDefinition } from "./context.js";

let nextConversationId = 1;

function authenticationFailed(): CommandError {
  return new CommandError(ErrorCode.AuthenticationFailed, "Authentication failed.");
}

function payloadOf(command: Document): Buffer {
  const payload = command.payload as unknown;
  if (payload instanceof Binary) return Buffer.from(payload.buffer);
  if (typeof payload === "string") return Buffer.from(payload, "base64");
  throw new CommandError(ErrorCode.BadValue, "SASL payload must be BinData");
}

/** saslStart, also used for hello's speculativeAuthenticate. */
export function saslStart(ctx: CommandContext, command: Document, db: string): Document {
  const mechanism = command.mechanism;
  if (!isScramMechanism(mechanism)) {
    throw new CommandError(
      ErrorCode.BadValue,
      `Unsupported mechanism '${String(mechanism)}'; use SCRAM-SHA-256 or SCRAM-SHA-1`,
    );
  }
  const users = ctx.deployment.users;
  const conversation = new ScramConversation(
    mechanism,
    (username) => {
      const user = users.get(username);
      return user && user.db === db ? user.credentials[mechanism] : undefined;
    },
    { skipEmptyExchange: (command.options as Document | undefined)?.skipEmptyExchange === true },
  );
  let serverFirst: Buffer;
  try {
    serverFirst = conversation.start(payloadOf(command));
  } catch (error) {
    if (error instanceof ScramAuthenticationError) throw authenticationFailed();
    throw error;
  }
  const conversationId = nextConversationId++;
  ctx.connection.saslConversations.set(conversationId, { conversation, db });
  return { conversationId, done: false, payload: new Binary(serverFirst) };
}

function saslContinue(ctx: CommandContext): Document {
  const conversationId = Number(ctx.command.conversationId);
  const entry = ctx.connection.saslConversations.get(conversationId);
  if (!entry)
    throw new CommandError(
      ErrorCode.ProtocolError,
      `No SASL session state found for conversation ${conversationId}`,
    );
  let result;
  try {
    result = entry.conversation.continue(payloadOf(ctx.command));
  } catch (error) {
    ctx.connection.saslConversations.delete(conversationId);
    if (error instanceof ScramAuthenticationError) throw authenticationFailed();
    throw error;
  }
  if (result.done) {
    ctx.connection.saslConversations.delete(conversationId);
    ctx.connection.user = `${entry.conversation.username}@${entry.db}`;
  }
  return { conversationId, done: result.done, payload: new Binary(result.payload) };
}

function logout(ctx: CommandContext): Document {
  ctx.connection.user = undefined;
  return {};
}

export const authCommands: CommandDefinition[] = [
  { names: ["saslStart"], handler: (ctx) => saslStart(ctx, ctx.command, ctx.db), noAuth: true },
  { names: ["saslContinue"], handler: saslContinue, noAuth: true },
  { names: ["logout"], handler: logout, noAuth: true },
];
