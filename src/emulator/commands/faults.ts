import type { Document } from "bson";
import { CommandError, ErrorCode } from "../errors.js";
import type { CommandContext, CommandDefinition } from "./context.js";

/**
 * `{tidemarkFault: <action>, ...}` on the admin database, for tests that drive the emulator
 * from another process:
 *   closeConnections                      close every client connection (this one too)
 *   failCommand, command, code, times?, errorLabels?
 *                                         the next `times` commands named `command` fail; given
 *                                         errorLabels replace the labels the server would add
 *   dropReplies, command, times?          the next `times` commands named `command` run, then the
 *                                         connection closes instead of replying
 *   delayReplies, ms                      hold every reply `ms` milliseconds (0 stops)
 *   truncateOplog, keep                   keep only the newest `keep` oplog entries
 *   hideFromFind, ns, ids                 find on `ns` leaves out the documents with these _ids
 *   clear                                 stop failing, dropping, delaying and hiding
 */
function tidemarkFault(ctx: CommandContext): Document {
  const { command, deployment } = ctx;
  const faults = deployment.faultApi;
  if (ctx.db !== "admin")
    throw new CommandError(
      ErrorCode.Unauthorized,
      "tidemarkFault may only be run against the admin database",
    );
  if (!faults) throw new CommandError(ErrorCode.IllegalOperation, "fault injection is not available");
  switch (command.tidemarkFault) {
    case "closeConnections":
      // Reply first, then cut, so the caller learns the command ran (even if replies are delayed).
      ctx.connection.afterReply(() => faults.closeConnections());
      return { closing: deployment.connectionCount };
    case "failCommand":
      if (typeof command.command !== "string" || typeof command.code !== "number") {
        throw new CommandError(
          ErrorCode.BadValue,
          "failCommand needs 'command' (string) and 'code' (number)",
        );
      }
      faults.failCommand(
        command.command,
        command.code,
        Number(command.times ?? 1),
        command.errorLabels as string[] | undefined,
      );
      return {};
    case "dropReplies":
      if (typeof command.command !== "string")
        throw new CommandError(ErrorCode.BadValue, "dropReplies needs 'command' (string)");
      faults.dropReplies(command.command, Number(command.times ?? 1));
      return {};
    case "delayReplies":
      faults.delayReplies(Number(command.ms ?? 0));
      return {};
    case "truncateOplog":
      return { removed: faults.truncateOplog(Number(command.keep ?? 0)) };
    case "hideFromFind":
      if (typeof command.ns !== "string" || !Array.isArray(command.ids)) {
        throw new CommandError(ErrorCode.BadValue, "hideFromFind needs 'ns' (string) and 'ids' (array)");
      }
      faults.hideFromFind(command.ns, command.ids as unknown[]);
      return {};
    case "clear":
      faults.clear();
      return {};
    default:
      throw new CommandError(
        ErrorCode.BadValue,
        `unknown tidemarkFault action '${String(command.tidemarkFault)}'`,
      );
  }
}

export const faultCommands: CommandDefinition[] = [{ names: ["tidemarkFault"], handler: tidemarkFault }];
