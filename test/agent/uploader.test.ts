/**
 * The uploader against a real HTTP server (node:http) that answers like the Tidemark server:
 * transient failures (network cut, 500, 429, 507) are retried with backoff, a stream never has two
 * slices in flight and its slices arrive in order, memory held by slices stays under the bound,
 * a 400 stops only its stream (logged loudly with the server's message), a 409 stops everything.
 */
import http from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { ConfigurationError, JobConflictError, SliceRejectedError } from "../../src/agent/errors.js";
import { createLogger } from "../../src/agent/logger.js";
import { ServerClient } from "../../src/agent/serverClient.js";
import { Uploader } from "../../src/agent/uploader.js";

interface Received {
  stream: string;
  sequence: number;
  generation: string | undefined;
  authorization: string | undefined;
  bytes: number;
  at: number;
}

type Handler = (request: Received, response: http.ServerResponse) => void | Promise<void>;

const BASE = "/api/v1/agent/deployments/dep-1/slices/";

async function startServer(handler: Handler) {
  const received: Received[] = [];
  const sockets = new Set<import("node:net").Socket>();
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      const url = req.url ?? "";
      const [stream, sequence] = url.slice(BASE.length).split("/");
      const request: Received = {
        stream: decodeURIComponent(stream),
        sequence: Number(sequence),
        generation: req.headers["x-tidemark-generation"] as string | undefined,
        authorization: req.headers.authorization,
        bytes: Buffer.concat(chunks).length,
        at: Date.now(),
      };
      received.push(request);
      void handler(request, res);
    });
  });
  server.on("connection", (socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    received,
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function reply(
  res: http.ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
) {
  res.writeHead(status, { "content-type": "application/json", ...headers });
  res.end(JSON.stringify(body));
}

function ack(res: http.ServerResponse, request: Received) {
  reply(res, 201, { stream: request.stream, sequence: request.sequence, stored: true, duplicate: false });
}

const FAST = { initialMs: 5, maxMs: 40 };

function makeUploader(
  url: string,
  options: { maxBytesInFlight?: number; lines?: string[]; onFatal?: (e: Error) => void },
) {
  const lines = options.lines ?? [];
  const log = createLogger({ sink: (line) => lines.push(line), level: "debug" });
  const transport = new ServerClient({
    serverUrl: url,
    agentKey: "tdm_agent_test",
    deploymentId: "dep-1",
    log,
  });
  return new Uploader({
    transport,
    generation: 3,
    maxBytesInFlight: options.maxBytesInFlight ?? 1 << 30,
    backoff: FAST,
    log,
    onFatal: options.onFatal,
  });
}

function slice(stream: string, sequence: number, size = 100) {
  return { stream, sequence, bytes: Buffer.alloc(size, sequence % 256), documents: 1 };
}

let closeServer: (() => Promise<void>) | undefined;
afterEach(async () => {
  await closeServer?.();
  closeServer = undefined;
});

describe("Uploader", () => {
  it("retries 500, 429 and 507 with backoff, then the slice is stored once", async () => {
    const statuses = [500, 429, 507];
    const server = await startServer((request, res) => {
      const status = statuses.shift();
      if (status) reply(res, status, { error: `failing with ${status}`, code: "TEST" });
      else ack(res, request);
    });
    closeServer = server.close;
    const lines: string[] = [];
    const uploader = makeUploader(server.url, { lines });
    await uploader.put(slice("oplog", 0, 1234));
    await uploader.drain("oplog");
    expect(server.received.map((r) => r.sequence)).toEqual([0, 0, 0, 0]);
    expect(server.received.every((r) => r.bytes === 1234)).toBe(true);
    expect(server.received[0].generation).toBe("3");
    expect(server.received[0].authorization).toBe("Bearer tdm_agent_test");
    // Each retry waited: the gaps between attempts are not zero.
    for (let i = 1; i < server.received.length; i++) {
      expect(server.received[i].at).toBeGreaterThanOrEqual(server.received[i - 1].at);
    }
    const retries = lines.filter((line) => line.includes("retrying"));
    expect(retries).toHaveLength(3);
    expect(retries[2]).toMatch(/status=507/);
    expect(uploader.slicesAcknowledged).toBe(1);
    expect(uploader.bytesHeld).toBe(0);
  });

  it("retries a cut connection (the request never answered)", async () => {
    let cut = 2;
    const server = await startServer((request, res) => {
      if (cut-- > 0) res.socket?.destroy();
      else ack(res, request);
    });
    closeServer = server.close;
    const uploader = makeUploader(server.url, {});
    await uploader.put(slice("documents/shop.orders", 0));
    await uploader.drain("documents/shop.orders");
    expect(server.received).toHaveLength(3);
  });

  it("honours Retry-After on 507 (the store is full: wait, then resume in place)", async () => {
    let full = true;
    const server = await startServer((request, res) => {
      if (full) {
        full = false;
        reply(res, 507, { error: "the oplog store is full", code: "STORE_FULL" }, { "retry-after": "0.03" });
      } else ack(res, request);
    });
    closeServer = server.close;
    const uploader = makeUploader(server.url, {});
    await uploader.put(slice("oplog", 0));
    await uploader.put(slice("oplog", 1));
    await uploader.drain("oplog");
    expect(server.received.map((r) => r.sequence)).toEqual([0, 0, 1]);
    expect(server.received[1].at - server.received[0].at).toBeGreaterThanOrEqual(25);
  });

  it("one slice in flight per stream, in order, while streams go in parallel", async () => {
    const inFlight = new Map<string, number>();
    let parallelStreams = 0;
    let concurrentMax = 0;
    const server = await startServer(async (request, res) => {
      const now = (inFlight.get(request.stream) ?? 0) + 1;
      inFlight.set(request.stream, now);
      expect(now).toBe(1);
      const streamsBusy = [...inFlight.values()].filter((n) => n > 0).length;
      parallelStreams = Math.max(parallelStreams, streamsBusy);
      concurrentMax = Math.max(concurrentMax, now);
      await new Promise((resolve) => setTimeout(resolve, 2 + Math.random() * 8));
      // Some failures on the way, which must not reorder anything.
      if (Math.random() < 0.2) {
        inFlight.set(request.stream, 0);
        reply(res, 503, { error: "busy", code: "BUSY" });
        return;
      }
      inFlight.set(request.stream, 0);
      ack(res, request);
    });
    closeServer = server.close;
    const uploader = makeUploader(server.url, {});
    const streams = ["oplog", "documents/a.x", "documents/a.y", "documents/b.z"];
    await Promise.all(
      streams.map(async (stream) => {
        for (let sequence = 0; sequence < 15; sequence++) await uploader.put(slice(stream, sequence));
      }),
    );
    await Promise.all(streams.map((stream) => uploader.drain(stream)));
    expect(concurrentMax).toBe(1);
    expect(parallelStreams).toBeGreaterThan(1);
    for (const stream of streams) {
      // The accepted (last) attempt of each sequence, in arrival order, is 0..14.
      const arrivals = server.received.filter((r) => r.stream === stream).map((r) => r.sequence);
      const firstArrival = arrivals.filter((sequence, index) => arrivals.indexOf(sequence) === index);
      expect(firstArrival).toEqual(Array.from({ length: 15 }, (_, i) => i));
      for (let i = 1; i < arrivals.length; i++) expect(arrivals[i]).toBeGreaterThanOrEqual(arrivals[i - 1]);
    }
    expect(uploader.slicesAcknowledged).toBe(60);
  });

  it("never holds more than maxBytesInFlight bytes of slices, queued or in flight", async () => {
    let serverHolding = 0;
    let serverPeak = 0;
    const server = await startServer(async (request, res) => {
      serverHolding += request.bytes;
      serverPeak = Math.max(serverPeak, serverHolding);
      await new Promise((resolve) => setTimeout(resolve, 15));
      serverHolding -= request.bytes;
      ack(res, request);
    });
    closeServer = server.close;
    const SIZE = 10_000;
    const BOUND = 2 * SIZE * 3; // 2 × slice size × (parallelism 2 + 1)
    const uploader = makeUploader(server.url, { maxBytesInFlight: BOUND });
    const streams = ["oplog", "documents/a.one", "documents/a.two"];
    let putsWaiting = 0;
    await Promise.all(
      streams.map(async (stream) => {
        for (let sequence = 0; sequence < 12; sequence++) {
          const before = uploader.bytesHeld;
          await uploader.put(slice(stream, sequence, SIZE));
          if (before + SIZE > BOUND) putsWaiting++;
          expect(uploader.bytesHeld).toBeLessThanOrEqual(BOUND);
        }
      }),
    );
    await Promise.all(streams.map((stream) => uploader.drain(stream)));
    expect(uploader.peakBytesHeld).toBeLessThanOrEqual(BOUND);
    expect(uploader.peakBytesHeld).toBeGreaterThan(SIZE); // the streams did run in parallel
    expect(serverPeak).toBeLessThanOrEqual(BOUND);
    expect(putsWaiting).toBeGreaterThan(0); // the bound did hold the producers back
    expect(server.received).toHaveLength(36);
  });

  it("a 400 stops its stream with the server's message (logged loudly); other streams go on", async () => {
    const server = await startServer((request, res) => {
      if (request.stream === "documents/bad.coll" && request.sequence === 1) {
        reply(res, 400, {
          error: "slice documents/bad.coll#1 rejected: the body checksum does not match",
          code: "SLICE_BODY_CHECKSUM",
        });
      } else ack(res, request);
    });
    closeServer = server.close;
    const lines: string[] = [];
    const uploader = makeUploader(server.url, { lines });
    await uploader.put(slice("documents/bad.coll", 0));
    await uploader.put(slice("documents/bad.coll", 1));
    await uploader.put(slice("documents/bad.coll", 2)).catch(() => {});
    await uploader.put(slice("oplog", 0));
    const failure = await uploader.drain("documents/bad.coll").catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(SliceRejectedError);
    expect((failure as Error).message).toMatch(/body checksum does not match/);
    await expect(uploader.put(slice("documents/bad.coll", 3))).rejects.toBeInstanceOf(SliceRejectedError);
    await uploader.put(slice("oplog", 1));
    await uploader.drain("oplog");
    // Slice #2 was never sent: nothing after a refused slice.
    expect(server.received.filter((r) => r.stream === "documents/bad.coll").map((r) => r.sequence)).toEqual([
      0, 1,
    ]);
    const loud = lines.find((line) => line.includes("SLICE REFUSED"));
    expect(loud).toMatch(/ERROR/);
    expect(loud).toMatch(/stream=documents\/bad\.coll/);
    expect(loud).toMatch(/body checksum does not match/);
    expect(uploader.bytesHeld).toBe(0);
  });

  it("a 409 (wrong generation) stops every stream and reports it once", async () => {
    const server = await startServer((request, res) => {
      if (request.stream === "oplog") {
        reply(res, 409, {
          error: "slice for generation 3 but 'shop' is at generation 4",
          code: "STALE_GENERATION",
        });
      } else setTimeout(() => ack(res, request), 50);
    });
    closeServer = server.close;
    const fatal: Error[] = [];
    const uploader = makeUploader(server.url, { onFatal: (error) => fatal.push(error) });
    await uploader.put(slice("documents/a.b", 0));
    await uploader.put(slice("oplog", 0));
    await expect(uploader.drain("oplog")).rejects.toBeInstanceOf(JobConflictError);
    await expect(uploader.drain("documents/a.b")).rejects.toBeInstanceOf(JobConflictError);
    await expect(uploader.put(slice("documents/a.b", 1))).rejects.toBeInstanceOf(JobConflictError);
    expect(fatal).toHaveLength(1);
    expect(fatal[0].message).toMatch(/generation 4/);
    expect(uploader.bytesHeld).toBe(0);
  });

  it("a 401 is a configuration error (the agent key)", async () => {
    const server = await startServer((_request, res) =>
      reply(res, 401, { error: "missing or unknown agent key", code: "UNAUTHORIZED" }),
    );
    closeServer = server.close;
    const fatal: Error[] = [];
    const uploader = makeUploader(server.url, { onFatal: (error) => fatal.push(error) });
    await uploader.put(slice("oplog", 0));
    const error = await uploader.drain("oplog").catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigurationError);
    expect((error as ConfigurationError).problem).toBe("agent_key");
    expect(fatal).toHaveLength(1);
  });

  it("refuses slices put out of order (a bug in the caller)", async () => {
    const server = await startServer((request, res) => ack(res, request));
    closeServer = server.close;
    const uploader = makeUploader(server.url, {});
    await uploader.put(slice("oplog", 4));
    await expect(uploader.put(slice("oplog", 6))).rejects.toThrow(/out of order/);
    await uploader.drain("oplog");
  });

  it("stops when its signal aborts: pending puts and drains reject, nothing is retried", async () => {
    const server = await startServer((_request, res) => reply(res, 503, { error: "down", code: "DOWN" }));
    closeServer = server.close;
    const controller = new AbortController();
    const transport = new ServerClient({ serverUrl: server.url, agentKey: "k", deploymentId: "dep-1" });
    const uploader = new Uploader({
      transport,
      generation: 1,
      maxBytesInFlight: 150,
      backoff: FAST,
      signal: controller.signal,
    });
    await uploader.put(slice("oplog", 0));
    const blocked = uploader.put(slice("oplog", 1));
    const drained = uploader.drain("oplog");
    await new Promise((resolve) => setTimeout(resolve, 50));
    controller.abort();
    await expect(blocked).rejects.toThrow(/stopped/);
    await expect(drained).rejects.toThrow(/stopped/);
    const attempts = server.received.length;
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(server.received.length).toBe(attempts);
    expect(uploader.bytesHeld).toBe(0);
  });
});
