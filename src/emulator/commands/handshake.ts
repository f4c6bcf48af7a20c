import os from "node:os";
import { Long, type Document } from "bson";
import { SUPPORTED_COMPRESSORS, type CompressorName } from "../../wire/compression.js";
import { MAX_MESSAGE_SIZE } from "../../wire/opcodes.js";
import { TERM } from "../oplog/oplog.js";
import type { CommandContext, CommandDefinition } from "./context.js";
import { saslStart } from "./auth.js";
import { sessionKeyOf } from "./sessionInfo.js";

export const SERVER_VERSION = "7.0.14";
export const MAX_WIRE_VERSION = 21;
const MAX_BSON_OBJECT_SIZE = 16 * 1024 * 1024;
/** Upper bound on how long an awaitable hello is held, whatever the client asks. */
const MAX_HELLO_WAIT_MS = 10_000;

async function hello(ctx: CommandContext): Promise<Document> {
  const { deployment, command, connection } = ctx;
  // Streaming monitors send topologyVersion + maxAwaitTimeMS and expect the server to hold the
  // reply until the topology changes; it never changes here, so hold it for the full wait.
  if (command.topologyVersion && command.maxAwaitTimeMS !== undefined) {
    await deployment.sleep(Math.min(Number(command.maxAwaitTimeMS), MAX_HELLO_WAIT_MS));
  }
  if (command.client && typeof command.client === "object")
    Object.assign(connection.clientMetadata, command.client);
  if (Array.isArray(command.compression)) {
    const agreed = (command.compression as string[]).filter((c): c is CompressorName =>
      SUPPORTED_COMPRESSORS.includes(c as CompressorName),
    );
    connection.compressor = agreed[0];
  }
  const me = deployment.hostAndPort;
  const lastWrite = deployment.oplog.latest();
  const lastWriteDate = new Date(lastWrite.ts.high * 1000);
  const legacy = ctx.name !== "hello";
  const reply: Document = {
    topologyVersion: deployment.topologyVersion,
    hosts: [me],
    setName: deployment.options.replSet,
    setVersion: 1,
    ...(legacy ? { ismaster: true } : { isWritablePrimary: true }),
    secondary: false,
    primary: me,
    me,
    electionId: deployment.electionId,
    lastWrite: {
      opTime: lastWrite,
      lastWriteDate,
      majorityOpTime: lastWrite,
      majorityWriteDate: lastWriteDate,
    },
    maxBsonObjectSize: MAX_BSON_OBJECT_SIZE,
    maxMessageSizeBytes: MAX_MESSAGE_SIZE,
    maxWriteBatchSize: 100_000,
    localTime: new Date(),
    logicalSessionTimeoutMinutes: 30,
    connectionId: connection.id,
    minWireVersion: 0,
    maxWireVersion: MAX_WIRE_VERSION,
    readOnly: false,
  };
  if (command.helloOk === true) reply.helloOk = true;
  if (connection.compressor) reply.compression = [connection.compressor];
  if (typeof command.saslSupportedMechs === "string") {
    const user = command.saslSupportedMechs.split(".").slice(1).join(".");
    if (deployment.users.has(user)) reply.saslSupportedMechs = ["SCRAM-SHA-1", "SCRAM-SHA-256"];
  }
  const speculative = command.speculativeAuthenticate as Document | undefined;
  if (speculative && deployment.authRequired) {
    try {
      reply.speculativeAuthenticate = saslStart(ctx, speculative, String(speculative.db ?? ctx.db));
    } catch {
      // A failed speculative attempt is not an error: the driver falls back to saslStart.
    }
  }
  return reply;
}

function buildInfo(): Document {
  const [major, minor, patch] = SERVER_VERSION.split(".").map(Number);
  return {
    version: SERVER_VERSION,
    gitVersion: "tidemark-emulator",
    modules: [],
    allocator: "system",
    javascriptEngine: "none",
    sysInfo: "deprecated",
    versionArray: [major, minor, patch, 0],
    bits: 64,
    debug: false,
    maxBsonObjectSize: MAX_BSON_OBJECT_SIZE,
    storageEngines: ["inMemory"],
  };
}

function hostInfo(): Document {
  return {
    system: {
      currentTime: new Date(),
      hostname: os.hostname(),
      cpuAddrSize: 64,
      memSizeMB: Math.round(os.totalmem() / 1024 / 1024),
      numCores: os.cpus().length,
      cpuArch: os.arch(),
    },
    os: { type: os.type(), name: os.platform(), version: os.release() },
    extra: {},
  };
}

function serverStatus(ctx: CommandContext): Document {
  const { deployment } = ctx;
  const memory = process.memoryUsage();
  return {
    host: os.hostname(),
    version: SERVER_VERSION,
    process: "mongod",
    pid: Long.fromNumber(process.pid),
    uptime: Math.floor((Date.now() - deployment.startedAt.getTime()) / 1000),
    uptimeMillis: Long.fromNumber(Date.now() - deployment.startedAt.getTime()),
    localTime: new Date(),
    connections: { current: deployment.connectionCount, available: 1_000_000 },
    mem: { bits: 64, resident: Math.round(memory.rss / 1024 / 1024), virtual: 0, supported: true },
    metrics: { cursor: { open: { total: Long.fromNumber(deployment.cursors.openCount) } } },
    logicalSessionRecordCache: { activeSessionsCount: deployment.sessions.activeCount },
    repl: { setName: deployment.options.replSet, isWritablePrimary: true, primary: deployment.hostAndPort },
    storageEngine: { name: "inMemory", supportsCommittedReads: true, persistent: false },
  };
}

function getParameter(ctx: CommandContext): Document {
  const known: Document = {
    featureCompatibilityVersion: { version: "7.0" },
    authenticationMechanisms: ["SCRAM-SHA-1", "SCRAM-SHA-256"],
    transactionLifetimeLimitSeconds: 60,
    maxBSONDepth: 100,
  };
  const { command } = ctx;
  if (command.getParameter === "*" || command.allParameters === true) return { ...known };
  const reply: Document = {};
  for (const name of Object.keys(command)) if (name in known) reply[name] = known[name];
  return reply;
}

function connectionStatus(ctx: CommandContext): Document {
  const user = ctx.connection.user;
  const [name, db] = user ? user.split("@") : [];
  return {
    authInfo: {
      authenticatedUsers: user ? [{ user: name, db }] : [],
      authenticatedUserRoles: user ? [{ role: "root", db: "admin" }] : [],
    },
  };
}

function replSetGetStatus(ctx: CommandContext): Document {
  const { deployment } = ctx;
  const optime = deployment.oplog.latest();
  const optimeDate = new Date(optime.ts.high * 1000);
  return {
    set: deployment.options.replSet,
    date: new Date(),
    myState: 1,
    term: TERM,
    heartbeatIntervalMillis: Long.fromNumber(2000),
    optimes: { lastCommittedOpTime: optime, appliedOpTime: optime, durableOpTime: optime },
    members: [
      {
        _id: 0,
        name: deployment.hostAndPort,
        health: 1,
        state: 1,
        stateStr: "PRIMARY",
        uptime: Math.floor((Date.now() - deployment.startedAt.getTime()) / 1000),
        optime,
        optimeDate,
        self: true,
        electionId: deployment.electionId,
      },
    ],
  };
}

function endSessions(ctx: CommandContext): Document {
  const sessions = (ctx.command[ctx.name] as Document[] | undefined) ?? [];
  for (const lsid of sessions) {
    const key = sessionKeyOf(lsid);
    ctx.deployment.sessions.end(key);
    ctx.deployment.cursors.killForSession(key);
  }
  return {};
}

export const handshakeCommands: CommandDefinition[] = [
  { names: ["hello", "isMaster", "ismaster"], handler: hello, noAuth: true },
  { names: ["ping"], handler: () => ({}), noAuth: true },
  { names: ["buildInfo", "buildinfo"], handler: buildInfo, noAuth: true },
  { names: ["hostInfo"], handler: hostInfo },
  { names: ["serverStatus"], handler: serverStatus },
  { names: ["getParameter"], handler: getParameter },
  { names: ["connectionStatus"], handler: connectionStatus, noAuth: true },
  { names: ["replSetGetStatus"], handler: replSetGetStatus },
  { names: ["endSessions", "killSessions"], handler: endSessions, noAuth: true },
  { names: ["whatsmyuri"], handler: (ctx) => ({ you: ctx.connection.remoteAddress }) },
  { names: ["getCmdLineOpts"], handler: () => ({ argv: ["mongod"], parsed: {} }) },
];
