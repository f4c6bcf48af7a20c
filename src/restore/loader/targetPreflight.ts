/**
 * Before any write: connect to the target (a clear error for an unreachable deployment or refused
 * credentials, with the password never shown), then find which of the namespaces to restore
 * exist. Without `drop` existing ones are refused, naming them; with `drop` they are dropped.
 */
import { MongoClient, MongoServerError, type MongoClientOptions } from "mongodb";
import { TargetConnectionError, TargetNamespacesExistError } from "./errors.js";
import { splitNamespace } from "./namespaceFilter.js";

const URI_CREDENTIALS = /^(mongodb(?:\+srv)?:\/\/)([^@/]*?)(?::([^@/]*))?@/;

/** Query options that carry secrets: key file passwords, AWS session tokens and the like. */
const SECRET_OPTIONS = /([?&](?:[^=&]*(?:password|secret|token)[^=&]*|authMechanismProperties)=)[^&]*/gi;

/** The URI with its password, and the values of options that carry secrets, replaced by `***`. */
export function redactUri(uri: string): string {
  return uri
    .replace(URI_CREDENTIALS, (_, scheme: string, user: string, password?: string) =>
      password === undefined ? `${scheme}${user}@` : `${scheme}${user}:***@`,
    )
    .replace(SECRET_OPTIONS, "$1***");
}

/** Removes the URI's password (as written and decoded) from a message. */
function scrub(message: string, uri: string): string {
  const password = URI_CREDENTIALS.exec(uri)?.[3];
  let text = message.split(uri).join(redactUri(uri));
  if (password) {
    for (const form of new Set([password, safeDecode(password)]))
      if (form) text = text.split(form).join("***");
  }
  return text;
}

function safeDecode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

const AUTH_CODES = new Set([18 /* AuthenticationFailed */, 13 /* Unauthorized */]);

function isAuthFailure(error: unknown): boolean {
  for (let e: unknown = error; e instanceof Error; e = e.cause) {
    if (e instanceof MongoServerError && AUTH_CODES.has(Number(e.code))) return true;
    if (e.name === "MongoServerError" && AUTH_CODES.has(Number((e as { code?: unknown }).code))) return true;
    if (/authentication failed/i.test(e.message)) return true;
  }
  return false;
}

export interface ConnectOptions {
  /** How long to look for a server before giving up. Default 10 s. */
  serverSelectionTimeoutMS?: number;
  clientOptions?: MongoClientOptions;
}

/** A connected client to the target, or a TargetConnectionError that does not show the password. */
export async function connectTarget(uri: string, options: ConnectOptions = {}): Promise<MongoClient> {
  let client: MongoClient;
  try {
    client = new MongoClient(uri, {
      serverSelectionTimeoutMS: options.serverSelectionTimeoutMS ?? 10_000,
      ...options.clientOptions,
    });
  } catch (error) {
    throw new TargetConnectionError(
      `invalid target URI ${redactUri(uri)}: ${scrub((error as Error).message, uri)}`,
      "unreachable",
    );
  }
  try {
    await client.connect();
    // A deployment without authentication accepts connect(); this also checks the
    // credentials do allow commands.
    await client.db("admin").command({ ping: 1 });
    return client;
  } catch (error) {
    await client.close().catch(() => {});
    const message = scrub(error instanceof Error ? error.message : String(error), uri);
    if (isAuthFailure(error)) {
      throw new TargetConnectionError(
        `the target ${redactUri(uri)} refused the credentials (authentication failed): ${message}`,
        "authentication",
      );
    }
    throw new TargetConnectionError(`cannot reach the target ${redactUri(uri)}: ${message}`, "unreachable");
  }
}

/** Which of `namespaces` exist on the target (collections or views), in the order given. */
export async function existingNamespaces(
  client: MongoClient,
  namespaces: readonly string[],
): Promise<string[]> {
  const byDb = new Map<string, Set<string>>();
  for (const namespace of namespaces) {
    const { db } = splitNamespace(namespace);
    if (byDb.has(db)) continue;
    const names = await client.db(db).listCollections({}, { nameOnly: true }).toArray();
    byDb.set(db, new Set(names.map((info) => info.name)));
  }
  return namespaces.filter((namespace) => {
    const { db, collection } = splitNamespace(namespace);
    return byDb.get(db)!.has(collection);
  });
}

export interface PreflightOptions {
  /** Drop namespaces that exist instead of refusing. */
  drop?: boolean;
}

/**
 * Refuses (TargetNamespacesExistError, before anything is written) if any target namespace
 * exists, or with `drop` drops them. Returns the namespaces that existed.
 */
export async function preflightTarget(
  client: MongoClient,
  namespaces: readonly string[],
  options: PreflightOptions = {},
): Promise<string[]> {
  const seen = new Set<string>();
  for (const namespace of namespaces) {
    if (seen.has(namespace)) throw new Error(`two source namespaces would be restored to ${namespace}`);
    seen.add(namespace);
  }
  const existing = await existingNamespaces(client, namespaces);
  if (existing.length === 0) return existing;
  if (!options.drop) throw new TargetNamespacesExistError(existing);
  for (const namespace of existing) {
    const { db, collection } = splitNamespace(namespace);
    try {
      await client.db(db).collection(collection).drop();
    } catch (error) {
      // Already gone (dropped along with something else) is fine.
      if (!(error instanceof MongoServerError && error.code === 26)) throw error;
    }
  }
  return existing;
}
