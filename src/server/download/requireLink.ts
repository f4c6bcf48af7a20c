import { HttpError } from "../errors.js";
import type { DownloadLinks, LinkFailure } from "./links.js";

/*
 * How a refused download link is answered. Every refusal is 403 (the request names a resource
 * it may not have through this URL) with a code per reason, so a client can tell an expired
 * link, which only needs a new one, from an altered or cut-short URL:
 *
 * - LINK_MISSING: no `expires` / `signature` parameters (or an empty one).
 * - LINK_EXPIRED: a genuine link past its time; the message says when it expired.
 * - LINK_INVALID: the signature does not match: the URL was changed, cut short, or signed with
 *   another secret (the server's download secret was replaced since).
 */

/** What to do for a new link; routes that know their own way (a CLI command, a page) pass theirs. */
export const DEFAULT_RENEW_HINT =
  "download links are valid for a limited time: ask the server for a new link for this restore " +
  "and use it before it expires";

/** The 403 HttpError answering a refused link, with a message and a hint for the reason. */
export function downloadLinkError(failure: LinkFailure, renewHint = DEFAULT_RENEW_HINT): HttpError {
  switch (failure.reason) {
    case "expired": {
      const at = failure.expiresAt?.toISOString() ?? "an earlier time";
      return new HttpError(403, "LINK_EXPIRED", `this download link expired at ${at}`, renewHint);
    }
    case "missing":
      return new HttpError(
        403,
        "LINK_MISSING",
        "this download URL is missing its 'expires' or 'signature' parameter: it is not a whole download link",
        `use the whole link the server gave, query included; ${renewHint}`,
      );
    case "bad signature":
      return new HttpError(
        403,
        "LINK_INVALID",
        "this download link's signature does not match: the URL was changed or cut short, " +
          "or the link was made with a download secret the server no longer has",
        `copy the whole link again, or ${renewHint}`,
      );
  }
}

/**
 * Checks the link of a request (its raw `url`, path and query) and returns the verified path and
 * expiry, or throws the 403 HttpError of `downloadLinkError` (the server's error handler answers
 * it as `{error, code, hint}`).
 */
export function requireDownloadLink(
  links: DownloadLinks,
  request: { url: string },
  renewHint?: string,
): { path: string; expiresAt: Date } {
  const check = links.checkUrl(request.url);
  if (!check.ok) throw downloadLinkError(check, renewHint);
  return { path: check.path, expiresAt: check.expiresAt };
}
