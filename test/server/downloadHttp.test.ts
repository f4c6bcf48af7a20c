import { createHash, randomBytes } from "node:crypto";
import {
  existsSync,
  mkdtempSync,
  readdirSync,
  readlinkSync,
  rmSync,
  truncateSync,
  utimesSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Fastify, { type FastifyReply, type FastifyRequest } from "fastify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HttpError } from "../../src/server/errors.js";
import { DownloadLinks } from "../../src/server/download/links.js";
import { loadOrCreateLinkSecret } from "../../src/server/download/linkSecret.js";
import { requireDownloadLink } from "../../src/server/download/requireLink.js";
import { sendFile, type SendFileOptions } from "../../src/server/download/sendFile.js";

/*
 * Real HTTP: a fastify instance on 127.0.0.1:0 with tiny routes over sendFile and the signed
 * links, fetched with the global fetch.
 */

interface TestApp {
  url: string;
  links: DownloadLinks;
  close(): Promise<void>;
}

interface Fetched {
  status: number;
  headers: Headers;
  body: Buffer;
}

let dir: string;
let dataDir: string;
let content: Buffer;
/** A few MiB, not a multiple of any buffer size. */
const size = 3 * 1024 * 1024 + 12_345;
let app: TestApp;

/** What each /files/:name route sends. */
function fileOptions(name: string): SendFileOptions {
  switch (name) {
    case "data.bin":
      return { path: join(dir, "data.bin"), filename: "restore-r1.archive" };
    case "tagged":
      return {
        path: join(dir, "data.bin"),
        filename: "tagged.bin",
        etag: sha256(content),
        contentType: "application/gzip",
      };
    case "unicode":
      return { path: join(dir, "data.bin"), filename: "prod-ü.archive" };
    default:
      return { path: join(dir, name), filename: name };
  }
}

async function startApp(secretDir: string): Promise<TestApp> {
  const links = new DownloadLinks(loadOrCreateLinkSecret(secretDir).secret);
  const fastify = Fastify({ logger: false, forceCloseConnections: true });
  fastify.setErrorHandler((error, _request, reply) => {
    if (error instanceof HttpError) return reply.code(error.status).send(error.toBody());
    return reply.code(500).send({ error: String(error), code: "INTERNAL" });
  });
  fastify.get("/files/:name", (request: FastifyRequest<{ Params: { name: string } }>, reply: FastifyReply) =>
    sendFile(request, reply, fileOptions(request.params.name)),
  );
  fastify.get(
    "/api/v1/restores/:id/download",
    (request: FastifyRequest<{ Params: { id: string } }>, reply: FastifyReply) => {
      requireDownloadLink(links, request);
      return sendFile(request, reply, {
        path: join(dir, "data.bin"),
        filename: `restore-${request.params.id}.archive`,
      });
    },
  );
  await fastify.listen({ host: "127.0.0.1", port: 0 });
  const address = fastify.server.address();
  const port = typeof address === "object" && address ? address.port : 0;
  return { url: `http://127.0.0.1:${port}`, links, close: () => fastify.close() };
}

async function get(path: string, headers: Record<string, string> = {}, method = "GET"): Promise<Fetched> {
  const response = await fetch(`${app.url}${path}`, { method, headers });
  return {
    status: response.status,
    headers: response.headers,
    body: Buffer.from(await response.arrayBuffer()),
  };
}

function sha256(bytes: Buffer): string {
  return createHash("sha256").update(bytes).digest("hex");
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "tidemark-download-http-"));
  dataDir = join(dir, "data");
  content = randomBytes(size); // known random bytes
  writeFileSync(join(dir, "data.bin"), content);
  // Modified an hour ago, so its Last-Modified is a strong validator for If-Range.
  const hourAgo = new Date(Date.now() - 3600_000);
  utimesSync(join(dir, "data.bin"), hourAgo, hourAgo);
  writeFileSync(join(dir, "empty.bin"), Buffer.alloc(0));
  app = await startApp(dataDir);
});

afterAll(async () => {
  await app?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("sendFile over HTTP", () => {
  it("sends the whole file byte for byte, with download headers", async () => {
    const got = await get("/files/data.bin");
    expect(got.status).toBe(200);
    expect(got.body.equals(content)).toBe(true);
    expect(got.headers.get("content-length")).toBe(String(size));
    expect(got.headers.get("content-type")).toBe("application/octet-stream");
    expect(got.headers.get("content-disposition")).toBe('attachment; filename="restore-r1.archive"');
    expect(got.headers.get("accept-ranges")).toBe("bytes");
    expect(got.headers.get("etag")).toMatch(/^"[0-9a-f]+-[0-9a-f]+"$/);
    expect(Date.parse(got.headers.get("last-modified")!)).toBeLessThan(Date.now() - 3000_000);
    expect(got.headers.get("cache-control")).toBe("private, no-store");
    expect(got.headers.get("content-range")).toBeNull();
  });

  it.each([
    ["first bytes", "bytes=0-99", 0, 99],
    ["a middle range", "bytes=1000000-1999999", 1_000_000, 1_999_999],
    ["a suffix", "bytes=-500", size - 500, size - 1],
    ["an open-ended range", "bytes=3000000-", 3_000_000, size - 1],
    ["the last byte", `bytes=${size - 1}-${size - 1}`, size - 1, size - 1],
    ["a range past the end, clamped", `bytes=${size - 10}-${size + 1000}`, size - 10, size - 1],
    ["whitespace and an upper-case unit", " BYTES= 10-19 ,", 10, 19],
  ])("answers %s with 206", async (_what, range, start, end) => {
    const got = await get("/files/data.bin", { range });
    expect(got.status).toBe(206);
    expect(got.headers.get("content-range")).toBe(`bytes ${start}-${end}/${size}`);
    expect(got.headers.get("content-length")).toBe(String(end - start + 1));
    expect(got.body.equals(content.subarray(start, end + 1))).toBe(true);
  });

  it("answers a range starting past the end with 416 and bytes */size", async () => {
    for (const range of [`bytes=${size}-`, `bytes=${size + 5}-${size + 10}`, "bytes=-0"]) {
      const got = await get("/files/data.bin", { range });
      expect(got.status, range).toBe(416);
      expect(got.headers.get("content-range")).toBe(`bytes */${size}`);
      const body = JSON.parse(got.body.toString()) as { error: string; code: string; hint: string };
      expect(body.code).toBe("RANGE_NOT_SATISFIABLE");
      expect(body.error).toContain(`${size} bytes`);
      expect(body.hint).toMatch(/without a Range header/);
    }
  });

  it.each([
    ["an invalid header", "bytes=5-1"],
    ["garbage", "bytes=abc"],
    ["another unit", "items=0-1"],
    ["several ranges", "bytes=0-99,200-299"],
    ["overlapping ranges", "bytes=0-99, 50-"],
  ])("answers %s with 200 and the whole file", async (_what, range) => {
    const got = await get("/files/data.bin", { range });
    expect(got.status).toBe(200);
    expect(got.headers.get("content-range")).toBeNull();
    expect(got.body.equals(content)).toBe(true);
  });

  it("honours a range under If-Range only while the validator matches", async () => {
    const { headers } = await get("/files/data.bin", {}, "HEAD");
    const etag = headers.get("etag")!;
    const lastModified = headers.get("last-modified")!;
    const range = { range: "bytes=0-9" };
    expect((await get("/files/data.bin", { ...range, "if-range": etag })).status).toBe(206);
    expect((await get("/files/data.bin", { ...range, "if-range": lastModified })).status).toBe(206);

    for (const stale of [
      '"0-0"',
      `W/${etag}`,
      new Date(Date.parse(lastModified) - 1000).toUTCString(),
      "junk",
    ]) {
      const got = await get("/files/data.bin", { ...range, "if-range": stale });
      expect(got.status, stale).toBe(200);
      expect(got.body.equals(content)).toBe(true);
    }
    // If-Range without Range changes nothing; a mismatched If-Range also voids an unsatisfiable range
    expect((await get("/files/data.bin", { "if-range": '"0-0"' })).status).toBe(200);
    expect((await get("/files/data.bin", { range: `bytes=${size}-`, "if-range": '"0-0"' })).status).toBe(200);
  });

  it("sends the whole new file when it changed since the client's ETag", async () => {
    const path = join(dir, "changing.bin");
    writeFileSync(path, randomBytes(1000));
    const old = await get("/files/changing.bin");
    const newer = randomBytes(1000);
    writeFileSync(path, newer);
    const future = new Date(Date.now() + 5000);
    utimesSync(path, future, future);
    const got = await get("/files/changing.bin", {
      range: "bytes=500-",
      "if-range": old.headers.get("etag")!,
    });
    expect(got.headers.get("etag")).not.toBe(old.headers.get("etag"));
    expect(got.status).toBe(200);
    expect(got.body.equals(newer)).toBe(true);
  });

  it("uses a given strong ETag and content type", async () => {
    const got = await get("/files/tagged", { range: "bytes=0-0", "if-range": `"${sha256(content)}"` });
    expect(got.status).toBe(206);
    expect(got.headers.get("etag")).toBe(`"${sha256(content)}"`);
    expect(got.headers.get("content-type")).toBe("application/gzip");
  });

  it("answers HEAD with the headers of the whole file and no body (Range ignored)", async () => {
    const requests: Record<string, string>[] = [{}, { range: "bytes=0-9" }];
    for (const headers of requests) {
      const got = await get("/files/data.bin", headers, "HEAD");
      expect(got.status).toBe(200);
      expect(got.headers.get("content-length")).toBe(String(size));
      expect(got.headers.get("accept-ranges")).toBe("bytes");
      expect(got.headers.get("etag")).toMatch(/^"/);
      expect(got.body).toHaveLength(0);
    }
  });

  it("sends an empty file, and answers any int-range on it with 416", async () => {
    const whole = await get("/files/empty.bin");
    expect(whole.status).toBe(200);
    expect(whole.headers.get("content-length")).toBe("0");
    expect(whole.body).toHaveLength(0);
    const ranged = await get("/files/empty.bin", { range: "bytes=0-" });
    expect(ranged.status).toBe(416);
    expect(ranged.headers.get("content-range")).toBe("bytes */0");
    expect((await get("/files/empty.bin", { range: "bytes=-10" })).status).toBe(200);
  });

  it("names a non-ASCII file with filename*", async () => {
    const got = await get("/files/unicode", {}, "HEAD");
    expect(got.headers.get("content-disposition")).toBe(
      `attachment; filename="prod-_.archive"; filename*=UTF-8''prod-%C3%BC.archive`,
    );
  });

  it("answers 404 for a file that is gone", async () => {
    const got = await get("/files/missing.bin");
    expect(got.status).toBe(404);
    expect(JSON.parse(got.body.toString())).toMatchObject({
      code: "NOT_FOUND",
      error: "missing.bin is no longer on the server",
    });
  });

  it.skipIf(!existsSync("/proc/self/fd"))(
    "streams a large file and closes it when the client goes away mid-download",
    async () => {
      const path = join(dir, "large.bin");
      writeFileSync(path, "");
      truncateSync(path, 256 * 1024 * 1024); // sparse: 256 MiB that take no disk
      const controller = new AbortController();
      const response = await fetch(`${app.url}/files/large.bin`, { signal: controller.signal });
      expect(response.headers.get("content-length")).toBe(String(256 * 1024 * 1024));
      const reader = response.body!.getReader();
      const first = await reader.read();
      expect(first.done).toBe(false);
      const opened = () =>
        readdirSync("/proc/self/fd").filter((fd) => {
          try {
            return readlinkSync(`/proc/self/fd/${fd}`) === path;
          } catch {
            return false;
          }
        }).length;
      expect(opened()).toBe(1); // being streamed, not read whole
      controller.abort();
      await reader.cancel().catch(() => {});
      const deadline = Date.now() + 5000;
      while (opened() > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      expect(opened()).toBe(0);
    },
  );
});

describe("signed download links over HTTP", () => {
  const path = "/api/v1/restores/r1/download";

  it("downloads with a valid link, whole or by range", async () => {
    const link = app.links.sign({ path, expiresAt: new Date(Date.now() + 3600_000) });
    const whole = await get(link);
    expect(whole.status).toBe(200);
    expect(whole.body.equals(content)).toBe(true);
    expect(whole.headers.get("content-disposition")).toBe('attachment; filename="restore-r1.archive"');
    const ranged = await get(link, { range: "bytes=-100" });
    expect(ranged.status).toBe(206);
    expect(ranged.body.equals(content.subarray(size - 100))).toBe(true);
  });

  it("refuses an expired link with 403, saying it expired and how to get a new one", async () => {
    const expiresAt = new Date(Math.floor(Date.now() / 1000) * 1000 - 60_000);
    const got = await get(app.links.sign({ path, expiresAt }));
    expect(got.status).toBe(403);
    const body = JSON.parse(got.body.toString()) as { error: string; code: string; hint: string };
    expect(body.code).toBe("LINK_EXPIRED");
    expect(body.error).toBe(`this download link expired at ${expiresAt.toISOString()}`);
    expect(body.hint).toMatch(/ask the server for a new link/);
  });

  it("refuses a tampered link with 403", async () => {
    const link = app.links.sign({ path, expiresAt: new Date(Date.now() + 3600_000) });
    const signature = new URL(link, app.url).searchParams.get("signature")!;
    const flipped = link.replace(signature, (signature[0] === "A" ? "B" : "A") + signature.slice(1));
    const otherRestore = link.replace("/r1/", "/r2/");
    const longer = link.replace(/expires=\d+/, `expires=${Math.floor(Date.now() / 1000) + 86_400 * 365}`);
    for (const tampered of [flipped, otherRestore, longer]) {
      const got = await get(tampered);
      expect(got.status, tampered).toBe(403);
      expect(JSON.parse(got.body.toString())).toMatchObject({ code: "LINK_INVALID" });
    }
  });

  it("refuses a URL without link parameters with 403", async () => {
    const got = await get(path);
    expect(got.status).toBe(403);
    expect(JSON.parse(got.body.toString())).toMatchObject({ code: "LINK_MISSING" });
  });

  it("keeps links valid across a server restart on the same data directory", async () => {
    const link = app.links.sign({ path, expiresAt: new Date(Date.now() + 3600_000) });
    await app.close();
    app = await startApp(dataDir);
    const got = await get(link, { range: "bytes=0-15" });
    expect(got.status).toBe(206);
    expect(got.body.equals(content.subarray(0, 16))).toBe(true);
    // a server on another data directory (another secret) refuses it
    const other = await startApp(join(dir, "other-data"));
    try {
      expect((await fetch(`${other.url}${link}`)).status).toBe(403);
    } finally {
      await other.close();
    }
  });
});
