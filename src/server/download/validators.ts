/*
 * Validators for resumable downloads: the ETag and Last-Modified a client remembers, and If-Range,
 * which it sends back with a Range so that a resumed download never splices the tail of a new
 * file onto the head of an old one (RFC 9110 §13.1.5): the range is honoured only when the
 * validator still matches, else the whole file is sent.
 */

/** The characters of an opaque-tag between its quotes (RFC 9110 §8.8.3, obs-text aside). */
const OPAQUE_TAG = /^[\x21\x23-\x7e]+$/;

/**
 * A strong ETag from a file's size and modification time in nanoseconds. Strong, because If-Range
 * only ever matches strong validators: this holds for files written once and renamed into place
 * (restore archives), not for files rewritten in place within one timestamp tick; give those a
 * content hash through `strongEtag`.
 */
export function fileEtag(size: bigint | number, mtimeNs: bigint): string {
  return `"${BigInt(size).toString(16)}-${mtimeNs.toString(16)}"`;
}

/** A strong ETag from an opaque value such as a SHA-256 in hex (no quotes; checked). */
export function strongEtag(value: string): string {
  if (!OPAQUE_TAG.test(value)) {
    throw new Error(
      `ETag value '${value}' has characters an entity tag cannot hold (quotes, spaces, controls): ` +
        "pass a hex or base64url digest without quotes",
    );
  }
  return `"${value}"`;
}

/**
 * True when an If-Range value lets the Range apply: an entity tag equal to `etag` by strong
 * comparison (a weak `W/"…"` tag never matches), or an HTTP-date exactly equal to Last-Modified
 * when that date is strong, i.e. at least a second before now (§8.8.2.2): within the same second
 * the file might still change unseen. Anything else (unparseable, another tag) does not match.
 */
export function ifRangeMatches(ifRange: string, etag: string, lastModified: Date, now: Date): boolean {
  const value = ifRange.trim();
  if (value.startsWith('"') || value.startsWith("W/")) return value === etag;
  const date = Date.parse(value);
  if (Number.isNaN(date)) return false;
  const modifiedSecond = Math.floor(lastModified.getTime() / 1000) * 1000;
  return date === modifiedSecond && now.getTime() - lastModified.getTime() >= 1000;
}
