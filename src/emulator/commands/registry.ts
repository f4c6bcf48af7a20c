import { authCommands } from "./auth.js";
import type { CommandDefinition } from "./context.js";
import { ddlCommands } from "./ddl.js";
import { faultCommands } from "./faults.js";
import { handshakeCommands } from "./handshake.js";
import { readCommands } from "./read.js";
import { statsCommands } from "./stats.js";
import { transactionCommands } from "./transactions.js";
import { writeCommands } from "./write.js";

const definitions: CommandDefinition[] = [
  ...handshakeCommands,
  ...authCommands,
  ...readCommands,
  ...writeCommands,
  ...ddlCommands,
  ...statsCommands,
  ...transactionCommands,
  ...faultCommands,
];

/** Command name → definition. Names are case-sensitive in MongoDB; aliases are listed. */
export const commandRegistry = new Map<string, CommandDefinition>(
  definitions.flatMap((definition) => definition.names.map((name) => [name, definition] as const)),
);
