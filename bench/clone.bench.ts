import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startServer } from "../src/server/server.js";
import type { DeploymentView } from "../src/server/deploymentView.js";
import { BENCH_ADMIN_KEY } from "./cliProcess.js";
import { CLI_PATH, childNodeFlags, rssOf } from "./emulatorProcess.js";
import { round, type Figure } from "./figures.js";

/**
 * Clones the loaded emulator with a real server (in this process) and the agent CLI (its own
 * process, so its memory is measured alone). Throughput is the BSON bytes the server
 * acknowledged per second, from `backup start` to the clone's end, divided by the raw driver
 * scan throughput of the same data measured in the same run.
 */
export async function cloneBench(options: {
  sourceUri: string;
  scanBytesPerSecond: number;
}): Promise<Figure[]> {
  const dataDir = mkdtempSync(join(tmpdir(), "tidemark-bench-"));
  // The daemon would build the head database in this process, beside the clone being measured;
  // initialSync.bench.ts measures the clone and the daemon together, in a server process.
  const server = await startServer({
    dataDir,
    port: 0,
    adminKey: BENCH_ADMIN_KEY,
    log: () => {},
    daemon: false,
  });
  const api = async <T>(method: string, path: string, body?: unknown): Promise<T> => {
    const response = await fetch(`${server.url}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${BENCH_ADMIN_KEY}`,
        ...(body ? { "content-type": "application/json" } : {}),
      },
      body: body ? JSON.stringify(body) : undefined,
    });
    return (await response.json()) as T;
  };
  const { id, agentKey } = await api<{ id: string; agentKey: string }>("POST", "/api/v1/deployments", {
    name: "bench",
  });
  const agent = spawn(
    process.execPath,
    [
      ...childNodeFlags(),
      CLI_PATH,
      "agent",
      "--server",
      server.url,
      "--key",
      agentKey,
      "--deployment",
      id,
      "--source",
      options.sourceUri,
    ],
    { stdio: ["ignore", "ignore", "inherit"] },
  );
  try {
    let peakRss = 0;
    const started = performance.now();
    await api("POST", `/api/v1/deployments/${id}/backup/start`);
    let view: DeploymentView;
    while (true) {
      peakRss = Math.max(peakRss, rssOf(agent.pid!));
      view = await api<DeploymentView>("GET", `/api/v1/deployments/${id}`);
      if (view.initialSync.cloneCompleteAt) break;
      if (agent.exitCode !== null)
        throw new Error(`the agent exited with code ${agent.exitCode} during the clone`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const seconds = (performance.now() - started) / 1000;
    const bytesPerSecond = view.phases[1].done / seconds;
    return [
      { name: "clone.throughput_mb_per_s", value: round(bytesPerSecond / 1024 / 1024), unit: "MB/s" },
      {
        name: "clone.throughput_ratio",
        value: round(bytesPerSecond / options.scanBytesPerSecond, 3),
        unit: "ratio",
      },
      { name: "agent.rss_mb", value: round(peakRss, 0), unit: "MB" },
      {
        name: "slice.stored_ratio",
        value: round(view.phases[1].done / Math.max(1, view.slices.documents.bytes), 3),
        unit: "x",
      },
    ];
  } finally {
    agent.kill("SIGTERM");
    await server.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}
