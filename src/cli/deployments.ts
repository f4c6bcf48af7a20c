import { Command } from "commander";
import type { DeploymentView } from "../server/deploymentView.js";
import { ApiClient } from "./apiClient.js";
import { describeDeployment, printJson, table } from "./output.js";

const path = (name: string) => `/api/v1/deployments/${encodeURIComponent(name)}`;

export function deploymentsCommand(): Command {
  const command = new Command("deployments")
    .description("Add, list and show the deployments Tidemark backs up (uses TIDEMARK_URL, TIDEMARK_API_KEY)")
    .addHelpText(
      "after",
      "\nExamples:\n  $ tidemark deployments add prod-rs\n  $ tidemark deployments show prod-rs --json",
    );

  command
    .command("add <name>")
    .description("Register a deployment and print its agent key (shown once)")
    .option("--json", "print {id, name, agentKey} as JSON", false)
    .addHelpText("after", "\nExample:\n  $ tidemark deployments add prod-rs")
    .action(async (name: string, opts: { json: boolean }) => {
      const api = ApiClient.fromEnvironment();
      const created = await api.request<{ id: string; name: string; agentKey: string }>(
        "POST",
        "/api/v1/deployments",
        { name },
      );
      if (opts.json) return printJson(created);
      process.stdout.write(
        `added ${created.name} (${created.id})\nagent key (shown once, keep it safe): ${created.agentKey}\n` +
          `run the agent next to the deployment:\n  tidemark agent --server ${api.baseUrl} --key ${created.agentKey} --source "mongodb://HOST:27017/?replicaSet=rs0"\n` +
          `then start the backup:\n  tidemark backup start ${created.name}\n`,
      );
    });

  command
    .command("list")
    .description("List deployments with their backup state")
    .option("--json", "print the API's JSON", false)
    .addHelpText("after", "\nExample:\n  $ tidemark deployments list")
    .action(async (opts: { json: boolean }) => {
      const { deployments } = await ApiClient.fromEnvironment().request<{ deployments: DeploymentView[] }>(
        "GET",
        "/api/v1/deployments",
      );
      if (opts.json) return printJson({ deployments });
      if (deployments.length === 0)
        return void process.stdout.write("no deployments; add one with: tidemark deployments add NAME\n");
      const rows = [["NAME", "STATE", "PHASE", "AGENT LAST SEEN", "ID"]];
      for (const d of deployments)
        rows.push([d.name, d.state, d.phase ?? "-", d.agent.lastSeen ?? "never", d.id]);
      process.stdout.write(`${table(rows)}\n`);
    });

  command
    .command("show <name>")
    .description("Show a deployment's backup state, phases and progress")
    .option("--json", "print the API's JSON", false)
    .addHelpText("after", "\nExample:\n  $ tidemark deployments show prod-rs --json")
    .action(async (name: string, opts: { json: boolean }) => {
      const view = await ApiClient.fromEnvironment().request<DeploymentView>("GET", path(name));
      if (opts.json) return printJson(view);
      process.stdout.write(`${describeDeployment(view)}\n`);
    });

  command
    .command("terminate <name>")
    .description("Stop backing up a deployment and delete its slices (cannot be undone)")
    .option("--json", "print the API's JSON", false)
    .addHelpText("after", "\nExample:\n  $ tidemark deployments terminate old-rs")
    .action(async (name: string, opts: { json: boolean }) => {
      const view = await ApiClient.fromEnvironment().request<DeploymentView>("DELETE", path(name));
      if (opts.json) return printJson(view);
      process.stdout.write(`${view.name} terminated; its slices are deleted\n`);
    });

  return command;
}

export function backupCommand(): Command {
  const command = new Command("backup")
    .description("Start, stop or resync a deployment's backup")
    .addHelpText(
      "after",
      "\nExamples:\n  $ tidemark backup start prod-rs\n  $ tidemark backup resync prod-rs",
    );
  for (const [action, what] of [
    ["start", "Start (or resume) the backup: the first start begins the initial sync"],
    ["stop", "Stop the backup; start resumes where it stopped"],
    ["resync", "Throw away the slices and run a new initial sync (after an oplog gap)"],
  ] as const) {
    command
      .command(`${action} <name>`)
      .description(what)
      .option("--json", "print the API's JSON", false)
      .addHelpText("after", `\nExample:\n  $ tidemark backup ${action} prod-rs`)
      .action(async (name: string, opts: { json: boolean }) => {
        const view = await ApiClient.fromEnvironment().request<DeploymentView>(
          "POST",
          `${path(name)}/backup/${action}`,
        );
        if (opts.json) return printJson(view);
        process.stdout.write(`${view.name}: ${view.state}${view.phase ? ` (${view.phase})` : ""}\n`);
      });
  }
  return command;
}
