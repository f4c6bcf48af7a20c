import { OplogStoreError } from "./errors.js";

export interface S3ErrorContext {
  location: string;
  /** The endpoint without credentials, named in UNAVAILABLE errors. */
  endpoint: string;
  bucket: string;
  key?: string;
  /** "store", "read", "list" ... for the message. */
  action: string;
  /** Strings that must never appear in a message (the access key id, the secret, the session token). */
  secrets: readonly string[];
}

/** Errors from the socket layer: the service is not reachable at all. */
const NETWORK_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ECONNABORTED",
  "ENOTFOUND",
  "EAI_AGAIN",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "EPIPE",
  "EPROTO",
]);
const NETWORK_NAMES = new Set([
  "TimeoutError",
  "RequestTimeout",
  "RequestTimeoutException",
  "NetworkingError",
]);
const AUTH_NAMES = new Set([
  "AccessDenied",
  "InvalidAccessKeyId",
  "SignatureDoesNotMatch",
  "ExpiredToken",
  "InvalidToken",
  "TokenRefreshRequired",
  "CredentialsProviderError",
  "AuthorizationHeaderMalformed",
]);
/** The service says the bytes it received do not match the checksum we sent. */
const CHECKSUM_NAMES = new Set(["BadDigest", "XAmzContentChecksumMismatch", "InvalidDigest"]);
/** S3-compatible services that run out of disk (MinIO, Ceph RGW). */
const FULL_NAMES = new Set(["XMinioStorageFull", "StorageFull", "QuotaExceeded", "InsufficientCapacity"]);

interface SdkErrorShape {
  name?: string;
  message?: string;
  code?: string;
  Code?: string;
  $metadata?: { httpStatusCode?: number; attempts?: number; requestId?: string };
}

/**
 * Classifies an error from @aws-sdk/client-s3 (after the SDK's own retries). The SDK's messages
 * never hold the secret key, but they are scrubbed of every credential string anyway before they
 * reach a message, since these messages go to logs and the Backup page.
 *
 * The SDK error itself is not kept as `cause`: its `$response` holds the raw HTTP exchange,
 * including the signed Authorization header with the access key id, and logging the error with
 * its cause would print all of it. `cause` is a small summary instead.
 */
export function s3Error(err: unknown, ctx: S3ErrorContext): OplogStoreError {
  if (err instanceof OplogStoreError) return err;
  const e = (typeof err === "object" && err !== null ? err : {}) as SdkErrorShape;
  const name = e.name ?? "Error";
  const errCode = e.Code ?? e.code ?? name;
  const status = e.$metadata?.httpStatusCode;
  const attempts = e.$metadata?.attempts;
  const detail = scrub(
    `${errCode}${e.message && e.message !== "UnknownError" ? `: ${e.message}` : ""}`,
    ctx.secrets,
  );
  const base = { location: ctx.location, key: ctx.key, cause: summarize(e, errCode, detail) };
  const tried = attempts && attempts > 1 ? ` after ${attempts} attempts` : "";

  if (errCode === "NoSuchKey") {
    return new OplogStoreError("NOT_FOUND", {
      ...base,
      problem: "no such object",
      hint: "it was never stored or has already been deleted",
    });
  }
  if (errCode === "NoSuchBucket") {
    return new OplogStoreError("UNAVAILABLE", {
      ...base,
      problem: `cannot ${ctx.action}: bucket "${ctx.bucket}" does not exist at ${ctx.endpoint}`,
      hint: "create the bucket, or check the bucket name, the endpoint and the region",
    });
  }
  if (AUTH_NAMES.has(errCode) || AUTH_NAMES.has(name) || status === 401 || status === 403) {
    return new OplogStoreError("UNAVAILABLE", {
      ...base,
      problem: `cannot ${ctx.action}: ${ctx.endpoint} refused our credentials (${detail})`,
      hint: "check the endpoint and credentials (options, or AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY)",
    });
  }
  if (NETWORK_CODES.has(errCode) || NETWORK_NAMES.has(name) || /socket hang up/i.test(e.message ?? "")) {
    return new OplogStoreError("UNAVAILABLE", {
      ...base,
      problem: `cannot ${ctx.action}: cannot reach ${ctx.endpoint}${tried} (${detail})`,
      hint: "check the endpoint and credentials, and that the S3 service is running and reachable",
    });
  }
  if (FULL_NAMES.has(errCode)) {
    return new OplogStoreError("NO_SPACE", {
      ...base,
      problem: `cannot ${ctx.action}: the S3 service at ${ctx.endpoint} is out of space (${detail})`,
      hint: "free space on the S3 service or raise its quota",
    });
  }
  if (CHECKSUM_NAMES.has(errCode) || /checksum mismatch/i.test(e.message ?? "")) {
    return new OplogStoreError("IO", {
      ...base,
      problem: `cannot ${ctx.action}: the bytes did not match their SHA-256 checksum in transit (${detail})`,
      hint: "retry; if it persists, check the network path to the endpoint (proxies rewriting bodies)",
    });
  }
  if ((status !== undefined && status >= 500) || errCode === "SlowDown" || errCode === "ServiceUnavailable") {
    return new OplogStoreError("UNAVAILABLE", {
      ...base,
      problem: `cannot ${ctx.action}: ${ctx.endpoint} failed${tried} (${detail})`,
      hint: "the S3 service is overloaded or failing; retry later",
    });
  }
  return new OplogStoreError("IO", {
    ...base,
    problem: `cannot ${ctx.action}: ${detail}${status ? ` (HTTP ${status})` : ""}`,
    hint: `check the endpoint and credentials, and the bucket's configuration at ${ctx.endpoint}`,
  });
}

function scrub(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const secret of secrets) if (secret.length > 0) out = out.split(secret).join("***");
  return out;
}

/** What is worth keeping of an SDK error: its code, HTTP status, request id and attempts. */
function summarize(e: SdkErrorShape, code: string, detail: string): Error {
  const meta = e.$metadata;
  return Object.assign(new Error(detail), {
    name: e.name ?? "Error",
    code,
    httpStatusCode: meta?.httpStatusCode,
    requestId: meta?.requestId,
    attempts: meta?.attempts,
  });
}
