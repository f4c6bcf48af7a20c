import { createHmac, createSecretKey, timingSafeEqual, type KeyObject } from "node:crypto";

/*
 * Expiring signed download links. A restore archive is fetched by a browser or `curl`, which
 * cannot send the admin key as a header, so the server hands out a URL that carries its own
 * proof: `<path>?expires=<unix seconds>&signature=<base64url HMAC-SHA256(secret, path + "\n" +
 * expires)>`. Anyone holding the URL can download until it expires, and changing any part of it
 * (the path, so another restore; the expiry, so a longer life) breaks the signature.
 *
 * What is signed is the path exactly as it appears in the URL (percent-encoding included) and the
 * expiry; other query parameters are not covered, so a handler must not act on them.
 */

/** Bytes of an HMAC-SHA256, and of the secrets `loadOrCreateLinkSecret` makes. */
export const LINK_SECRET_MIN_BYTES = 32;
const SIGNATURE_PATTERN = /^[A-Za-z0-9_-]{43}$/;
/** Up to 12 digits: far beyond any real expiry (year 33658), and exact as a JavaScript number. */
const EXPIRES_PATTERN = /^[0-9]{1,12}$/;

/** Why a link was refused: no link parameters at all, a link past its time, or an altered one. */
export type LinkFailureReason = "missing" | "expired" | "bad signature";

export type LinkCheck =
  | { ok: true; path: string; expiresAt: Date }
  /** `expiresAt` is set for "expired" (the signature was good, so the date is trustworthy). */
  | { ok: false; reason: LinkFailureReason; path: string; expiresAt?: Date };

export type LinkFailure = Extract<LinkCheck, { ok: false }>;

export interface DownloadLinkOptions {
  /** The clock, in milliseconds since the epoch (tests move it). Default `Date.now`. */
  now?: () => number;
}

/** Makes and checks expiring signed download links with one server secret. */
export class DownloadLinks {
  /** A KeyObject rather than a Buffer field, so inspecting or logging the object shows no secret. */
  readonly #key: KeyObject;
  readonly #now: () => number;

  constructor(secret: Buffer, options: DownloadLinkOptions = {}) {
    if (secret.length < LINK_SECRET_MIN_BYTES) {
      throw new Error(
        `download link secret is ${secret.length} bytes, fewer than ${LINK_SECRET_MIN_BYTES}: ` +
          "use loadOrCreateLinkSecret(dataDir) for the server's secret, or randomBytes(32) in a test",
      );
    }
    this.#key = createSecretKey(Buffer.from(secret));
    this.#now = options.now ?? Date.now;
  }

  /**
   * The URL path and query of a link to `path` valid until `expiresAt` (rounded down to the
   * second; the link is refused from that second on). `path` is the URL path as it will be sent,
   * starting with "/", without a query or fragment.
   */
  sign(link: { path: string; expiresAt: Date }): string {
    const { path, expiresAt } = link;
    if (!path.startsWith("/") || /[?#\s]/.test(path)) {
      throw new Error(
        `cannot sign download link path '${path}': give the URL path only, starting with '/', ` +
          "without a query, fragment or whitespace (percent-encode it first)",
      );
    }
    const millis = expiresAt.getTime();
    if (!Number.isFinite(millis) || millis < 0) {
      throw new Error(`cannot sign a download link for '${path}': expiresAt is not a valid date`);
    }
    const expires = String(Math.floor(millis / 1000));
    const query = new URLSearchParams({ expires, signature: this.#signature(path, expires) });
    return `${path}?${query.toString()}`;
  }

  /**
   * Checks a request's raw URL (path and query, as in fastify's `request.url`). A route that also
   * accepts the admin key can fall back to it when the reason is "missing".
   */
  checkUrl(url: string): LinkCheck {
    const mark = url.indexOf("?");
    if (mark < 0) return this.check(url, new URLSearchParams());
    return this.check(url.slice(0, mark), new URLSearchParams(url.slice(mark + 1)));
  }

  /**
   * Checks a request's path and its query (URLSearchParams, or a parsed query object such as
   * fastify's `request.query`). The signature is checked before the expiry, so an altered expiry
   * reads as "bad signature", never as a valid or merely expired link.
   */
  check(path: string, query: URLSearchParams | Readonly<Record<string, unknown>>): LinkCheck {
    const expires = queryValue(query, "expires");
    const signature = queryValue(query, "signature");
    if (expires === "" || signature === "") return { ok: false, reason: "missing", path };
    if (
      expires === undefined ||
      signature === undefined ||
      !EXPIRES_PATTERN.test(expires) ||
      !SIGNATURE_PATTERN.test(signature) ||
      !equalInConstantTime(signature, this.#signature(path, expires))
    ) {
      return { ok: false, reason: "bad signature", path };
    }
    const expiresAt = new Date(Number(expires) * 1000);
    if (this.#now() >= expiresAt.getTime()) return { ok: false, reason: "expired", path, expiresAt };
    return { ok: true, path, expiresAt };
  }

  #signature(path: string, expires: string): string {
    return createHmac("sha256", this.#key).update(`${path}\n${expires}`, "utf8").digest("base64url");
  }
}

/**
 * One query parameter: "" when absent or empty (missing), undefined when it is not a single
 * string (repeated, or an object from a nested-query parser): a link never has that shape.
 */
function queryValue(
  query: URLSearchParams | Readonly<Record<string, unknown>>,
  name: string,
): string | undefined {
  if (query instanceof URLSearchParams) {
    const values = query.getAll(name);
    if (values.length > 1) return undefined;
    return values[0] ?? "";
  }
  const value = query[name];
  if (value === undefined || value === null) return "";
  return typeof value === "string" ? value : undefined;
}

/** Both are 43-character base64url strings here; the length check only guards timingSafeEqual. */
function equalInConstantTime(given: string, expected: string): boolean {
  const a = Buffer.from(given, "utf8");
  const b = Buffer.from(expected, "utf8");
  return a.length === b.length && timingSafeEqual(a, b);
}
