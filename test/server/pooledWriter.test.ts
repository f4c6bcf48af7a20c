import { randomBytes } from "node:crypto";
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { PooledWriter } from "../../src/server/pooledWriter.js";

/*
 * Real HTTP: a node:http server whose one route writes ranges through a PooledWriter with tiny
 * buffers, read by a real client.
 */

type Route = (response: ServerResponse) => Promise<void>;

let server: Server | undefined;

afterEach(async () => {
  await new Promise((resolve) => server?.close(resolve));
  server = undefined;
});

async function serve(route: Route): Promise<number> {
  server = createServer((_request, response) => {
    response.writeHead(200, { "content-type": "application/octet-stream" });
    void route(response);
  });
  await new Promise<void>((resolve) => server!.listen(0, "127.0.0.1", resolve));
  return (server.address() as AddressInfo).port;
}

function get(port: number): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    request({ host: "127.0.0.1", port, path: "/" }, resolve).on("error", reject).end();
  });
}

async function bodyOf(response: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of response) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

describe("PooledWriter", () => {
  it("sends every range in order, whatever its size against the buffers", async () => {
    // Sizes around the 64-byte buffer: smaller, exactly one, just over, several buffers' worth.
    const sizes = [1, 63, 64, 65, 10, 200, 0, 64, 3, 1000, 7, 64, 64, 64, 64, 64, 130];
    const ranges = sizes.map((size) => randomBytes(size));
    const port = await serve(async (response) => {
      const writer = new PooledWriter(response, { buffers: 2, bufferBytes: 64 });
      for (let i = 0; i < ranges.length; i += 3) expect(await writer.add(ranges.slice(i, i + 3))).toBe(true);
      expect(await writer.flush()).toBe(true);
      response.end();
    });
    const body = await bodyOf(await get(port));
    expect(body.equals(Buffer.concat(ranges))).toBe(true);
  });

  it("reuses its buffers: many more bytes than the pool holds arrive intact", async () => {
    // 2 buffers of 4 KiB carry 8 MiB: each is filled again only after the socket took it, so a
    // buffer reused too early would show as damaged bytes here.
    const ranges = Array.from({ length: 4096 }, (_, i) => randomBytes(1500 + (i % 1200)));
    const port = await serve(async (response) => {
      const writer = new PooledWriter(response, { buffers: 2, bufferBytes: 4096 });
      for (let i = 0; i < ranges.length; i += 50) await writer.add(ranges.slice(i, i + 50));
      await writer.flush();
      response.end();
    });
    const response = await get(port);
    // A slow reader: the writer must wait for its buffers rather than run ahead.
    response.pause();
    await new Promise((resolve) => setTimeout(resolve, 200));
    response.resume();
    const body = await bodyOf(response);
    expect(body.length).toBe(ranges.reduce((sum, range) => sum + range.length, 0));
    expect(body.equals(Buffer.concat(ranges))).toBe(true);
  });

  it("says false, rather than waiting for ever, once the client has gone", async () => {
    let result: boolean | undefined;
    const finished = new Promise<void>((resolve) => {
      void serve(async (response) => {
        const writer = new PooledWriter(response, { buffers: 1, bufferBytes: 1024 });
        // Far more than the socket buffers take without a reader: the writer waits, then the
        // client goes away.
        for (let i = 0; i < 100_000; i++) {
          result = await writer.add([randomBytes(1000)]);
          if (!result) break;
        }
        resolve();
      }).then(async (port) => {
        const response = await get(port);
        response.pause();
        await new Promise((wait) => setTimeout(wait, 100));
        response.destroy();
      });
    });
    await finished;
    expect(result).toBe(false);
  });
});
