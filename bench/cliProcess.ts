/**
 * The built CLI run as child processes by the benchmarks (`tidemark server`, `tidemark agent`,
 * `tidemark restore`), so each process's CPU and memory are measured alone.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";
import { CLI_PATH, childNodeFlags } from "./emulatorProcess.js";

/** The admin key the benchmarks' servers are started with. */
export const BENCH_ADMIN_KEY = "bench-admin-key-0123456789";

export interface CliProcess {
  child: ChildProcess;
  stdout: () => string;
  /** The last lines the process wrote on stderr, to show when it fails. */
  tail: string[];
  exited: Promise<number | null>;
}

export function spawnCli(args: string[], env: NodeJS.ProcessEnv = process.env): CliProcess {
  const child = spawn(process.execPath, [...childNodeFlags(), CLI_PATH, ...args], {
    stdio: ["ignore", "pipe", "pipe"],
    env,
  });
  let stdout = "";
  child.stdout!.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
  const tail: string[] = [];
  createInterface({ input: child.stderr! }).on("line", (line) => {
    tail.push(line);
    if (tail.length > 40) tail.shift();
  });
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  return { child, stdout: () => stdout, tail, exited };
}

export async function stopProcess(run: CliProcess): Promise<void> {
  if (run.child.exitCode === null && run.child.signalCode === null) run.child.kill("SIGTERM");
  await run.exited;
}

/** `tidemark server` on `dataDir` with BENCH_ADMIN_KEY, once it says it is ready. */
export async function startServerProcess(dataDir: string): Promise<CliProcess & { url: string }> {
  const server = spawnCli(["server", "--data-dir", dataDir, "--port", "0"], {
    ...process.env,
    TIDEMARK_ADMIN_KEY: BENCH_ADMIN_KEY,
  });
  const url = await new Promise<string>((resolve, reject) => {
    createInterface({ input: server.child.stdout! }).on("line", (line) => {
      const ready = /^tidemark server ready: (\S+)/.exec(line);
      if (ready) resolve(ready[1]);
    });
    void server.exited.then((code) =>
      reject(
        new Error(`the server exited with code ${code} before it was ready:\n${server.tail.join("\n")}`),
      ),
    );
  });
  return { ...server, url };
}
