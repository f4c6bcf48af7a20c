import { Command } from "commander";
import type { RestoreRange } from "../restore/pointInTime/index.js";
import { ApiClient } from "./apiClient.js";
import { printJson, table } from "./output.js";

interface RangesView {
  deploymentName: string;
  generation: number;
  ranges: Array<RestoreRange & { fromTime: string; toTime: string }>;
}

function describe(view: RangesView): string {
  if (view.ranges.length === 0)
    return `${view.deploymentName}: nothing can be restored yet (no complete snapshot); take one with tidemark snapshots take ${view.deploymentName}\n`;
  const rows = [["FROM", "TO", "FROM TS", "TO TS", "KIND", "SNAPSHOTS"]];
  for (const r of view.ranges)
    rows.push([
      r.fromTime,
      r.toTime,
      `${r.from.t}:${r.from.i}`,
      `${r.to.t}:${r.to.i}`,
      r.kind,
      String(r.snapshots.length),
    ]);
  return (
    `${table(rows)}\n${view.deploymentName}: any point from FROM to TO (inclusive) can be restored; ` +
    "a 'snapshot' range is that snapshot alone (the oplog after it is not stored)\n"
  );
}

async function ranges(name: string, opts: { json: boolean }): Promise<void> {
  const api = ApiClient.fromEnvironment();
  const view = await api.request<RangesView>(
    "GET",
    `/api/v1/deployments/${encodeURIComponent(name)}/restore-ranges`,
  );
  if (opts.json) printJson(view);
  else process.stdout.write(describe(view));
}

export function restoreRangesCommand(): Command {
  return (
    new Command("ranges")
      .description("List the points in time a deployment can be restored to")
      .argument("<deployment>", "the deployment's name or id")
      .option("--json", "print the ranges as JSON", false)
      .addHelpText(
        "after",
        `
A range starts at a complete snapshot and runs as far as the oplog slices after it are stored
without a gap (the retention window and a resync cut it). Times are the oplog's clock (seconds).

Examples:
  $ tidemark restore ranges rs0
  $ tidemark restore ranges rs0 --json | jq '.ranges[-1].toTime'`,
      )
      // `restore` has a --json of its own, which takes the flag wherever it is on the line.
      .action((name: string, _opts: unknown, command: Command) =>
        ranges(name, command.optsWithGlobals<{ json: boolean }>()),
      )
  );
}
