import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { DeploymentView } from "../../src/server/deploymentView.js";
import { withServer, type ServerFixture } from "../helpers/server.js";

describe("server HTTP API: deployments and job states", () => {
  let fx: ServerFixture;
  beforeAll(async () => {
    fx = await withServer();
  });
  afterAll(async () => fx?.close());

  it("adds a deployment and returns its agent key once", async () => {
    const created = await fx.api<{ id: string; name: string; agentKey: string }>(
      "POST",
      "/api/v1/deployments",
      { name: "prod-rs" },
    );
    expect(created.status).toBe(201);
    expect(created.body.agentKey).toMatch(/^tdm_agent_/);
    const shown = await fx.api<DeploymentView>("GET", `/api/v1/deployments/${created.body.id}`);
    expect(JSON.stringify(shown.body)).not.toContain(created.body.agentKey);
    expect(shown.body).toMatchObject({
      id: created.body.id,
      name: "prod-rs",
      state: "inactive",
      phase: null,
    });
    expect(shown.body.phases.map((p) => p.name)).toEqual([
      "starting",
      "transferring",
      "building",
      "applying_oplogs",
      "fetching_missing_documents",
      "creating_indexes",
      "complete",
    ]);
    expect(shown.body.phases.every((p) => p.status === "pending")).toBe(true);
    expect(shown.body).toHaveProperty("agent.lastSeen", null);
    expect(shown.body).toHaveProperty("oplog.lastTs", null);
    expect(shown.body).toHaveProperty("head.appliedTs", null);
    expect(shown.body.slices.documents).toEqual({ count: 0, bytes: 0, documents: 0 });
  });

  it("refuses bad names and duplicates with clear errors", async () => {
    const bad = await fx.api<{ error: string; code: string }>("POST", "/api/v1/deployments", {
      name: "has space",
    });
    expect(bad.status).toBe(400);
    expect(bad.body.error).toContain("name");
    const dup = await fx.api<{ code: string; hint: string }>("POST", "/api/v1/deployments", {
      name: "prod-rs",
    });
    expect(dup.status).toBe(409);
    expect(dup.body.code).toBe("NAME_TAKEN");
  });

  it("needs the admin key (401 otherwise)", async () => {
    expect((await fx.api("GET", "/api/v1/deployments", undefined, "wrong-key")).status).toBe(401);
    const none = await fetch(`${fx.server.url}/api/v1/deployments`);
    expect(none.status).toBe(401);
  });

  it("moves through start, stop, start, resync and terminate", async () => {
    const path = "/api/v1/deployments/prod-rs";
    const started = await fx.api<DeploymentView>("POST", `${path}/backup/start`);
    expect(started.body).toMatchObject({ state: "initial_sync", phase: "starting", generation: 1 });
    expect(started.body.phases[0].status).toBe("running");
    const stopped = await fx.api<DeploymentView>("POST", `${path}/backup/stop`);
    expect(stopped.body).toMatchObject({ state: "stopped", phase: "starting", generation: 1 });
    const resumed = await fx.api<DeploymentView>("POST", `${path}/backup/start`);
    expect(resumed.body).toMatchObject({ state: "initial_sync", generation: 1 });
    const resynced = await fx.api<DeploymentView>("POST", `${path}/backup/resync`);
    expect(resynced.body).toMatchObject({ state: "initial_sync", phase: "starting", generation: 2 });
    const terminated = await fx.api<DeploymentView>("DELETE", path);
    expect(terminated.body.state).toBe("terminated");
    const again = await fx.api<{ code: string }>("POST", `${path}/backup/start`);
    expect(again.status).toBe(409);
    expect(again.body.code).toBe("TERMINATED");
  });

  it("answers 404 for an unknown deployment", async () => {
    const missing = await fx.api<{ code: string }>("GET", "/api/v1/deployments/nope");
    expect(missing.status).toBe(404);
  });
});

describe("server HTTP API: agent keys", () => {
  let fx: ServerFixture;
  let a: { id: string; agentKey: string };
  let b: { id: string; agentKey: string };
  beforeAll(async () => {
    fx = await withServer();
    a = (await fx.api<{ id: string; agentKey: string }>("POST", "/api/v1/deployments", { name: "a" })).body;
    b = (await fx.api<{ id: string; agentKey: string }>("POST", "/api/v1/deployments", { name: "b" })).body;
    await fx.api("POST", "/api/v1/deployments/a/backup/start");
  });
  afterAll(async () => fx?.close());

  it("gives an agent its job with its own key", async () => {
    const job = await fx.api<{ state: string; generation: number; oplog: { nextSequence: number } }>(
      "GET",
      `/api/v1/agent/deployments/${a.id}/job`,
      undefined,
      a.agentKey,
    );
    expect(job.status).toBe(200);
    expect(job.body).toMatchObject({ state: "initial_sync", generation: 1, oplog: { nextSequence: 0 } });
    const view = await fx.api<DeploymentView>("GET", `/api/v1/deployments/${a.id}`);
    expect(view.body.agent.lastSeen).not.toBeNull();
  });

  it("tells an agent which deployment its key belongs to", async () => {
    const self = await fx.api<{ deploymentId: string; name: string }>(
      "GET",
      "/api/v1/agent/self",
      undefined,
      b.agentKey,
    );
    expect(self).toMatchObject({ status: 200, body: { deploymentId: b.id, name: "b" } });
    expect((await fx.api("GET", "/api/v1/agent/self", undefined, "tdm_agent_nope")).status).toBe(401);
  });

  it("refuses another deployment's key with 403 and an unknown key with 401", async () => {
    const cross = await fx.api<{ error: string }>(
      "GET",
      `/api/v1/agent/deployments/${a.id}/job`,
      undefined,
      b.agentKey,
    );
    expect(cross.status).toBe(403);
    expect(cross.body.error).toContain("'b'");
    expect(
      (await fx.api("GET", `/api/v1/agent/deployments/${a.id}/job`, undefined, "tdm_agent_nope")).status,
    ).toBe(401);
    expect(
      (await fx.api("GET", `/api/v1/agent/deployments/${a.id}/job`, undefined, "test-admin-key-0123456789"))
        .status,
    ).toBe(401);
  });

  it("records T0 and moves to transferring", async () => {
    const started = await fx.api(
      "POST",
      `/api/v1/agent/deployments/${a.id}/initial-sync/start`,
      { t0: { t: 1700000000, i: 3 }, estimate: { bytes: 1000, documents: 10, collections: 1 } },
      a.agentKey,
    );
    expect(started.status).toBe(200);
    const view = await fx.api<DeploymentView>("GET", `/api/v1/deployments/${a.id}`);
    expect(view.body).toMatchObject({ phase: "transferring", initialSync: { t0: { t: 1700000000, i: 3 } } });
    expect(view.body.phases[0]).toMatchObject({ status: "done", done: 1, total: 1 });
    expect(view.body.phases[1]).toMatchObject({ status: "running", done: 0, total: 1000, unit: "bytes" });
  });

  it("moves the job to resync_required on an oplog gap", async () => {
    const gap = await fx.api(
      "POST",
      `/api/v1/agent/deployments/${a.id}/oplog-gap`,
      { resumeTs: { t: 1, i: 1 }, message: "resume point 1:1 rolled off the oplog" },
      a.agentKey,
    );
    expect(gap.status).toBe(200);
    const view = await fx.api<DeploymentView>("GET", `/api/v1/deployments/${a.id}`);
    expect(view.body).toMatchObject({
      state: "resync_required",
      resyncReason: "resume point 1:1 rolled off the oplog",
    });
    const start = await fx.api<{ code: string; hint: string }>(
      "POST",
      `/api/v1/deployments/${a.id}/backup/start`,
    );
    expect(start.status).toBe(409);
    expect(start.body.hint).toContain("tidemark backup resync a");
  });
});
