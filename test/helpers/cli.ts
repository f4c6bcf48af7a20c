import { spawn, type ChildProcess } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";

/** The built CLI (package.json "bin"), run as a child process the way an operator runs it. */
export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
export const cli = path.join(root, "dist/src/cli/main.js");

export interface Run {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const running: ChildProcess[] = [];

export function runCli(args: string[], env: Record<string, string | undefined> = {}): Run {
  const child = spawn(process.execPath, [cli, ...args], {
    cwd: root,
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, ...env },
  });
  running.push(child);
  let stdout = "";
  let stderr = "";
  child.stdout!.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
  child.stderr!.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on("exit", (code, signal) => resolve({ code, signal })),
  );
  const ended = (stream: NodeJS.ReadableStream) =>
    new Promise<void>((resolve) => {
      stream.once("end", resolve);
      stream.once("close", resolve);
    });
  // "exit" can come before the last output is read from the pipes; a test reads both after it.
  const exited = Promise.all([exit, ended(child.stdout!), ended(child.stderr!)]).then(([status]) => status);
  return { child, stdout: () => stdout, stderr: () => stderr, exited };
}

/** Runs a CLI command to its end. */
export async function runCliToEnd(
  args: string[],
  env: Record<string, string | undefined> = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const run = runCli(args, env);
  const { code } = await run.exited;
  return { code, stdout: run.stdout(), stderr: run.stderr() };
}

/** Resolves with the first stdout line matching `pattern`, or rejects if the process exits first. */
export function waitForLine(run: Run, pattern: RegExp): Promise<string> {
  return new Promise((resolve, reject) => {
    const check = () => {
      const line = run
        .stdout()
        .split("\n")
        .find((l) => pattern.test(l));
      if (line !== undefined) {
        run.child.stdout!.off("data", check);
        resolve(line);
      }
    };
    run.child.stdout!.on("data", check);
    check();
    void run.exited.then(({ code }) =>
      reject(new Error(`process exited (${code}) before printing ${pattern}: ${run.stderr()}`)),
    );
  });
}

/** Kills every process these helpers started (for afterEach/afterAll). */
export function killAll(): void {
  for (const child of running.splice(0))
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
}
