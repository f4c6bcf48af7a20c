#!/usr/bin/env node
import { Command } from "commander";
import { emulatorCommand } from "./emulator.js";

const program = new Command()
  .name("tidemark")
  .description("Continuous backup and point-in-time restore for MongoDB replica sets")
  .version("0.1.0")
  .showHelpAfterError();

program.addCommand(emulatorCommand());

program.parseAsync(process.argv).catch((error: unknown) => {
  process.stderr.write(`tidemark: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
