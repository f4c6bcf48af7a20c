import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startServer, type RunningServer, type StartServerOptions } from "../../src/server/server.js";

export const ADMIN_KEY = "test-admin-key-0123456789";

export interface ServerFixture {
  server: RunningServer;
  dataDir: string;
  /** Calls the API with the admin key (or another key), returning status and parsed body. */
  api<T = Record<string, unknown>>(
    method: string,
    path: string,
    body?: unknown,
    key?: string,
  ): Promise<{ status: number; body: T }>;
  close(): Promise<void>;
}

/**
 * A server on a fresh data directory, removed by `close`. With `options.dataDir` (and `port`), the
 * server runs on that directory instead (a restart on the same data), and `close` leaves it.
 */
export async function withServer(options: StartServerOptions = {}): Promise<ServerFixture> {
  const dataDir = options.dataDir ?? mkdtempSync(join(tmpdir(), "tidemark-server-"));
  const server = await startServer({ dataDir, port: 0, adminKey: ADMIN_KEY, log: () => {}, ...options });
  return {
    server,
    dataDir,
    async api<T>(method: string, path: string, body?: unknown, key = ADMIN_KEY) {
      const response = await fetch(`${server.url}${path}`, {
        method,
        headers: {
          authorization: `Bearer ${key}`,
          ...(body === undefined
            ? {}
            : Buffer.isBuffer(body)
              ? { "content-type": "application/octet-stream" }
              : { "content-type": "application/json" }),
        },
        body: body === undefined ? undefined : Buffer.isBuffer(body) ? body : JSON.stringify(body),
      });
      const text = await response.text();
      return { status: response.status, body: (text ? JSON.parse(text) : undefined) as T };
    },
    async close() {
      await server.stop();
      if (options.dataDir === undefined) rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
