import type { DeploymentView } from "../server/deploymentView.js";

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

export function formatBytes(bytes: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(unit === 0 ? 0 : 1)} ${units[unit]}`;
}

function bar(done: number, total: number | null, width = 24): string {
  if (!total) return " ".repeat(width);
  const filled = Math.min(width, Math.round((done / total) * width));
  return `${"█".repeat(filled)}${"░".repeat(width - filled)}`;
}

/** A table with left-aligned columns. */
export function table(rows: string[][]): string {
  const widths = rows[0].map((_, column) => Math.max(...rows.map((row) => row[column].length)));
  return rows
    .map((row) =>
      row
        .map((cell, column) => cell.padEnd(widths[column]))
        .join("  ")
        .trimEnd(),
    )
    .join("\n");
}

export function describeDeployment(view: DeploymentView): string {
  const lines = [
    `${view.name}  (${view.id})`,
    `  state      ${view.state}${view.phase ? `, phase ${view.phase}` : ""}`,
    `  agent      ${view.agent.lastSeen ? `last seen ${view.agent.lastSeen}${view.agent.hostname ? ` on ${view.agent.hostname}` : ""}` : "never seen"}`,
    `  oplog      ${view.oplog.lastTs ? `last entry ${view.oplog.lastTs.t}:${view.oplog.lastTs.i}` : "no entries yet"}`,
    `  slices     documents ${view.slices.documents.count} (${formatBytes(view.slices.documents.bytes)}), oplog ${view.slices.oplog.count} (${formatBytes(view.slices.oplog.bytes)})`,
  ];
  if (view.resyncReason) lines.push(`  resync     ${view.resyncReason}`);
  lines.push("  phases");
  for (const phase of view.phases) {
    const amount =
      phase.unit === "bytes"
        ? `${formatBytes(phase.done)}${phase.total ? ` / ${formatBytes(phase.total)}` : ""}`
        : phase.total
          ? `${phase.done} / ${phase.total}`
          : "";
    lines.push(
      `    ${phase.name.padEnd(27)} ${phase.status.padEnd(8)} ${bar(phase.done, phase.total)} ${amount}`,
    );
  }
  return lines.join("\n");
}
