import { Long, ObjectId, type Document } from "bson";
import { createScramCredential, type ScramCredential, type ScramMechanism } from "./auth/scram.js";
import type { ClientConnection } from "./connection.js";
import { CursorManager } from "./cursors.js";
import { FaultInjector } from "./faults.js";
import { ClusterClock } from "./oplog/clock.js";
import { Oplog } from "./oplog/oplog.js";
import type { ResolvedEmulatorOptions } from "./options.js";
import { Catalog } from "./storage/catalog.js";
import { SessionRegistry } from "./transactions.js";

export interface UserCredentials {
  db: string;
  credentials: Record<ScramMechanism, ScramCredential>;
}

/** Everything one emulated replica-set member holds, shared by all its connections. */
export class Deployment {
  readonly catalog = new Catalog();
  readonly clock = new ClusterClock();
  readonly oplog: Oplog;
  readonly cursors = new CursorManager();
  readonly sessions = new SessionRegistry();
  readonly faults = new FaultInjector();
  readonly users = new Map<string, UserCredentials>();
  readonly connections = new Set<ClientConnection>();
  /** How many times each command name has been received, handshake and SASL included (for tests). */
  readonly receivedCommandCounts = new Map<string, number>();
  readonly processId = new ObjectId();
  readonly electionId = new ObjectId("7fffffff0000000000000001");
  readonly startedAt = new Date();
  /** Aborted at shutdown, so waits (awaitable hello, awaitData) end at once. */
  readonly shutdown = new AbortController();
  /** The in-process fault API, also reachable through the tidemarkFault admin command. */
  faultApi?: import("./server.js").EmulatorFaults;
  /** host:port, known once the listener is bound. */
  hostAndPort = "";

  constructor(readonly options: ResolvedEmulatorOptions) {
    this.oplog = new Oplog(this.catalog, this.clock, options.oplogSizeMb * 1024 * 1024);
    if (options.user !== undefined && options.password !== undefined) {
      this.users.set(options.user, {
        db: "admin",
        credentials: {
          "SCRAM-SHA-1": createScramCredential("SCRAM-SHA-1", options.user, options.password),
          "SCRAM-SHA-256": createScramCredential("SCRAM-SHA-256", options.user, options.password),
        },
      });
    }
  }

  /** Waits `ms`, or less if the deployment shuts down first. */
  sleep(ms: number): Promise<void> {
    if (this.shutdown.signal.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.shutdown.signal.removeEventListener("abort", done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.shutdown.signal.addEventListener("abort", done);
    });
  }

  /** hello's topologyVersion; it never changes, as this member is always the primary. */
  get topologyVersion(): Document {
    return { processId: this.processId, counter: Long.fromNumber(0) };
  }

  get connectionCount(): number {
    return this.connections.size;
  }

  get authRequired(): boolean {
    return this.users.size > 0;
  }
}
