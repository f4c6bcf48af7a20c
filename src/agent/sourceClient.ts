import {
  MongoClient,
  MongoNetworkError,
  MongoServerError,
  MongoServerSelectionError,
  MongoTopologyClosedError,
  type MongoClientOptions,
} from "mongodb";

/** The driver's TLS options, as the CLI passes them (`--tls`, `--tls-ca-file`...). */
export interface SourceTlsOptions {
  tls?: boolean;
  tlsCAFile?: string;
  tlsCertificateKeyFile?: string;
  tlsAllowInvalidCertificates?: boolean;
}

export interface SourceOptions {
  /** Any connection string the driver accepts (mongodb:// or mongodb+srv://, with credentials). */
  uri: string;
  tls?: SourceTlsOptions;
  /** How long to look for a usable member before giving up. Default 10 s. */
  serverSelectionTimeoutMs?: number;
  /** Extra driver options (tests). */
  driverOptions?: MongoClientOptions;
}

/** A driver client for the deployment to back up. Not connected yet: preflight connects it. */
export function createSourceClient(options: SourceOptions): MongoClient {
  const tls: MongoClientOptions = {};
  if (options.tls?.tls !== undefined) tls.tls = options.tls.tls;
  // A CA or client certificate only makes sense over TLS: turn it on unless said otherwise.
  else if (options.tls?.tlsCAFile || options.tls?.tlsCertificateKeyFile) tls.tls = true;
  if (options.tls?.tlsCAFile) tls.tlsCAFile = options.tls.tlsCAFile;
  if (options.tls?.tlsCertificateKeyFile) tls.tlsCertificateKeyFile = options.tls.tlsCertificateKeyFile;
  if (options.tls?.tlsAllowInvalidCertificates !== undefined) {
    tls.tlsAllowInvalidCertificates = options.tls.tlsAllowInvalidCertificates;
  }
  // Options given here override the connection string's: only set what it does not say.
  const inUri = (name: string) => new RegExp(`[?&]${name}=`, "i").test(options.uri);
  const defaults: MongoClientOptions = {};
  if (!inUri("appName")) defaults.appName = "tidemark-agent";
  if (options.serverSelectionTimeoutMs !== undefined || !inUri("serverSelectionTimeoutMS")) {
    defaults.serverSelectionTimeoutMS = options.serverSelectionTimeoutMs ?? 10_000;
  }
  return new MongoClient(options.uri, { ...defaults, ...tls, ...options.driverOptions });
}

/**
 * Server error codes that say "this operation was interrupted, try it again": a cursor killed or
 * timed out, a step-down, a shutdown, a network problem seen by the server.
 */
const TRANSIENT_CODES = new Set([
  6, // HostUnreachable
  7, // HostNotFound
  43, // CursorNotFound
  50, // MaxTimeMSExpired
  89, // NetworkTimeout
  91, // ShutdownInProgress
  175, // QueryPlanKilled
  189, // PrimarySteppedDown
  237, // CursorKilled
  262, // ExceededTimeLimit
  9001, // SocketException
  10107, // NotWritablePrimary
  11600, // InterruptedAtShutdown
  11601, // Interrupted
  11602, // InterruptedDueToReplStateChange
  13435, // NotPrimaryNoSecondaryOk
  13436, // NotPrimaryOrSecondary
]);

/**
 * Whether a driver error on a cursor or command is worth retrying after a pause: the network was
 * cut, no member could be selected for a while, or the server interrupted the operation. The
 * driver reconnects by itself; the caller re-opens its cursor.
 */
export function isTransientSourceError(error: unknown): boolean {
  if (error instanceof MongoNetworkError) return true;
  if (error instanceof MongoServerSelectionError) return true;
  if (error instanceof MongoTopologyClosedError) return false;
  if (error instanceof MongoServerError) {
    if (typeof error.code === "number" && TRANSIENT_CODES.has(error.code)) return true;
    return error.hasErrorLabel("RetryableError") || error.hasErrorLabel("ResumableChangeStreamError");
  }
  return false;
}

/** The error code of a server error, if it is one. */
export function serverErrorCode(error: unknown): number | undefined {
  return error instanceof MongoServerError && typeof error.code === "number" ? error.code : undefined;
}

/** `host:port,...` of a connection string, for messages (never the credentials). */
export function hostsOf(uri: string): string {
  const match = /^[a-z+]+:\/\/(?:[^@/?]*@)?([^/?]*)/i.exec(uri);
  return match?.[1] || uri;
}
