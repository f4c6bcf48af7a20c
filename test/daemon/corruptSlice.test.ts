/**
 * A slice damaged in the oplog store after it was accepted (a flipped byte on disk): the daemon
 * must stop that deployment's work at that slice with an error that names it, apply nothing past
 * it, and stop there again after a restart — never skip it.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Int32 } from "mongodb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { compareOpTimes } from "../../src/protocol/optime.js";
import { OPLOG_STREAM } from "../../src/protocol/agentProtocol.js";
import type { DeploymentView } from "../../src/server/deploymentView.js";
import { startServer, type RunningServer } from "../../src/server/server.js";
import { startTestAgent } from "../helpers/agent.js";
import { withEmulator, type AnyDoc, type EmulatorFixture } from "../helpers/emulator.js";
import { waitFor } from "../helpers/wait.js";

const ADMIN_KEY = "corrupt-slice-admin-key-0123456789";

describe("a corrupt slice in the oplog store", () => {
  let source: EmulatorFixture;
  let dataDir: string;
  let server: RunningServer | undefined;

  const start = (daemon: boolean) =>
    startServer({
      dataDir,
      port: 0,
      adminKey: ADMIN_KEY,
      daemon,
      sliceMb: 0.02,
      oplogFlushSeconds: 0.2,
      log: () => {},
    });
  async function api<T>(method: string, path: string, body?: unknown): Promise<T> {
    const response = await fetch(`${server!.url}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${ADMIN_KEY}`,
        ...(body === undefined ? {} : { "content-type": "application/json" }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return (await response.json()) as T;
  }

  beforeAll(async () => {
    source = await withEmulator();
    dataDir = mkdtempSync(join(tmpdir(), "tidemark-corrupt-"));
    await source.client
      .db("shop")
      .collection<AnyDoc>("items")
      .insertMany(Array.from({ length: 500 }, (_, i) => ({ _id: i, n: new Int32(0) })));
  });
  afterAll(async () => {
    await server?.stop();
    await source?.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it("stops the deployment's daemon at that slice, names it, and applies nothing past it", async () => {
    // Slices first, with the daemon off: an initial sync, then oplog slices of updates.
    server = await start(false);
    const { id, agentKey } = await api<{ id: string; agentKey: string }>("POST", "/api/v1/deployments", {
      name: "rs",
    });
    await api("POST", `/api/v1/deployments/${id}/backup/start`);
    const agent = startTestAgent({
      serverUrl: server.url,
      agentKey,
      deploymentId: id,
      sourceUri: source.emulator.uri,
    });
    const items = source.client.db("shop").collection<AnyDoc>("items");
    const view = () => api<DeploymentView>("GET", `/api/v1/deployments/${id}`);
    await waitFor("the clone to end", async () =>
      (await view()).initialSync.cloneCompleteAt ? true : undefined,
    );
    for (let round = 0; round < 6; round++) {
      await items.updateMany({}, { $inc: { n: 1 } });
      await new Promise((resolve) => setTimeout(resolve, 300));
    }
    const { generation } = await view();
    const catalog = () => server!.context.catalog;
    await waitFor("five oplog slices", async () =>
      catalog().slices.list(id, generation, "oplog").length >= 5 ? true : undefined,
    );
    await agent.stop();
    const damaged = catalog().slices.get(id, generation, OPLOG_STREAM, 2)!;
    await server.stop();

    // One byte flipped in the stored file's last byte (the body).
    const file = join(dataDir, "oplogstore", ...damaged.storeKey.split("/"));
    const bytes = readFileSync(file);
    bytes[bytes.length - 1] ^= 0xff;
    writeFileSync(file, bytes);

    for (let restart = 0; restart < 2; restart++) {
      server = await start(true);
      const stopped = await waitFor("the daemon error", async () => {
        const v = await view();
        return v.daemon.error ? v : undefined;
      });
      expect(stopped.daemon.error).toContain(`oplog#2`);
      expect(stopped.daemon.error).toMatch(/SHA-256/);
      // Slices 0 and 1 applied, nothing of slice 2 or after.
      expect(stopped.phases[3].done).toBe(2);
      expect(compareOpTimes(stopped.head.appliedTs!, damaged.firstTs!)).toBeLessThan(0);
      expect(stopped.state).toBe("initial_sync");
      await server.stop();
      server = undefined;
    }
  }, 120_000);
});
