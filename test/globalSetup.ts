import { execFileSync } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";

/**
 * Builds dist/ once per test run, so the CLI tests run the same compiled `tidemark` an operator
 * runs, and no two test files rebuild it at the same time. Type errors are printed but do not stop
 * the run (tsc still emits, and `npm test` type-checks before vitest starts), so one unfinished
 * file does not block every test while someone works.
 */
export default function setup(): void {
  const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
  try {
    execFileSync(
      process.execPath,
      [path.join(root, "node_modules/typescript/bin/tsc"), "-p", "tsconfig.build.json"],
      { cwd: root, stdio: "inherit" },
    );
  } catch (error) {
    if ((error as { status?: number }).status !== 2) throw error;
    process.stderr.write("globalSetup: tsc reported type errors (above); dist/ was emitted anyway\n");
  }
}
