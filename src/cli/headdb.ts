import { Command } from "commander";
import { positiveNumber } from "./parsers.js";
import { formatOpTime } from "../protocol/optime.js";
import type { DeploymentView } from "../server/deploymentView.js";
import type { VerificationView } from "../server/verification.js";
import { ApiClient, ApiResponseError, CliError } from "./apiClient.js";
import { printJson, table } from "./output.js";

/** Exit codes of `headdb verify`: scripts tell a mismatch from a verification that did not finish. */
const EXIT_MISMATCH = 1;
const EXIT_UNFINISHED = 2;
const POLL_MS = 500;

/** Any failure of the command exits 2, with a hint where the API gave none. */
async function unfinishedOnError<T>(name: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (error) {
    if (error instanceof ApiResponseError) {
      const hint =
        error.hint ??
        (error.status === 404 && error.message.includes("deployment")
          ? `list the deployments with: tidemark deployments list (no '${name}' there?)`
          : undefined);
      throw new CliError(error.message, hint, EXIT_UNFINISHED);
    }
    if (error instanceof CliError) throw new CliError(error.message, error.hint, EXIT_UNFINISHED);
    throw error;
  }
}

function describeResult(view: VerificationView): string {
  const total = view.collections.length;
  const mismatches = view.collections.filter((c) => !c.match).length;
  // The hashes only say something where they differ.
  const rows = [mismatches > 0 ? ["COLLECTION", "RESULT", "DEPLOYMENT", "HEAD"] : ["COLLECTION", "RESULT"]];
  for (const c of view.collections) {
    const namespace = `${c.db}.${c.collection}`;
    if (mismatches === 0) rows.push([namespace, "match"]);
    else if (c.match) rows.push([namespace, "match", "", ""]);
    else rows.push([namespace, "MISMATCH", c.deployment ?? "(absent)", c.head ?? "(absent)"]);
  }
  const at = `asOf ${formatOpTime(view.asOf)}, head applied ${formatOpTime(view.headAppliedTs)}`;
  const summary =
    total === 0
      ? `no collections on either side (${at})`
      : mismatches === 0
        ? `all ${total} collections match (${at})`
        : `${mismatches} of ${total} collections MISMATCH (${at})`;
  return `${total > 0 ? `${table(rows)}\n` : ""}${view.deployment}: ${summary}\n`;
}

/** Why the wait ended without a result, with what to look at. */
async function timeoutError(
  api: ApiClient,
  name: string,
  view: VerificationView,
  timeout: number,
): Promise<CliError> {
  if (view.state === "waiting_for_head") {
    return new CliError(
      `head database behind after ${timeout} s: appliedTs ${formatOpTime(view.headAppliedTs)} < asOf ${formatOpTime(view.asOf)}`,
      `the head database catches up from the oplog slices the agent uploads: is the agent running? ` +
        `See the head lag and any daemon error in: tidemark deployments show ${name}`,
      EXIT_UNFINISHED,
    );
  }
  let lastSeen = "";
  try {
    const deployment = await api.request<DeploymentView>(
      "GET",
      `/api/v1/deployments/${encodeURIComponent(name)}`,
    );
    lastSeen = ` (it was last seen ${deployment.agent.lastSeen ?? "never"})`;
  } catch {
    // The hint does without it.
  }
  return new CliError(
    `the agent did not send the deployment's dbHash within ${timeout} s`,
    `is the agent running?${lastSeen} The request stays queued for it for 10 minutes; run the command again once it is up`,
    EXIT_UNFINISHED,
  );
}

async function verify(name: string, opts: { json: boolean; timeout: number }): Promise<void> {
  const api = ApiClient.fromEnvironment();
  const base = `/api/v1/deployments/${encodeURIComponent(name)}/verifications`;
  const { id } = await unfinishedOnError(name, () => api.request<{ id: string }>("POST", base));
  const deadline = Date.now() + opts.timeout * 1000;
  let view: VerificationView;
  let announced: string | undefined;
  while (true) {
    view = await unfinishedOnError(name, () => api.request<VerificationView>("GET", `${base}/${id}`));
    if (view.state === "done" || view.state === "failed" || Date.now() >= deadline) break;
    if (view.state !== announced) {
      announced = view.state;
      process.stderr.write(
        view.state === "waiting_for_agent"
          ? `waiting for the agent to hash the deployment (verification ${id})...\n`
          : `waiting for the head database to apply asOf ${formatOpTime(view.asOf)} (applied ${formatOpTime(view.headAppliedTs)})...\n`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
  if (opts.json) printJson(view);
  if (view.state === "failed") {
    throw new CliError(`verification failed: ${view.error ?? "no reason given"}`, view.hint, EXIT_UNFINISHED);
  }
  if (view.state !== "done") throw await timeoutError(api, name, view, opts.timeout);
  if (!opts.json) process.stdout.write(describeResult(view));
  for (const warning of view.warnings) process.stderr.write(`warning: ${warning}\n`);
  if (!view.match) process.exitCode = EXIT_MISMATCH;
}

export function headdbCommand(): Command {
  const command = new Command("headdb")
    .description("Check the head database the backup daemon keeps (uses TIDEMARK_URL, TIDEMARK_API_KEY)")
    .addHelpText("after", "\nExample:\n  $ tidemark headdb verify prod-rs");

  command
    .command("verify <name>")
    .description("Compare the head database with the deployment, collection by collection (dbHash)")
    .option("--json", "print the verification as JSON", false)
    .option("--timeout <seconds>", "give up waiting after this long (exit 2)", positiveNumber, 120)
    .addHelpText(
      "after",
      `
Run it once writes to the deployment have stopped. The agent hashes every backed-up database on
the primary while the oplog is quiet (dbHash) and reports the newest oplog ts, asOf; once the head
database has applied asOf, the server hashes it too and each collection is reported as match or
MISMATCH (a collection on one side only is a mismatch).

Exit codes: 0 every collection matches; 1 a mismatch; 2 no result (unknown deployment, backup
not active, agent not answering, head database behind, writes that did not stop, timeout).

Examples:
  $ tidemark headdb verify prod-rs
  $ tidemark headdb verify prod-rs --json --timeout 600`,
    )
    .action(verify);

  return command;
}
