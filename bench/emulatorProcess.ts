import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

const CLI = fileURLToPath(new URL("../src/cli/main.js", import.meta.url));

/** Resident set size of a process in MiB, from /proc. */
export function rssOf(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
  return kb / 1024;
}

/** CPU seconds (user + system) a process has used so far, from /proc (clock ticks of 1/100 s). */
export function cpuSecondsOf(pid: number): number {
  return cpuSecondsIn(`/proc/${pid}/stat`);
}

/**
 * CPU seconds of a process's main thread alone (its JavaScript; GC helpers and libuv's pool are
 * other threads): the one that bounds a Node.js server's throughput.
 */
export function mainThreadCpuSecondsOf(pid: number): number {
  return cpuSecondsIn(`/proc/${pid}/task/${pid}/stat`);
}

function cpuSecondsIn(statPath: string): number {
  const stat = readFileSync(statPath, "utf8");
  // Fields after the command name (which may hold spaces) start at "state": utime, stime are 12, 13.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

export const CLI_PATH = CLI;

/**
 * Node flags for the emulator and agent processes, from TIDEMARK_BENCH_NODE_FLAGS (space
 * separated), to profile them: e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof" or "--trace-gc".
 */
export function childNodeFlags(): string[] {
  return (process.env.TIDEMARK_BENCH_NODE_FLAGS ?? "").split(" ").filter(Boolean);
}

export interface EmulatorProcess {
  uri: string;
  child: ChildProcess;
  /** Resident set size of the emulator process in MiB, from /proc. */
  rssMb(): number;
  stop(): Promise<void>;
}

/**
 * Runs the emulator as its own process (from the built CLI), as a deployment would be, so the
 * benchmark's driver work and the emulator's do not share one event loop or one heap.
 */
export async function startEmulatorProcess(args: string[] = []): Promise<EmulatorProcess> {
  const child = spawn(
    process.execPath,
    [...childNodeFlags(), CLI, "emulator", "--port", "0", "--json", ...args],
    {
      stdio: ["ignore", "pipe", "inherit"],
    },
  );
  const lines = createInterface({ input: child.stdout! });
  const first = await new Promise<string>((resolve, reject) => {
    lines.once("line", resolve);
    child.once("exit", (code) => reject(new Error(`emulator exited with code ${code} before it was ready`)));
  });
  const { uri } = JSON.parse(first) as { uri: string };
  return {
    uri,
    child,
    rssMb: () => rssOf(child.pid!),
    stop() {
      return new Promise((resolve) => {
        child.once("exit", () => resolve());
        child.kill("SIGTERM");
      });
    },
  };
}
