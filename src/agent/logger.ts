/**
 * The agent's log: one line per significant event on stderr,
 * `2024-05-01T12:00:00.000Z INFO  clone: collection done ns=shop.orders documents=1200`.
 * Values that could hold secrets never reach it: connection strings go through `redactUri`.
 */
export type LogLevel = "debug" | "info" | "warn" | "error";

export type LogFields = Record<string, string | number | boolean | undefined | null>;

export interface Logger {
  debug(message: string, fields?: LogFields): void;
  info(message: string, fields?: LogFields): void;
  warn(message: string, fields?: LogFields): void;
  error(message: string, fields?: LogFields): void;
  /** A logger whose lines carry `component` (e.g. "clone", "oplog", "upload"). */
  child(component: string): Logger;
}

/** Where finished lines go; default: stderr. */
export type LogSink = (line: string) => void;

const LEVEL_ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

function formatValue(value: string | number | boolean | null): string {
  const text = String(value);
  return /^[^\s"=]+$/.test(text) ? text : JSON.stringify(text);
}

function formatFields(fields: LogFields | undefined): string {
  if (!fields) return "";
  const parts: string[] = [];
  for (const [key, value] of Object.entries(fields)) {
    if (value === undefined) continue;
    parts.push(`${key}=${formatValue(value)}`);
  }
  return parts.length === 0 ? "" : ` ${parts.join(" ")}`;
}

export function createLogger(options: { sink?: LogSink; level?: LogLevel; component?: string } = {}): Logger {
  const sink: LogSink = options.sink ?? ((line) => process.stderr.write(`${line}\n`));
  const threshold = LEVEL_ORDER[options.level ?? "info"];
  const make = (component: string): Logger => {
    const write = (level: LogLevel, message: string, fields?: LogFields) => {
      if (LEVEL_ORDER[level] < threshold) return;
      const label = level.toUpperCase().padEnd(5);
      sink(`${new Date().toISOString()} ${label} ${component}: ${message}${formatFields(fields)}`);
    };
    return {
      debug: (message, fields) => write("debug", message, fields),
      info: (message, fields) => write("info", message, fields),
      warn: (message, fields) => write("warn", message, fields),
      error: (message, fields) => write("error", message, fields),
      child: (name) => make(name),
    };
  };
  return make(options.component ?? "agent");
}

/** A logger that drops everything (tests). */
export const silentLogger: Logger = createLogger({ sink: () => {} });

const SECRET_PARAMETERS = /([?&](?:password|tlsCertificateKeyFilePassword|authMechanismProperties)=)[^&]*/gi;

/**
 * A MongoDB connection string fit for a log line: the password in the user-info part (and any
 * password-like query parameter) replaced by `****`. Works on `mongodb://` and `mongodb+srv://`
 * strings with several hosts, which `URL` cannot parse.
 */
export function redactUri(uri: string): string {
  return uri
    .replace(/^([a-z+]+:\/\/)([^@/?]*)@/i, (_match, scheme: string, userInfo: string) => {
      const colon = userInfo.indexOf(":");
      return colon < 0 ? `${scheme}${userInfo}@` : `${scheme}${userInfo.slice(0, colon)}:****@`;
    })
    .replace(SECRET_PARAMETERS, "$1****");
}

/** An error's message for a log line, with any connection string in it redacted. */
export function describeError(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return message.replace(/mongodb(?:\+srv)?:\/\/[^\s"']+/gi, (uri) => redactUri(uri));
}
