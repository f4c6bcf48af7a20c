/**
 * `tidemark restore jobs`: the restore jobs the server runs (POST /api/v1/restores: into a
 * deployment, an archive to download, a point in time held for a client), listed, shown and
 * deleted from the command line, as the API offers them.
 */
import { Command } from "commander";
import type { restoreView } from "../server/routes/restores.js";
import { ApiClient, ApiResponseError, CliError } from "./apiClient.js";
import { formatBytes, printJson, table } from "./output.js";

type RestoreView = ReturnType<typeof restoreView>;

const restorePath = (id: string) => `/api/v1/restores/${encodeURIComponent(id)}`;

interface JobSource {
  kind?: string;
  snapshotId?: string;
  deploymentName?: string;
  targetTs?: { t: number; i: number };
}

interface JobDelivery {
  kind?: string;
  to?: string;
  gzip?: boolean;
}

/** Counts of one collection in a job's progress (loading or writing an archive). */
interface CollectionCounts {
  documents?: number;
  bytes?: number;
  totalDocuments?: number;
}

interface JobProgress extends CollectionCounts {
  stage?: string;
  collections?: number | CollectionCounts[];
  collectionsDone?: number;
  slices?: number;
  slicesDone?: number;
  entriesApplied?: number;
}

function describeSource(source: unknown): string {
  const s = (source ?? {}) as JobSource;
  if (s.kind === "pointInTime" && s.targetTs)
    return `${s.deploymentName ?? "?"} at ${s.targetTs.t}:${s.targetTs.i}`;
  return `snapshot ${s.snapshotId ?? "?"}`;
}

function describeDelivery(delivery: unknown): string {
  const d = (delivery ?? {}) as JobDelivery;
  if (d.kind === "deployment") return `to ${d.to ?? "a deployment"}`;
  if (d.kind === "archive") return d.gzip ? "archive (gzip)" : "archive";
  return "held for a client";
}

/** One line of how far a job is, from whichever progress its stage records. */
function describeProgress(progress: unknown): string {
  if (!progress || typeof progress !== "object") return "-";
  const p = progress as JobProgress;
  if (p.stage === "loading_snapshot")
    return `snapshot: ${p.collectionsDone ?? 0}/${String(p.collections ?? "?")} collections, ${p.documents ?? 0} documents`;
  if (p.stage === "applying_oplog")
    return `oplog: ${p.slicesDone ?? 0}/${p.slices ?? "?"} slices, ${p.entriesApplied ?? 0} entries`;
  if (p.stage === "loading" && Array.isArray(p.collections)) {
    const documents = p.collections.reduce((sum, c) => sum + (c.documents ?? 0), 0);
    const bytes = p.collections.reduce((sum, c) => sum + (c.bytes ?? 0), 0);
    return `loading: ${p.collections.length} collections begun, ${documents} documents, ${formatBytes(bytes)}`;
  }
  if (p.stage === "writing") return `archive: ${p.documents ?? 0} documents`;
  return "-";
}

function describe(view: RestoreView, baseUrl: string): string {
  const lines = [
    `restore ${view.id}: ${view.status}${view.error ? ` (${view.error})` : ""}`,
    `  ${describeSource(view.source)} → ${describeDelivery(view.delivery)}`,
    `  created ${view.createdAt}${view.completedAt ? `, ended ${view.completedAt}` : ""}`,
  ];
  const progress = describeProgress(view.progress);
  if (progress !== "-" && view.completedAt === null) lines.push(`  ${progress}`);
  // A signed link: it works without the key (curl -C - resumes a cut download).
  if (view.downloadUrl) lines.push(`  download: ${baseUrl}${view.downloadUrl}`);
  if (view.expiresAt && view.completedAt !== null) lines.push(`  kept until ${view.expiresAt}`);
  return `${lines.join("\n")}\n`;
}

/** A 404 says which restore is missing; this says where to find the others. */
async function withHint(run: () => Promise<void>): Promise<void> {
  try {
    await run();
  } catch (error) {
    if (error instanceof ApiResponseError && error.status === 404)
      throw new CliError(error.message, "list the restore jobs with: tidemark restore jobs", error.exitCode);
    throw error;
  }
}

async function list(opts: { json: boolean }): Promise<void> {
  const api = ApiClient.fromEnvironment();
  const { restores } = await api.request<{ restores: RestoreView[] }>("GET", "/api/v1/restores");
  if (opts.json) return printJson(restores);
  if (restores.length === 0) {
    process.stdout.write("no restore jobs on this server (POST /api/v1/restores creates one)\n");
    return;
  }
  const rows = [["ID", "STATUS", "SOURCE", "DELIVERY", "CREATED", "PROGRESS"]];
  for (const r of restores)
    rows.push([
      r.id,
      r.status,
      describeSource(r.source),
      describeDelivery(r.delivery),
      r.createdAt ?? "-",
      r.completedAt === null ? describeProgress(r.progress) : "-",
    ]);
  process.stdout.write(`${table(rows)}\n`);
}

async function show(id: string, opts: { json: boolean }): Promise<void> {
  const api = ApiClient.fromEnvironment();
  const view = await api.request<RestoreView>("GET", restorePath(id));
  if (opts.json) printJson(view);
  else process.stdout.write(describe(view, api.baseUrl));
}

async function remove(id: string, opts: { json: boolean }): Promise<void> {
  const api = ApiClient.fromEnvironment();
  const view = await api.request<RestoreView>("DELETE", restorePath(id));
  if (opts.json) printJson(view);
  else
    process.stdout.write(
      `restore ${id}: ${view.status === "failed" ? `failed (${view.error ?? "stopped"})` : view.status}, its files removed\n`,
    );
}

/** `restore` has a --json of its own, which takes the flag wherever it is on the line. */
const jsonOf = (command: Command) => command.optsWithGlobals<{ json: boolean }>();

export function restoreJobsCommand(): Command {
  const jobs = new Command("jobs")
    .description("List the restore jobs the server runs (uses TIDEMARK_URL, TIDEMARK_API_KEY)")
    .option("--json", "print the jobs as JSON", false)
    .addHelpText(
      "after",
      `
Jobs are what POST /api/v1/restores starts in the server: a restore into a deployment, an archive
to download, or a point in time held for a client. 'tidemark restore --to' runs in this process
instead, and is not a job.

Examples:
  $ tidemark restore jobs
  $ tidemark restore jobs show 7c1e...
  $ tidemark restore jobs delete 7c1e...
  $ tidemark restore jobs --json | jq '.[] | select(.status == "failed")'`,
    )
    .action((_opts: unknown, command: Command) => withHint(() => list(jsonOf(command))));
  jobs.addCommand(
    new Command("show")
      .description("Show one restore job: its source, delivery, progress or result, download link")
      .argument("<id>", "the restore job's id (tidemark restore jobs)")
      .option("--json", "print the job as JSON", false)
      .addHelpText("after", "\nExample:\n  $ tidemark restore jobs show 7c1e... --json")
      .action((id: string, _opts: unknown, command: Command) => withHint(() => show(id, jsonOf(command)))),
  );
  jobs.addCommand(
    new Command("delete")
      .description("Delete a restore job: a running one stops at its next document; its files go")
      .argument("<id>", "the restore job's id (tidemark restore jobs)")
      .option("--json", "print the job as it ended, as JSON", false)
      .addHelpText("after", "\nExample:\n  $ tidemark restore jobs delete 7c1e...")
      .action((id: string, _opts: unknown, command: Command) => withHint(() => remove(id, jsonOf(command)))),
  );
  return jobs;
}
