import { OplogStoreError } from "./errors.js";

/**
 * Key rules, the same for every store so a key that works on a file system also works in S3 and
 * back:
 *
 * - parts separated by "/", no leading or trailing "/", no empty part, no "." or ".." part (so a
 *   key can never climb out of the store's directory or alias another key);
 * - each part is made of [A-Za-z0-9._$-] and `%XX` escapes (two UPPERCASE hex digits). These are
 *   valid in file names on Linux, macOS and Windows and are S3's "safe" key characters (plus `$`,
 *   which the SDK URL-encodes). Anything else a MongoDB namespace may contain (spaces, UTF-8,
 *   `*`, `:` ...) goes through `escapeKeyPart`, which percent-encodes its UTF-8 bytes. Requiring
 *   uppercase, canonical escapes gives each namespace exactly one spelling as a key.
 * - a part is at most 200 characters (file names are limited to 255 bytes, and the file system
 *   store appends a temp suffix while writing), a key at most 1024 (S3's limit).
 *
 * Not enforced: on a case-insensitive file system (macOS, Windows) keys that differ only by case
 * collide; production stores on Linux or S3 are case-sensitive.
 */
export const MAX_KEY_LENGTH = 1024;
export const MAX_KEY_PART_LENGTH = 200;

const PART = /^(?:[A-Za-z0-9._$-]|%[0-9A-F]{2})+$/;

/** Why `key` is not a valid key, or undefined if it is. */
export function keyProblem(key: string): string | undefined {
  if (typeof key !== "string" || key.length === 0) return "a key must be a non-empty string";
  if (key.length > MAX_KEY_LENGTH) return `a key must be at most ${MAX_KEY_LENGTH} characters`;
  if (key.startsWith("/")) return "a key must not start with '/'";
  for (const part of key.split("/")) {
    if (part.length === 0) return "a key must not have empty parts ('//' or a trailing '/')";
    if (part === "." || part === "..") return "a key must not have '.' or '..' parts";
    if (part.length > MAX_KEY_PART_LENGTH)
      return `a key part must be at most ${MAX_KEY_PART_LENGTH} characters`;
    if (!PART.test(part)) {
      return "a key part may only hold A-Z a-z 0-9 . _ $ - and %XX escapes (uppercase hex; see escapeKeyPart)";
    }
  }
  return undefined;
}

/**
 * Why `prefix` is not a valid list/delete prefix, or undefined. A prefix is "" (everything) or a
 * valid key optionally followed by "/"; like S3 prefixes it may end in the middle of a part
 * ("dep/oplog/00000001" matches "dep/oplog/0000000123.slice").
 */
export function prefixProblem(prefix: string): string | undefined {
  if (prefix === "") return undefined;
  const body = prefix.endsWith("/") ? prefix.slice(0, -1) : prefix;
  const problem = keyProblem(body);
  return problem?.replace("a key", "a prefix");
}

export function assertValidKey(key: string, location: string): void {
  const problem = keyProblem(key);
  if (problem) throw invalid(location, key, problem);
}

/** `allowEmpty: false` protects deletePrefix from wiping the whole store by accident. */
export function assertValidPrefix(prefix: string, location: string, allowEmpty: boolean): void {
  const problem =
    prefix === "" && !allowEmpty ? "an empty prefix would delete the whole store" : prefixProblem(prefix);
  if (problem) throw invalid(location, prefix, problem);
}

function invalid(location: string, key: string, problem: string): OplogStoreError {
  return new OplogStoreError("INVALID_KEY", {
    location,
    key,
    problem: `invalid key: ${problem}`,
    hint: "build keys from escapeKeyPart() parts joined with '/'",
  });
}

/**
 * Turns arbitrary text (a database or collection name, a namespace) into one valid key part:
 * every UTF-8 byte outside [A-Za-z0-9_$-] becomes `%XX`, and "." is kept except where it would
 * make the part "." or "..". `unescapeKeyPart` reverses it.
 */
export function escapeKeyPart(text: string): string {
  if (text === "." || text === "..") return text.replaceAll(".", "%2E");
  let out = "";
  for (const byte of Buffer.from(text, "utf8")) {
    const ch = String.fromCharCode(byte);
    out += /[A-Za-z0-9._$-]/.test(ch) ? ch : `%${byte.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return out;
}

export function unescapeKeyPart(part: string): string {
  return decodeURIComponent(part);
}
