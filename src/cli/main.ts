#!/usr/bin/env node
import { Command } from "commander";
import { CliError } from "./apiClient.js";
import { agentCommand } from "./agent.js";
import { backupCommand, deploymentsCommand } from "./deployments.js";
import { demoCommand } from "./demo.js";
import { emulatorCommand } from "./emulator.js";
import { headdbCommand } from "./headdb.js";
import { serverCommand } from "./server.js";
import { slicesCommand } from "./slices.js";
import { restoreCommand } from "./restore.js";
import { exportCommand } from "./export.js";
import { importCommand } from "./import.js";
import { snapshotsCommand } from "./snapshots.js";

const program = new Command()
  .name("tidemark")
  .description("Continuous backup and point-in-time restore for MongoDB replica sets")
  .version("0.1.0")
  .showHelpAfterError();

program.addCommand(demoCommand());
program.addCommand(serverCommand());
program.addCommand(agentCommand());
program.addCommand(deploymentsCommand());
program.addCommand(backupCommand());
program.addCommand(slicesCommand());
program.addCommand(headdbCommand());
program.addCommand(snapshotsCommand());
program.addCommand(restoreCommand());
program.addCommand(exportCommand());
program.addCommand(importCommand());
program.addCommand(emulatorCommand());

program.parseAsync(process.argv).catch((error: unknown) => {
  const message = error instanceof Error ? error.message : String(error);
  process.stderr.write(`tidemark: ${message}\n`);
  if (error instanceof CliError && error.hint) process.stderr.write(`hint: ${error.hint}\n`);
  process.exit(error instanceof CliError ? error.exitCode : 1);
});
