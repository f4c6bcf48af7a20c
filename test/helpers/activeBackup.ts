/**
 * A deployment backed up to `active` for tests that start there (snapshots, restores): added on
 * the server, its backup started, the in-process agent cloning the emulator, and a way to wait
 * until the head database has applied the emulator's newest oplog entry.
 */
import { newestOplogOpTime } from "../../src/agent/oplogQueries.js";
import type { RunningAgent } from "../../src/agent/agent.js";
import { compareOpTimes } from "../../src/protocol/optime.js";
import type { DeploymentView } from "../../src/server/deploymentView.js";
import { startTestAgent } from "./agent.js";
import type { EmulatorFixture } from "./emulator.js";
import type { ServerFixture } from "./server.js";
import { waitFor } from "./wait.js";

export interface ActiveBackup {
  id: string;
  name: string;
  agent: RunningAgent;
  view(): Promise<DeploymentView>;
  /** Resolves once the head database has applied everything the emulator's oplog holds now. */
  caughtUp(): Promise<DeploymentView>;
}

export async function startActiveBackup(
  fx: ServerFixture,
  source: EmulatorFixture,
  name: string,
  log: (line: string) => void = () => {},
): Promise<ActiveBackup> {
  const created = await fx.api<{ id: string; agentKey: string }>("POST", "/api/v1/deployments", { name });
  if (created.status !== 201)
    throw new Error(`cannot add deployment ${name}: ${JSON.stringify(created.body)}`);
  const { id, agentKey } = created.body;
  const started = await fx.api("POST", `/api/v1/deployments/${id}/backup/start`);
  if (started.status !== 200) throw new Error(`cannot start the backup: ${JSON.stringify(started.body)}`);
  const agent = startTestAgent({
    serverUrl: fx.server.url,
    agentKey,
    deploymentId: id,
    sourceUri: source.emulator.uri,
    cloneBatchSize: 500,
    log,
  });
  const view = async () => (await fx.api<DeploymentView>("GET", `/api/v1/deployments/${id}`)).body;
  const probe = async (ready: (v: DeploymentView) => boolean) => {
    const v = await view();
    if (v.daemon.error) throw new Error(`daemon error: ${v.daemon.error}`);
    return ready(v) ? v : undefined;
  };
  await waitFor(`${name} to become active`, () => probe((v) => v.state === "active"), 120_000);
  return {
    id,
    name,
    agent,
    view,
    async caughtUp() {
      const newest = (await newestOplogOpTime(source.client))!;
      return waitFor(
        `${name}'s head database to catch up`,
        () => probe((v) => v.head.appliedTs !== null && compareOpTimes(v.head.appliedTs, newest) >= 0),
        60_000,
      );
    },
  };
}
