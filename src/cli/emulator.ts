import { Command } from "commander";
import { portNumber, wholeNumber } from "./parsers.js";

export function emulatorCommand(): Command {
  return new Command("emulator")
    .description("Run an in-memory MongoDB 7.0-compatible one-member replica set (for tests and the demo)")
    .option("--host <host>", "interface to listen on", "127.0.0.1")
    .option("--port <port>", "TCP port (0 picks a free one)", portNumber, 27017)
    .option("--replset <name>", "replica set name", "rs0")
    .option("--user <name>", "require SCRAM authentication as this user (with --password)")
    .option("--password <pw>", "the user's password")
    .option("--oplog-size-mb <mb>", "capped size of local.oplog.rs", wholeNumber, 192)
    .option("--sample-data", "load demo databases (shop, telemetry, cms) after start", false)
    .option("--json", "print the connection details as JSON instead of text", false)
    .addHelpText(
      "after",
      `
Examples:
  $ tidemark emulator --port 27117 --user admin --password pw
  $ tidemark emulator --sample-data
  $ mongosh "mongodb://127.0.0.1:27017/?replicaSet=rs0"`,
    )
    .action(async (opts) => {
      // Loaded when run, not by main.ts: every command would pay for the emulator's modules.
      const { startEmulator } = await import("../emulator/server.js");
      const emulator = await startEmulator({
        host: opts.host,
        port: opts.port,
        replSet: opts.replset,
        user: opts.user,
        password: opts.password,
        oplogSizeMb: opts.oplogSizeMb,
        sampleData: opts.sampleData,
      });
      if (emulator.sampleData) {
        const { databases } = emulator.sampleData;
        const count = databases.reduce(
          (sum, db) => sum + db.collections.reduce((n, c) => n + c.documents, 0),
          0,
        );
        process.stderr.write(
          `loaded sample data: ${count} documents in ${databases.map((d) => d.name).join(", ")}\n`,
        );
      }
      const shown = emulator.uri.replace(/\/\/[^@/]*@/, "//<user>:<password>@");
      if (opts.json)
        process.stdout.write(`${JSON.stringify({ uri: shown, host: emulator.host, port: emulator.port })}\n`);
      else process.stdout.write(`emulator ready: ${shown}\n`);
      const stop = () => {
        void emulator.stop().then(() => process.exit(0));
      };
      process.once("SIGINT", stop);
      process.once("SIGTERM", stop);
    });
}
