/**
 * The agent's HTTP client against a real node:http server: the paths and headers of the agent
 * protocol, which deployment a key belongs to, retries of POSTs on transient failures, and how
 * each refusal is classified.
 */
import http from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { ConfigurationError, JobConflictError, ServerResponseError } from "../../src/agent/errors.js";
import { ServerClient } from "../../src/agent/serverClient.js";
import type { AgentJob } from "../../src/protocol/agentProtocol.js";

interface Seen {
  method: string;
  url: string;
  authorization?: string;
  body: string;
}

let server: http.Server | undefined;
afterEach(async () => {
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  server = undefined;
});

async function stub(answer: (seen: Seen) => [number, unknown]): Promise<{ url: string; seen: Seen[] }> {
  const seen: Seen[] = [];
  server = http.createServer((req, res) => {
    let body = "";
    req.setEncoding("utf8").on("data", (chunk: string) => (body += chunk));
    req.on("end", () => {
      const request = { method: req.method!, url: req.url!, authorization: req.headers.authorization, body };
      seen.push(request);
      const [status, reply] = answer(request);
      res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(reply));
    });
  });
  await new Promise<void>((resolve) => server!.listen(0, "127.0.0.1", resolve));
  return { url: `http://127.0.0.1:${(server!.address() as AddressInfo).port}/`, seen };
}

const JOB: AgentJob = {
  deploymentId: "dep 1",
  name: "shop",
  state: "initial_sync",
  generation: 2,
  oplog: { nextSequence: 0 },
  collections: [],
  catalogs: [],
  missing: [],
  verifications: [],
  settings: { sliceMb: 10, oplogFlushSeconds: 5 },
};

describe("ServerClient", () => {
  it("finds its deployment with the key, then uses it in every path (URL-encoded)", async () => {
    const { url, seen } = await stub(({ url }) =>
      url === "/api/v1/agent/self" ? [200, { deploymentId: "dep 1", name: "shop" }] : [200, JOB],
    );
    const client = new ServerClient({ serverUrl: url, agentKey: "tdm_agent_k" });
    expect(client.identified).toBe(false);
    expect(await client.identify()).toBe("dep 1");
    expect(await client.getJob()).toEqual(JOB);
    expect(seen.map((s) => `${s.method} ${s.url}`)).toEqual([
      "GET /api/v1/agent/self",
      "GET /api/v1/agent/deployments/dep%201/job",
    ]);
    expect(seen.every((s) => s.authorization === "Bearer tdm_agent_k")).toBe(true);
  });

  it("a server without GET /api/v1/agent/self: a configuration error that says to pass --deployment", async () => {
    const { url } = await stub(() => [
      404,
      { error: "Route GET:/api/v1/agent/self not found", code: "NOT_FOUND" },
    ]);
    const error = await new ServerClient({ serverUrl: url, agentKey: "k" })
      .identify()
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigurationError);
    expect((error as ConfigurationError).hint).toMatch(/--deployment/);
  });

  it("POSTs are retried on 5xx until the server takes them, with the protocol's body", async () => {
    let failures = 2;
    const { url, seen } = await stub(() =>
      failures-- > 0 ? [503, { error: "busy", code: "BUSY" }] : [200, { ok: true }],
    );
    const client = new ServerClient({
      serverUrl: url,
      agentKey: "k",
      deploymentId: "d",
      backoff: { initialMs: 5 },
    });
    await client.cloneDone({ t1: { t: 1700000000, i: 3 } });
    expect(seen).toHaveLength(3);
    expect(seen[2]).toMatchObject({
      method: "POST",
      url: "/api/v1/agent/deployments/d/initial-sync/clone-done",
    });
    expect(JSON.parse(seen[2].body)).toEqual({ t1: { t: 1700000000, i: 3 } });
  });

  it("classifies refusals: 401/403 key, 409 conflict, a reply that breaks the protocol", async () => {
    const answers: Array<[number, unknown]> = [
      [403, { error: "this agent key belongs to deployment 'a', not 'b'", code: "FORBIDDEN" }],
      [409, { error: "the backup of 'b' is stopped", code: "NOT_IN_INITIAL_SYNC" }],
      [200, { state: "bogus" }],
    ];
    const { url } = await stub(() => answers.shift()!);
    const client = new ServerClient({ serverUrl: url, agentKey: "k", deploymentId: "b" });
    const forbidden = await client.getJob().catch((e: unknown) => e);
    expect(forbidden).toBeInstanceOf(ConfigurationError);
    expect((forbidden as ConfigurationError).hint).toMatch(/another deployment/);
    const conflict = await client.collectionDone({ namespace: "a.b", documents: 1 }).catch((e: unknown) => e);
    expect(conflict).toBeInstanceOf(JobConflictError);
    expect((conflict as JobConflictError).code).toBe("NOT_IN_INITIAL_SYNC");
    const bad = await client.getJob().catch((e: unknown) => e);
    expect(bad).toBeInstanceOf(ServerResponseError);
    expect((bad as Error).message).toMatch(/does not follow the agent protocol/);
  });

  it("an unreachable server is retried, and stopping ends the retries", async () => {
    const controller = new AbortController();
    const client = new ServerClient({
      serverUrl: "http://127.0.0.1:1",
      agentKey: "k",
      deploymentId: "d",
      backoff: { initialMs: 5, maxMs: 20 },
    });
    const posting = client.reportOplogGap({ resumeTs: { t: 1, i: 1 }, message: "gap" }, controller.signal);
    setTimeout(() => controller.abort(), 100);
    await expect(posting).rejects.toThrow(/stopped/);
  });
});
