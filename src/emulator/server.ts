import net from "node:net";
import { MongoClient } from "mongodb";
import { ClientConnection } from "./connection.js";
import { Deployment } from "./deployment.js";
import { resolveOptions, type EmulatorOptions } from "./options.js";
import { loadSampleData, type SampleDataSummary } from "./sampleData.js";

export interface RunningEmulator {
  /** A connection string for the official driver: `mongodb://host:port/?replicaSet=rs0`. */
  uri: string;
  /** The same with `directConnection=true`, for tools that should not discover the set. */
  directUri: string;
  host: string;
  port: number;
  deployment: Deployment;
  /** Fault injection for tests. */
  faults: EmulatorFaults;
  /** What --sample-data loaded, when it was asked for. */
  sampleData?: SampleDataSummary;
  stop(): Promise<void>;
}

export interface EmulatorFaults {
  /** Closes every client connection, as a network cut would. */
  closeConnections(): number;
  /**
   * The next `times` commands named `command` fail with `code`. `errorLabels`, when given, replace
   * the labels the server would add (as with mongod's failCommand fail point).
   */
  failCommand(command: string, code: number, times?: number, errorLabels?: string[]): void;
  /** The next `times` commands named `command` run, then the connection closes instead of replying. */
  dropReplies(command: string, times?: number): void;
  /** Delays every reply by `ms` (0 to stop). */
  delayReplies(ms: number): void;
  /** Keeps only the newest `keep` oplog entries, as if the oplog had rolled over. */
  truncateOplog(keep: number): number;
  /** find on `ns` leaves out the documents with these `_id`s (until `clear`). */
  hideFromFind(ns: string, ids: unknown[]): void;
  clear(): void;
}

/** Starts an emulated one-member replica set and resolves once it accepts connections. */
export async function startEmulator(options: EmulatorOptions = {}): Promise<RunningEmulator> {
  const resolved = resolveOptions(options);
  const deployment = new Deployment(resolved);
  const server = net.createServer((socket) => {
    const connection = new ClientConnection(socket, deployment);
    deployment.connections.add(connection);
    socket.on("close", () => deployment.connections.delete(connection));
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(resolved.port, resolved.host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const address = server.address() as net.AddressInfo;
  const host = resolved.host;
  const port = address.port;
  deployment.hostAndPort = `${host}:${port}`;

  const noopTimer = setInterval(() => {
    if (deployment.oplog.millisSinceLastWrite >= resolved.noopIntervalSeconds * 1000) {
      deployment.oplog.append({ op: "n", ns: "", o: { msg: "periodic noop" } });
    }
  }, resolved.noopIntervalSeconds * 1000);
  noopTimer.unref();

  const faults: EmulatorFaults = {
    closeConnections() {
      const count = deployment.connections.size;
      for (const connection of [...deployment.connections]) connection.close();
      return count;
    },
    failCommand: (command, code, times = 1, labels) =>
      deployment.faults.failCommand(command, code, times, labels),
    dropReplies: (command, times = 1) => deployment.faults.dropReplies(command, times),
    delayReplies(ms) {
      deployment.faults.replyDelayMs = ms;
    },
    truncateOplog: (keep) => deployment.oplog.truncateToNewest(keep),
    hideFromFind: (ns, ids) => deployment.faults.hideFromFind(ns, ids),
    clear: () => deployment.faults.clear(),
  };
  deployment.faultApi = faults;

  const credentials =
    resolved.user !== undefined
      ? `${encodeURIComponent(resolved.user)}:${encodeURIComponent(resolved.password ?? "")}@`
      : "";
  const directUri = `mongodb://${credentials}${host}:${port}/?directConnection=true`;
  // The demo data goes in through the driver, as it would into a real deployment.
  let sampleData: SampleDataSummary | undefined;
  if (resolved.sampleData) {
    const client = new MongoClient(directUri);
    try {
      sampleData = await loadSampleData(client);
    } finally {
      await client.close();
    }
  }
  return {
    uri: `mongodb://${credentials}${host}:${port}/?replicaSet=${resolved.replSet}`,
    directUri,
    sampleData,
    host,
    port,
    deployment,
    faults,
    async stop() {
      clearInterval(noopTimer);
      deployment.shutdown.abort();
      deployment.oplog.wakeAll();
      deployment.cursors.killAll();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const connection of [...deployment.connections]) connection.close();
      await closed;
    },
  };
}
