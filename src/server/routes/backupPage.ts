import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { FastifyInstance, FastifyReply } from "fastify";

/**
 * The page's files are not compiled, so they are not beside this module: they sit in web/backup/
 * of the package. Walking up to package.json finds it from src/ (tests) as from dist/src/ (built
 * or installed).
 */
export function backupPageDir(from: string = import.meta.url): string {
  let dir = dirname(fileURLToPath(from));
  while (!existsSync(join(dir, "package.json"))) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`no package.json above ${fileURLToPath(from)}`);
    dir = parent;
  }
  return join(dir, "web", "backup");
}

/*
 * The page only loads its own script and style and calls the API on the same origin. Inline
 * script is refused, so an injected string (a deployment name, an error) can never run; form
 * submission is refused, so a key typed with JavaScript off never leaves the browser.
 */
const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "connect-src 'self'",
  "img-src 'self' data:",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join("; ");

const FILES = [
  { url: "/", file: "index.html", type: "text/html; charset=utf-8" },
  { url: "/assets/app.js", file: "app.js", type: "text/javascript; charset=utf-8" },
  { url: "/assets/app.css", file: "app.css", type: "text/css; charset=utf-8" },
] as const;

/** The Backup page at `/`: static files, no secrets; it reads the API with the key the user types. */
export function registerBackupPageRoutes(app: FastifyInstance, dir: string = backupPageDir()): void {
  for (const { url, file, type } of FILES) {
    app.get(url, async (_request, reply: FastifyReply) => {
      // Read on each request: it is small, and a stale page after an upgrade would be worse.
      const body = await readFile(join(dir, file));
      return reply
        .type(type)
        .header("cache-control", "no-cache")
        .header("content-security-policy", CONTENT_SECURITY_POLICY)
        .header("x-content-type-options", "nosniff")
        .header("referrer-policy", "no-referrer")
        .send(body);
    });
  }
}
