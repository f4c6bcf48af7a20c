import { rmSync } from "node:fs";
import { join, resolve } from "node:path";
import { Command, InvalidArgumentError } from "commander";

function port(value: string): number {
  const parsed = Number(value);
  if (!Number.isInteger(parsed) || parsed < 0 || parsed > 65535)
    throw new InvalidArgumentError("expected a TCP port number 0..65535");
  return parsed;
}

async function postJson<T>(url: string, key: string, body?: unknown): Promise<T> {
  const response = await fetch(url, {
    method: "POST",
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

/**
 * Everything on one machine with embedded defaults: the emulator (with the demo databases) as
 * the deployment, a server on a fresh data directory, and an agent backing the deployment up.
 */
export function demoCommand(): Command {
  return new Command("demo")
    .description("Run Tidemark on embedded defaults: the emulator as the deployment, a server and an agent")
    .option("--data-dir <dir>", "data directory (its demo/ folder is emptied at start)", "./tidemark-data")
    .option("--port <port>", "the server's HTTP port", port, 8080)
    .option("--mongo-port <port>", "the emulator's port", port, 27017)
    .addHelpText(
      "after",
      "\nExample:\n  $ tidemark demo            # then, in another shell: tidemark deployments show demo",
    )
    .action(async (opts: { dataDir: string; port: number; mongoPort: number }) => {
      // Loaded when run, not by main.ts: every command would pay for all of Tidemark's modules.
      const [{ startAgent }, { startEmulator }, { startServer }] = await Promise.all([
        import("../agent/agent.js"),
        import("../emulator/server.js"),
        import("../server/server.js"),
      ]);
      // The emulator keeps its data in memory, so the demo's backup starts fresh every time too.
      const dataDir = resolve(join(opts.dataDir, "demo"));
      rmSync(dataDir, { recursive: true, force: true });
      const emulator = await startEmulator({ port: opts.mongoPort, sampleData: true, log: () => {} });
      const server = await startServer({ dataDir, port: opts.port, log: () => {} });
      const adminKey = server.generatedAdminKey!;
      const deployments = `${server.url}/api/v1/deployments`;
      const { id, agentKey } = await postJson<{ id: string; agentKey: string }>(deployments, adminKey, {
        name: "demo",
      });
      const agent = startAgent({
        serverUrl: server.url,
        agentKey,
        deploymentId: id,
        sourceUri: emulator.uri,
        // Only what needs attention; the demo's own output says what is going on.
        logLevel: "warn",
      });
      await postJson(`${deployments}/${id}/backup/start`, adminKey);
      process.stdout.write(
        [
          `deployment (emulator): ${emulator.uri}`,
          `tidemark server:       ${server.url} (data in ${dataDir})`,
          `backing up deployment 'demo'; follow it with:`,
          `  export TIDEMARK_URL=${server.url} TIDEMARK_API_KEY=${adminKey}`,
          `  npx tidemark deployments show demo`,
          `Ctrl-C stops everything.`,
          "",
        ].join("\n"),
      );
      const stop = async () => {
        await agent.stop();
        await server.stop();
        await emulator.stop();
        process.exit(0);
      };
      process.once("SIGINT", () => void stop());
      process.once("SIGTERM", () => void stop());
      await agent.done.catch((error: unknown) => {
        process.stderr.write(`agent stopped: ${error instanceof Error ? error.message : String(error)}\n`);
      });
    });
}
