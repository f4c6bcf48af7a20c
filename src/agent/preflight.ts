import {
  MongoAPIError,
  MongoParseError,
  MongoServerError,
  MongoServerSelectionError,
  type Document,
  type MongoClient,
} from "mongodb";
import type { OpTimeJson } from "../protocol/agentProtocol.js";
import { ConfigurationError } from "./errors.js";
import { describeError } from "./logger.js";
import { newestOplogOpTime, oldestOplogOpTime } from "./oplogQueries.js";
import { createSourceClient, hostsOf, type SourceOptions } from "./sourceClient.js";

/** What the preflight learned about the deployment. */
export interface SourceInfo {
  setName: string;
  hosts: string[];
  version: string;
  /** `user@db` of the authenticated user, if any. */
  user?: string;
  /** The oplog's first and last entries (absent while it is still empty). */
  oldestOplog?: OpTimeJson;
  newestOplog?: OpTimeJson;
}

const UNAUTHORIZED = 13;
const AUTHENTICATION_FAILED = 18;

const BACKUP_ROLE_HINT =
  "grant the user MongoDB's built-in 'backup' role: " +
  "db.getSiblingDB('admin').grantRolesToUser('<user>', [{ role: 'backup', db: 'admin' }])";

function isUnauthorized(error: unknown): boolean {
  return (
    error instanceof MongoServerError && (error.code === UNAUTHORIZED || error.codeName === "Unauthorized")
  );
}

function missingPrivilege(what: string, user: string | undefined, error: unknown): ConfigurationError {
  return new ConfigurationError(
    "missing_privilege",
    `the user ${user ?? "(not authenticated)"} may not ${what}: ${describeError(error)}`,
    BACKUP_ROLE_HINT.replace("<user>", user?.split("@")[0] ?? "<user>"),
  );
}

function invalidUri(error: unknown): ConfigurationError {
  return new ConfigurationError(
    "invalid_option",
    `the --source connection string or its options are not valid: ${describeError(error)}`,
    "use a MongoDB connection string such as mongodb://user:password@host1:27017,host2:27017/?replicaSet=rs0",
  );
}

/**
 * Creates the driver client for the source and runs the preflight; on failure the client is
 * closed and the error is a ConfigurationError (exit code 2) where the configuration is at fault.
 */
export async function connectSource(
  options: SourceOptions,
): Promise<{ client: MongoClient; info: SourceInfo }> {
  let client: MongoClient;
  try {
    client = createSourceClient(options);
  } catch (error) {
    if (error instanceof MongoParseError || error instanceof MongoAPIError) throw invalidUri(error);
    throw error;
  }
  try {
    return { client, info: await preflight(client, options.uri) };
  } catch (error) {
    await client.close().catch(() => {});
    throw error;
  }
}

/** Connects the client and turns the driver's connection errors into configuration errors. */
async function connect(client: MongoClient, uri: string): Promise<void> {
  try {
    await client.connect();
  } catch (error) {
    const hosts = hostsOf(uri);
    if (
      error instanceof MongoServerError &&
      (error.code === AUTHENTICATION_FAILED || error.codeName === "AuthenticationFailed")
    ) {
      throw new ConfigurationError(
        "authentication",
        `authentication to ${hosts} failed: ${describeError(error)}`,
        "check the user name and password in --source (and authSource, default 'admin')",
      );
    }
    if (error instanceof MongoServerSelectionError) {
      const reason = describeError(error);
      const tls = /ssl|tls|certificate|self.signed|handshake/i.test(reason);
      throw new ConfigurationError(
        "unreachable",
        `cannot reach the deployment at ${hosts}: ${reason}`,
        tls
          ? "the TLS handshake failed: check --tls, --tls-ca-file and --tls-certificate-key-file"
          : "check the hosts and ports in --source, that mongod is running, and that the network allows the connection",
      );
    }
    if (error instanceof MongoParseError || error instanceof MongoAPIError) throw invalidUri(error);
    throw error;
  }
}

/**
 * Checks that the agent can back up the source before it starts: it is reachable, the
 * credentials work, it is a replica set with an oplog, and the user can read the oplog, list the
 * databases and read the users and roles. Each failure is a ConfigurationError with its own
 * message and hint (exit code 2).
 */
export async function preflight(client: MongoClient, uri: string): Promise<SourceInfo> {
  await connect(client, uri);
  const admin = client.db("admin");

  const hello = await admin.command({ hello: 1 });
  if (hello.msg === "isdbgrid") {
    throw new ConfigurationError(
      "not_replica_set",
      `${hostsOf(uri)} is a mongos: sharded clusters are not supported`,
      "point --source at the members of one replica set (one agent per shard)",
    );
  }
  if (typeof hello.setName !== "string") {
    throw new ConfigurationError(
      "not_replica_set",
      `${hostsOf(uri)} is a standalone mongod, not a replica set: it has no oplog to back up continuously`,
      "convert it to a one-member replica set (start mongod with --replSet and run rs.initiate())",
    );
  }

  let user: string | undefined;
  try {
    const status = await admin.command({ connectionStatus: 1 });
    const first = (status.authInfo?.authenticatedUsers as Document[] | undefined)?.[0];
    if (first) user = `${String(first.user)}@${String(first.db)}`;
  } catch {
    // connectionStatus is only for the messages below.
  }

  let newest: OpTimeJson | undefined;
  let oldest: OpTimeJson | undefined;
  try {
    const oplogs = await client
      .db("local")
      .listCollections({ name: "oplog.rs" }, { nameOnly: true })
      .toArray();
    if (oplogs.length === 0) {
      throw new ConfigurationError(
        "no_oplog",
        `replica set ${hello.setName} has no oplog (local.oplog.rs is missing)`,
        "the agent needs the oplog: point --source at data-bearing members of the replica set, not an arbiter",
      );
    }
    newest = await newestOplogOpTime(client);
    oldest = await oldestOplogOpTime(client);
  } catch (error) {
    if (isUnauthorized(error)) throw missingPrivilege("read the oplog (local.oplog.rs)", user, error);
    throw error;
  }

  try {
    await admin.command({ listDatabases: 1, nameOnly: true });
  } catch (error) {
    if (isUnauthorized(error)) throw missingPrivilege("list the databases", user, error);
    throw error;
  }
  try {
    await admin
      .collection("system.users")
      .find({}, { limit: 1, projection: { _id: 1 } })
      .toArray();
    await admin
      .collection("system.roles")
      .find({}, { limit: 1, projection: { _id: 1 } })
      .toArray();
  } catch (error) {
    if (isUnauthorized(error))
      throw missingPrivilege("read the users and roles (admin.system.users)", user, error);
    throw error;
  }

  let version = "unknown";
  try {
    version = String((await admin.command({ buildInfo: 1 })).version);
  } catch {
    // Only for the log line.
  }
  return {
    setName: hello.setName,
    hosts: (hello.hosts as string[] | undefined) ?? [],
    version,
    user,
    oldestOplog: oldest,
    newestOplog: newest,
  };
}
