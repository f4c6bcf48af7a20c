import { existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { Command } from "commander";
import { portNumber, positiveNumber } from "./parsers.js";
import type { DeploymentView } from "../server/deploymentView.js";
import { CliError } from "./apiClient.js";

async function callApi<T>(method: string, url: string, key: string, body?: unknown): Promise<T> {
  const response = await fetch(url, {
    method,
    headers: {
      authorization: `Bearer ${key}`,
      ...(body === undefined ? {} : { "content-type": "application/json" }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const parsed = (await response.json()) as T & { error?: string };
  if (!response.ok) throw new Error(`${url}: ${parsed.error ?? response.status}`);
  return parsed;
}

/** Marks a directory the demo made, so that it only ever empties its own. */
const DEMO_MARKER = ".tidemark-demo";

/**
 * Empties the demo's data directory (the emulator keeps its data in memory, so every demo backs
 * up afresh), but only a directory that is new, empty or marked as a demo's: never a real
 * server's data given by mistake.
 */
export function resetDemoDirectory(dataDir: string): void {
  if (existsSync(dataDir) && readdirSync(dataDir).length > 0) {
    if (!existsSync(join(dataDir, DEMO_MARKER)))
      throw new CliError(
        `--data-dir ${dataDir} holds data that is not a demo's (no ${DEMO_MARKER} file); the demo empties its data directory at every start`,
        "choose another --data-dir (default ./demo-data), or empty that one yourself",
        2,
      );
    rmSync(dataDir, { recursive: true, force: true });
  }
  mkdirSync(dataDir, { recursive: true });
  writeFileSync(
    join(dataDir, DEMO_MARKER),
    "This directory belongs to `tidemark demo`, which empties it at every start.\n",
  );
}

/** `starting`, with a hint when the port is taken. */
async function listening<T>(what: string, option: string, port: number, starting: Promise<T>): Promise<T> {
  try {
    return await starting;
  } catch (error) {
    if ((error as { code?: string }).code === "EADDRINUSE")
      throw new CliError(
        `${what} cannot listen on port ${port}: it is in use`,
        `stop what uses it, or pick another port with ${option} (0 picks a free one)`,
        2,
      );
    throw error;
  }
}

interface DemoOptions {
  dataDir: string;
  port: number;
  mongoPort: number;
  workload: boolean;
  writesPerSecond: number;
  json?: boolean;
}

/**
 * Everything on one machine with embedded defaults: the emulator (with the demo databases) as
 * the deployment, a server on a fresh data directory, an agent backing the deployment up, and a
 * light write workload.
 */
export function demoCommand(): Command {
  return new Command("demo")
    .description(
      "Run Tidemark on embedded defaults: the emulator as the deployment, a server, an agent and a write workload",
    )
    .option("--data-dir <dir>", "the server's data directory (emptied at start)", "./demo-data")
    .option("--port <port>", "the server's HTTP port (0 picks a free one)", portNumber, 8080)
    .option("--mongo-port <port>", "the emulator's port (0 picks a free one)", portNumber, 27017)
    .option("--no-workload", "no write workload (e.g. to try `tidemark headdb verify demo`)")
    .option("--writes-per-second <n>", "the workload's rate", positiveNumber, 10)
    .option("--json", "print the addresses and the admin key as one JSON line, and phases as JSON lines")
    .addHelpText(
      "after",
      `
The emulator keeps its data in memory, so every demo starts a fresh backup: the data directory is
emptied at start. Open the Backup page it prints and sign in with the admin key.

Examples:
  $ npm run demo                                  # the same as: npx tidemark demo
  $ npx tidemark demo --port 9090 --mongo-port 27117 --no-workload
  $ npx tidemark headdb verify demo               # in another shell, with the printed export line`,
    )
    .action(async (opts: DemoOptions) => {
      // Loaded when run, not by main.ts: every command would pay for all of Tidemark's modules.
      const [{ startAgent }, { startEmulator }, { startServer }, { startDemoWorkload }] = await Promise.all([
        import("../agent/agent.js"),
        import("../emulator/server.js"),
        import("../server/server.js"),
        import("../demo/workload.js"),
      ]);
      const say = (line: string) => process.stderr.write(`${line}\n`);
      const dataDir = resolve(opts.dataDir);
      resetDemoDirectory(dataDir);
      const emulator = await listening(
        "the emulator",
        "--mongo-port",
        opts.mongoPort,
        startEmulator({ port: opts.mongoPort, sampleData: true, log: () => {} }),
      );
      // The server's own log (daemon errors included) goes to stderr.
      const server = await listening(
        "the server",
        "--port",
        opts.port,
        startServer({ dataDir, port: opts.port, log: (line) => say(`server: ${line}`) }),
      ).catch(async (error: unknown) => {
        await emulator.stop();
        throw error;
      });
      const adminKey = server.generatedAdminKey!;
      const deployments = `${server.url}/api/v1/deployments`;
      const { id, agentKey } = await callApi<{ id: string; agentKey: string }>(
        "POST",
        deployments,
        adminKey,
        {
          name: "demo",
        },
      );
      const agent = startAgent({
        serverUrl: server.url,
        agentKey,
        deploymentId: id,
        sourceUri: emulator.uri,
        // Only what needs attention; the demo's own output says what is going on.
        logLevel: "warn",
      });
      await callApi("POST", `${deployments}/${id}/backup/start`, adminKey);
      const workload = opts.workload
        ? await startDemoWorkload({ uri: emulator.uri, writesPerSecond: opts.writesPerSecond, log: say })
        : undefined;
      const backupPage = `${server.url}/`;
      if (opts.json) {
        process.stdout.write(
          `${JSON.stringify({ deployment: emulator.uri, backupPage, adminKey, dataDir, workload: opts.workload })}\n`,
        );
      } else {
        process.stdout.write(
          [
            `Tidemark demo`,
            `  deployment (emulator): ${emulator.uri}`,
            `  Backup page:           ${backupPage}`,
            `  admin key:             ${adminKey}   (sign in with it; shown once)`,
            `  data directory:        ${dataDir}`,
            `  write workload:        ${opts.workload ? `${opts.writesPerSecond} writes/s into shop, telemetry and cms` : "off"}`,
            `  other commands:        export TIDEMARK_URL=${server.url} TIDEMARK_API_KEY=${adminKey}`,
            `                         npx tidemark deployments show demo`,
            `                         npx tidemark snapshots take demo --wait`,
            `                         npx tidemark restore ranges demo`,
            `Ctrl-C stops everything.`,
            "",
          ].join("\n"),
        );
      }

      // Follow the backup: one line per phase change.
      let shown = "";
      const follow = setInterval(() => {
        callApi<DeploymentView>("GET", `${deployments}/${id}`, adminKey)
          .then((view) => {
            const now = `${view.state}/${view.phase ?? "-"}`;
            if (now === shown) return;
            shown = now;
            if (opts.json)
              process.stdout.write(`${JSON.stringify({ state: view.state, phase: view.phase })}\n`);
            else process.stdout.write(`backup ${view.state}, phase ${view.phase ?? "-"}\n`);
          })
          .catch(() => {});
      }, 1000);

      let stopping = false;
      const stop = async () => {
        if (stopping) return;
        stopping = true;
        clearInterval(follow);
        say("stopping: workload, agent, server, emulator");
        await workload?.stop();
        await agent.stop();
        await server.stop();
        await emulator.stop();
        process.exit(0);
      };
      process.once("SIGINT", () => void stop());
      process.once("SIGTERM", () => void stop());
      await agent.done.catch((error: unknown) => {
        say(`agent stopped: ${error instanceof Error ? error.message : String(error)}`);
      });
    });
}
