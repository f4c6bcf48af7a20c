import { createHmac, randomBytes } from "node:crypto";
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { inspect } from "node:util";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { HttpError } from "../../src/server/errors.js";
import { DownloadLinks } from "../../src/server/download/links.js";
import {
  LINK_SECRET_FILE,
  LinkSecretError,
  loadOrCreateLinkSecret,
} from "../../src/server/download/linkSecret.js";
import { downloadLinkError, requireDownloadLink } from "../../src/server/download/requireLink.js";

const PATH = "/api/v1/restores/r-123/download";
const T = Date.UTC(2030, 0, 1, 12, 0, 0);

function linksAt(secret: Buffer, nowMs: number): DownloadLinks {
  return new DownloadLinks(secret, { now: () => nowMs });
}

function withParam(url: string, name: string, value: string | undefined): string {
  const [path, query] = url.split("?");
  const params = new URLSearchParams(query);
  if (value === undefined) params.delete(name);
  else params.set(name, value);
  const rest = params.toString();
  return rest ? `${path}?${rest}` : path;
}

describe("DownloadLinks", () => {
  const secret = randomBytes(32);

  it("signs path + expiry as HMAC-SHA256 in base64url", () => {
    const url = linksAt(secret, T).sign({ path: PATH, expiresAt: new Date(T + 3600_000 + 999) });
    const expires = String(T / 1000 + 3600);
    const signature = createHmac("sha256", secret).update(`${PATH}\n${expires}`).digest("base64url");
    expect(url).toBe(`${PATH}?expires=${expires}&signature=${signature}`);
    expect(signature).toMatch(/^[A-Za-z0-9_-]{43}$/);
  });

  it("accepts its own link until the expiry second, then says expired", () => {
    const expiresAt = new Date(T + 60_000);
    const url = linksAt(secret, T).sign({ path: PATH, expiresAt });
    expect(linksAt(secret, T).checkUrl(url)).toEqual({ ok: true, path: PATH, expiresAt });
    expect(linksAt(secret, T + 59_999).checkUrl(url).ok).toBe(true);
    expect(linksAt(secret, T + 60_000).checkUrl(url)).toEqual({
      ok: false,
      reason: "expired",
      path: PATH,
      expiresAt,
    });
  });

  it("checks a path with a parsed query object or URLSearchParams", () => {
    const links = linksAt(secret, T);
    const url = links.sign({ path: PATH, expiresAt: new Date(T + 60_000) });
    const params = new URLSearchParams(url.split("?")[1]);
    expect(links.check(PATH, params).ok).toBe(true);
    expect(links.check(PATH, Object.fromEntries(params)).ok).toBe(true);
    expect(links.check(PATH, { ...Object.fromEntries(params), signature: ["a", "b"] })).toMatchObject({
      reason: "bad signature",
    });
    expect(links.check(PATH, {})).toMatchObject({ ok: false, reason: "missing" });
  });

  it("says 'bad signature' for any change, before looking at the expiry", () => {
    const links = linksAt(secret, T);
    const url = links.sign({ path: PATH, expiresAt: new Date(T - 60_000) }); // already expired
    expect(links.checkUrl(url)).toMatchObject({ reason: "expired" });
    const signature = new URLSearchParams(url.split("?")[1]).get("signature")!;
    const flipped = (signature[0] === "A" ? "B" : "A") + signature.slice(1);
    const tampered = [
      withParam(url, "signature", flipped),
      withParam(url, "signature", signature.slice(0, 42)),
      withParam(url, "signature", `${signature}A`),
      withParam(url, "signature", signature.replace(/.$/, "=")),
      withParam(url, "expires", String(T / 1000 + 3600)), // a longer life
      withParam(url, "expires", "soon"),
      withParam(url, "expires", "1e12"),
      url.replace("r-123", "r-124"), // another restore
      url.replace("/download", "/download/"),
      `${url}&signature=${signature}`, // repeated
    ];
    for (const candidate of tampered) {
      expect(links.checkUrl(candidate), candidate).toMatchObject({ ok: false, reason: "bad signature" });
    }
    expect(linksAt(randomBytes(32), T).checkUrl(url)).toMatchObject({ reason: "bad signature" });
  });

  it("says 'missing' when the link parameters are absent or empty", () => {
    const links = linksAt(secret, T);
    const url = links.sign({ path: PATH, expiresAt: new Date(T + 60_000) });
    for (const candidate of [
      PATH,
      `${PATH}?`,
      `${PATH}?other=1`,
      withParam(url, "signature", undefined),
      withParam(url, "expires", undefined),
      withParam(url, "signature", ""),
    ]) {
      expect(links.checkUrl(candidate), candidate).toEqual({ ok: false, reason: "missing", path: PATH });
    }
  });

  it("ignores other query parameters (they are not signed)", () => {
    const links = linksAt(secret, T);
    const url = links.sign({ path: PATH, expiresAt: new Date(T + 60_000) });
    expect(links.checkUrl(`${url}&download=1`).ok).toBe(true);
  });

  it("refuses to sign a path with a query, a relative path or an invalid date", () => {
    const links = linksAt(secret, T);
    const expiresAt = new Date(T);
    expect(() => links.sign({ path: `${PATH}?x=1`, expiresAt })).toThrow(/without a query/);
    expect(() => links.sign({ path: "api/v1/x", expiresAt })).toThrow(/starting with '\/'/);
    expect(() => links.sign({ path: "/a b", expiresAt })).toThrow(/whitespace/);
    expect(() => links.sign({ path: PATH, expiresAt: new Date(Number.NaN) })).toThrow(/not a valid date/);
  });

  it("refuses a short secret and never shows its secret", () => {
    expect(() => new DownloadLinks(randomBytes(16))).toThrow(
      /16 bytes, fewer than 32.*loadOrCreateLinkSecret/,
    );
    const links = new DownloadLinks(secret);
    const hex = secret.toString("hex");
    const b64 = secret.toString("base64");
    for (const shown of [
      inspect(links, { showHidden: true, depth: 5 }),
      JSON.stringify(links),
      String(links),
    ]) {
      expect(shown).not.toContain(hex);
      expect(shown).not.toContain(b64);
    }
  });

  it("does not change when the caller's secret buffer is later overwritten", () => {
    const mine = randomBytes(32);
    const links = linksAt(mine, T);
    const url = links.sign({ path: PATH, expiresAt: new Date(T + 60_000) });
    mine.fill(0);
    expect(links.checkUrl(url).ok).toBe(true);
  });
});

describe("requireDownloadLink / downloadLinkError", () => {
  const links = linksAt(randomBytes(32), T);

  it("returns the verified path and expiry", () => {
    const expiresAt = new Date(T + 60_000);
    const url = links.sign({ path: PATH, expiresAt });
    expect(requireDownloadLink(links, { url })).toEqual({ path: PATH, expiresAt });
  });

  it("throws a 403 per reason, saying what happened and what to do", () => {
    const expired = links.sign({ path: PATH, expiresAt: new Date(T - 1000) });
    const caught = (url: string, hint?: string): HttpError => {
      try {
        requireDownloadLink(links, { url }, hint);
      } catch (error) {
        return error as HttpError;
      }
      throw new Error("expected a refusal");
    };
    const e1 = caught(expired);
    expect(e1).toBeInstanceOf(HttpError);
    expect(e1.status).toBe(403);
    expect(e1.toBody()).toMatchObject({
      code: "LINK_EXPIRED",
      error: `this download link expired at ${new Date(T - 1000).toISOString()}`,
    });
    expect(e1.hint).toMatch(/new link/);
    expect(caught(expired, "run `tidemark restores link r-123`").hint).toBe(
      "run `tidemark restores link r-123`",
    );
    const e2 = caught(withParam(expired, "expires", String(T / 1000 + 60)));
    expect(e2.toBody()).toMatchObject({ code: "LINK_INVALID" });
    expect(e2.message).toMatch(/signature does not match/);
    const e3 = caught(PATH);
    expect(e3.toBody()).toMatchObject({ code: "LINK_MISSING" });
    expect(e3.hint).toMatch(/whole link/);
    expect(downloadLinkError({ ok: false, reason: "expired", path: PATH }).status).toBe(403);
  });
});

describe("loadOrCreateLinkSecret", () => {
  let dataDir: string;
  beforeEach(() => {
    dataDir = mkdtempSync(join(tmpdir(), "tidemark-download-secret-"));
  });
  afterEach(() => rmSync(dataDir, { recursive: true, force: true }));

  it("creates a 32-byte file readable by its owner only, and reads the same secret back", () => {
    const first = loadOrCreateLinkSecret(dataDir);
    expect(first.created).toBe(true);
    expect(first.file).toBe(join(dataDir, LINK_SECRET_FILE));
    expect(first.secret).toHaveLength(32);
    const stat = statSync(first.file);
    expect(stat.size).toBe(32);
    if (process.platform !== "win32") expect(stat.mode & 0o777).toBe(0o600);
    expect(readdirSync(dataDir)).toEqual([LINK_SECRET_FILE]); // no temporary file left
    const second = loadOrCreateLinkSecret(dataDir);
    expect(second.created).toBe(false);
    expect(second.secret.equals(first.secret)).toBe(true);
  });

  it("keeps links valid across a reload (a server restart)", () => {
    const before = linksAt(loadOrCreateLinkSecret(dataDir).secret, T);
    const url = before.sign({ path: PATH, expiresAt: new Date(T + 60_000) });
    const after = linksAt(loadOrCreateLinkSecret(dataDir).secret, T);
    expect(after.checkUrl(url).ok).toBe(true);
  });

  it("creates a missing data directory", () => {
    const nested = join(dataDir, "a", "b");
    expect(loadOrCreateLinkSecret(nested).created).toBe(true);
  });

  it("refuses a short, long, empty or all-zero file, naming it and the fix", () => {
    const file = join(dataDir, LINK_SECRET_FILE);
    for (const content of [randomBytes(16), randomBytes(33), Buffer.alloc(0), Buffer.alloc(32)]) {
      writeFileSync(file, content, { mode: 0o600 });
      let error: unknown;
      try {
        loadOrCreateLinkSecret(dataDir);
      } catch (caught) {
        error = caught;
      }
      expect(error).toBeInstanceOf(LinkSecretError);
      const message = (error as LinkSecretError).message;
      expect(message).toContain(file);
      expect(message).toMatch(
        content.length === 32 ? /only zero bytes/ : new RegExp(`is ${content.length} bytes, not 32`),
      );
      expect(message).toMatch(/delete .* and start the server again/);
      expect((error as LinkSecretError).file).toBe(file);
      // never replaced silently: that would void every link handed out
      expect(statSync(file).size).toBe(content.length);
    }
  });

  it("refuses a directory in the secret's place", () => {
    mkdirSync(join(dataDir, LINK_SECRET_FILE));
    expect(() => loadOrCreateLinkSecret(dataDir)).toThrow(/download-secret is not a regular file/);
  });

  it.skipIf(process.platform === "win32")("warns when group or others can read the file", () => {
    const { file } = loadOrCreateLinkSecret(dataDir);
    chmodSync(file, 0o644);
    const warnings: string[] = [];
    loadOrCreateLinkSecret(dataDir, { onWarning: (line) => warnings.push(line) });
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain("mode 0644");
    expect(warnings[0]).toContain(`chmod 600 ${file}`);
  });

  it.skipIf(process.platform === "win32" || process.getuid?.() === 0)(
    "says so when the data directory cannot be written",
    () => {
      chmodSync(dataDir, 0o500);
      try {
        expect(() => loadOrCreateLinkSecret(dataDir)).toThrow(/cannot be created \(EACCES\).*can write to/);
      } finally {
        chmodSync(dataDir, 0o700);
      }
    },
  );
});
