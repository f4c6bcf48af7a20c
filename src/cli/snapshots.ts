import { SingleBar } from "cli-progress";
import { Command } from "commander";
import { positiveNumber } from "./parsers.js";
import type { GroomReport } from "../daemon/groom.js";
import { formatOpTime } from "../protocol/optime.js";
import type { snapshotView } from "../server/routes/snapshots.js";
import type { SnapshotVerification } from "../snapshot/verify.js";
import { ApiClient, ApiResponseError, CliError } from "./apiClient.js";
import { formatBytes, printJson, table } from "./output.js";

type SnapshotView = ReturnType<typeof snapshotView>;

const POLL_MS = 500;
/** `snapshots verify`: 1 when the snapshot is damaged, 2 when there is no result. */
const EXIT_DAMAGED = 1;
const EXIT_UNFINISHED = 2;

const deploymentPath = (name: string) => `/api/v1/deployments/${encodeURIComponent(name)}`;
const snapshotPath = (id: string) => `/api/v1/snapshots/${encodeURIComponent(id)}`;

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls a snapshot until `done` says so, with a progress bar on a terminal. */
async function pollSnapshot(
  api: ApiClient,
  id: string,
  done: (view: SnapshotView) => boolean,
  timeoutSeconds: number,
): Promise<SnapshotView> {
  const deadline = Date.now() + timeoutSeconds * 1000;
  const bar = process.stderr.isTTY
    ? new SingleBar({
        format: "snapshot {bar} {value}/{total} collections, {docs} documents",
        stream: process.stderr,
      })
    : undefined;
  let started = false;
  try {
    while (true) {
      const view = await api.request<SnapshotView>("GET", snapshotPath(id));
      if (done(view)) return view;
      if (Date.now() >= deadline)
        throw new CliError(
          `snapshot ${id} still ${view.status} after ${timeoutSeconds} s`,
          `it carries on in the server; follow it with: tidemark snapshots show ${id}`,
          EXIT_UNFINISHED,
        );
      if (bar && view.progress) {
        if (!started) bar.start(view.progress.collections, 0, { docs: 0 });
        started = true;
        bar.update(view.progress.collectionsDone, { docs: view.progress.documentsDone });
      }
      await sleep(POLL_MS);
    }
  } finally {
    if (started) bar?.stop();
  }
}

/**
 * Runs a command's action, saying where to look after a 404 (the API's answer names what is
 * missing, not how to find what there is) and, given `exitCode`, exiting with it on any error
 * (`verify`: 1 means damaged, so a snapshot that could not be checked at all exits 2).
 */
function action<A extends unknown[]>(run: (...args: A) => Promise<void>, exitCode?: number) {
  return async (...args: A): Promise<void> => {
    try {
      await run(...args);
    } catch (error) {
      if (!(error instanceof CliError)) throw error;
      let hint = error.hint;
      if (!hint && error instanceof ApiResponseError && error.status === 404) {
        if (error.message.startsWith("deployment "))
          hint = "list the deployments with: tidemark deployments list";
        else if (error.message.startsWith("snapshot "))
          hint = "list a deployment's snapshots with: tidemark snapshots list NAME";
      }
      throw new CliError(error.message, hint, exitCode ?? error.exitCode);
    }
  };
}

function describe(view: SnapshotView): string {
  const lines = [
    `snapshot ${view.id} of ${view.deploymentName}: ${view.status}${view.error ? ` (${view.error})` : ""}`,
    `  at ${formatOpTime(view.ts)}${view.wallTime ? ` (${view.wallTime})` : ""}, ${view.trigger.replace("_", "-")}`,
    `  store ${view.store}`,
    `  ${view.collections.length} collections, ${formatBytes(view.logicalBytes)} of documents, ${formatBytes(view.storedBytes)} stored`,
  ];
  if (view.expiresAt) lines.push(`  expires ${view.expiresAt}`);
  if (view.verification.state)
    lines.push(`  verification: ${view.verification.state} ${view.verification.verifiedAt ?? ""}`);
  return `${lines.join("\n")}\n`;
}

async function take(
  name: string,
  opts: { wait: boolean; json: boolean; keepDays?: number; timeout: number },
) {
  const api = ApiClient.fromEnvironment();
  let view = await api.request<SnapshotView>(
    "POST",
    `${deploymentPath(name)}/snapshots`,
    opts.keepDays ? { keepDays: opts.keepDays } : {},
  );
  if (opts.wait) view = await pollSnapshot(api, view.id, (v) => v.status !== "writing", opts.timeout);
  if (opts.json) printJson(view);
  else if (!opts.wait)
    process.stdout.write(`snapshot ${view.id} started; follow it with: tidemark snapshots show ${view.id}\n`);
  else process.stdout.write(describe(view));
  if (view.status === "failed")
    throw new CliError(`snapshot ${view.id} failed: ${view.error ?? "no reason given"}`, undefined, 1);
}

async function list(name: string, opts: { json: boolean }) {
  const api = ApiClient.fromEnvironment();
  const { snapshots } = await api.request<{ snapshots: SnapshotView[] }>(
    "GET",
    `${deploymentPath(name)}/snapshots`,
  );
  if (opts.json) return printJson(snapshots);
  if (snapshots.length === 0) {
    process.stdout.write(
      `no snapshots of ${name} yet; take one with: tidemark snapshots take ${name} --wait\n`,
    );
    return;
  }
  const rows = [["ID", "STATUS", "TS", "WALL TIME", "TRIGGER", "STORE", "DOCUMENTS", "STORED"]];
  for (const s of snapshots)
    rows.push([
      s.id,
      s.status,
      formatOpTime(s.ts),
      s.wallTime ?? "-",
      s.trigger,
      s.storeKind,
      formatBytes(s.logicalBytes),
      formatBytes(s.storedBytes),
    ]);
  process.stdout.write(`${table(rows)}\n`);
}

async function show(id: string, opts: { json: boolean; manifest: boolean }) {
  const api = ApiClient.fromEnvironment();
  const view = await api.request<SnapshotView>(
    "GET",
    `${snapshotPath(id)}${opts.manifest ? "?manifest=true" : ""}`,
  );
  if (opts.json || opts.manifest) printJson(view);
  else process.stdout.write(describe(view));
}

async function remove(id: string, opts: { json: boolean }) {
  const api = ApiClient.fromEnvironment();
  const result = await api.request<{ deleted: string }>("DELETE", snapshotPath(id));
  if (opts.json) printJson(result);
  else process.stdout.write(`snapshot ${id} deleted; groom reclaims blocks no other snapshot uses\n`);
}

async function verify(id: string, opts: { json: boolean; timeout: number }) {
  const api = ApiClient.fromEnvironment();
  await api.request<SnapshotView>("POST", `${snapshotPath(id)}/verify`);
  const view = await pollSnapshot(api, id, (v) => v.verification.state !== "verifying", opts.timeout);
  const result = view.verification.result as SnapshotVerification | null;
  if (opts.json) printJson(result ?? { snapshotId: id, ok: false, firstProblem: "no result" });
  else if (result) {
    const rows = [["COLLECTION", "RESULT", "DOCUMENTS", "MD5"]];
    for (const c of result.collections)
      rows.push([c.namespace, c.ok ? "ok" : "BAD", String(c.count), c.md5 ?? "-"]);
    if (result.collections.length > 0) process.stdout.write(`${table(rows)}\n`);
    process.stdout.write(
      result.ok
        ? `snapshot ${id}: every block and hash checks out (${formatBytes(result.bytesRead)} read in ${(result.durationMs / 1000).toFixed(1)} s)\n`
        : `snapshot ${id}: DAMAGED: ${result.firstProblem}\n`,
    );
  }
  if (!result) throw new CliError(`snapshot ${id}: verification gave no result`, undefined, EXIT_UNFINISHED);
  if (!result.ok) process.exitCode = EXIT_DAMAGED;
}

async function groom(opts: { json: boolean }) {
  const api = ApiClient.fromEnvironment();
  const report = await api.request<GroomReport>("POST", "/api/v1/groom");
  if (opts.json) return printJson(report);
  process.stdout.write(
    `groom: ${report.expiredSnapshots.length} expired snapshots removed, ${report.blocksRemoved} blocks removed, ` +
      `${formatBytes(report.bytesReclaimed)} reclaimed` +
      (report.partialsRemoved ? `, ${report.partialsRemoved} interrupted snapshot directories removed` : "") +
      "\n",
  );
  for (const error of report.errors) process.stderr.write(`warning: ${error}\n`);
  if (report.errors.length > 0) process.exitCode = 1;
}

async function settings(name: string, opts: { store?: string; schedule?: string; json: boolean }) {
  const api = ApiClient.fromEnvironment();
  const body: Record<string, unknown> = {};
  if (opts.store !== undefined) body.store = opts.store === "default" ? null : opts.store;
  if (opts.schedule !== undefined) {
    try {
      body.schedule = opts.schedule === "default" ? null : (JSON.parse(opts.schedule) as unknown);
    } catch {
      throw new CliError(
        "--schedule takes JSON",
        `for example --schedule '{"intervalHours": 12, "keepDays": 3}'`,
      );
    }
  }
  const view = await api.request<{ snapshotStore: string | null; snapshotSchedule: unknown }>(
    "PATCH",
    `${deploymentPath(name)}/snapshot-settings`,
    body,
  );
  if (opts.json) return printJson(view);
  process.stdout.write(
    `${name}: snapshot store ${view.snapshotStore ?? "(server default)"}, schedule ${JSON.stringify(view.snapshotSchedule ?? "(server default)")}\n`,
  );
}

export function snapshotsCommand(): Command {
  const command = new Command("snapshots")
    .description("Take, list, verify and delete snapshots; groom (uses TIDEMARK_URL, TIDEMARK_API_KEY)")
    .addHelpText(
      "after",
      "\nExamples:\n  $ tidemark snapshots take prod-rs --wait\n  $ tidemark snapshots list prod-rs\n  $ tidemark snapshots verify 3f2a...",
    );

  command
    .command("take <name>")
    .description("Take an on-demand snapshot of the deployment's head database")
    .option("--wait", "wait until it is complete (or failed)", false)
    .option(
      "--keep-days <days>",
      "keep it this long (default: the schedule's onDemandKeepDays, 7)",
      positiveNumber,
    )
    .option(
      "--timeout <seconds>",
      "with --wait, give up waiting after this long (exit 2)",
      positiveNumber,
      3600,
    )
    .option("--json", "print the snapshot as JSON", false)
    .addHelpText(
      "after",
      "\nExamples:\n  $ tidemark snapshots take prod-rs --wait\n  $ tidemark snapshots take prod-rs --keep-days 30 --json",
    )
    .action(action(take));

  command
    .command("list <name>")
    .description("List the deployment's snapshots, oldest first")
    .option("--json", "print them as JSON", false)
    .addHelpText("after", "\nExample:\n  $ tidemark snapshots list prod-rs --json")
    .action(action(list));

  command
    .command("show <id>")
    .description("Show one snapshot")
    .option("--json", "print it as JSON", false)
    .option("--manifest", "include the manifest (collections, runs, blocks) as JSON", false)
    .addHelpText("after", "\nExample:\n  $ tidemark snapshots show 3f2a... --manifest")
    .action(action(show));

  command
    .command("delete <id>")
    .description("Delete a snapshot (its blocks go at the next groom, unless other snapshots use them)")
    .option("--json", "print the result as JSON", false)
    .addHelpText("after", "\nExample:\n  $ tidemark snapshots delete 3f2a...")
    .action(action(remove));

  command
    .command("verify <id>")
    .description("Read the snapshot back: check every block or file hash and each collection's MD5")
    .option("--json", "print the result as JSON", false)
    .option("--timeout <seconds>", "give up waiting after this long (exit 2)", positiveNumber, 3600)
    .addHelpText(
      "after",
      "\nExit codes: 0 intact; 1 damaged (the first bad block or file is named); 2 no result.\n\nExample:\n  $ tidemark snapshots verify 3f2a... --json",
    )
    .action(action(verify, EXIT_UNFINISHED));

  command
    .command("groom")
    .description("Remove expired snapshots and blocks no snapshot refers to; report the bytes reclaimed")
    .option("--json", "print the report as JSON", false)
    .addHelpText("after", "\nExample:\n  $ tidemark snapshots groom --json")
    .action(action(groom));

  command
    .command("settings <name>")
    .description("Set a deployment's snapshot store and schedule (\"default\" returns to the server's)")
    .option("--store <spec>", "blockstore, PATH.sqlite, s3://BUCKET/PREFIX or fs:/PATH")
    .option(
      "--schedule <json>",
      "schedule and retention as JSON (intervalHours, keepDays, dailyKeepDays, ...)",
    )
    .option("--json", "print the deployment as JSON", false)
    .addHelpText(
      "after",
      `\nExamples:\n  $ tidemark snapshots settings prod-rs --store fs:/backups/prod\n  $ tidemark snapshots settings prod-rs --schedule '{"intervalHours": 12, "keepDays": 3}'`,
    )
    .action(action(settings));

  return command;
}
