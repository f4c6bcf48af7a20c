import { encodeIdKey } from "../bson/keyEncoding.js";
import { CommandError } from "./errors.js";

interface CommandFailure {
  command: string;
  code: number;
  remaining: number;
  errorLabels?: string[];
}

/**
 * An injected failure. Like mongod's failCommand fail point, `errorLabels` when given replace the
 * labels the server would add (RetryableWriteError); when absent the server adds its own.
 */
export class InjectedCommandError extends CommandError {
  constructor(
    code: number,
    message: string,
    readonly explicitLabels: string[] | undefined,
  ) {
    super(code, message, {}, explicitLabels ?? []);
  }
}

/**
 * Faults a test can inject (through the `tidemarkFault` admin command or the in-process API):
 * failing the next N commands of a name, losing their replies, delaying replies, closing every
 * connection, and hiding documents from find.
 */
export class FaultInjector {
  private failures: CommandFailure[] = [];
  /** Commands whose next replies are lost: run, then the connection closes instead of answering. */
  private droppedReplies: Array<{ command: string; remaining: number }> = [];
  /** Milliseconds added before every reply. */
  replyDelayMs = 0;

  /** Per namespace, the order-preserving keys (hex) of the `_id`s find does not return. */
  private readonly hidden = new Map<string, Set<string>>();

  /**
   * find on `ns` leaves out the documents with these `_id`s until `clear()`: the way a real
   * clone can miss a document that moves during the scan, which the backup daemon must then
   * fetch as a missing document.
   */
  hideFromFind(ns: string, ids: unknown[]): void {
    const keys = this.hidden.get(ns) ?? new Set<string>();
    for (const id of ids) keys.add(encodeIdKey(id).toString("hex"));
    this.hidden.set(ns, keys);
  }

  /** The hidden `_id` keys of `ns`, if any. */
  hiddenFromFind(ns: string): ReadonlySet<string> | undefined {
    return this.hidden.get(ns);
  }

  failCommand(command: string, code: number, times = 1, errorLabels?: string[]): void {
    this.failures.push({ command, code, remaining: times, errorLabels });
  }

  /** Throws the injected error if `command` is due to fail. */
  beforeCommand(command: string): void {
    const failure = this.failures.find((f) => f.command === command && f.remaining > 0);
    if (!failure) return;
    failure.remaining--;
    this.failures = this.failures.filter((f) => f.remaining > 0);
    throw new InjectedCommandError(
      failure.code,
      `Failing command ${command} via tidemarkFault`,
      failure.errorLabels,
    );
  }

  /**
   * The next `times` commands named `command` run, then lose their reply (the connection closes):
   * the write landed but the client cannot know, as when a network cut comes at the wrong moment.
   */
  dropReplies(command: string, times = 1): void {
    this.droppedReplies.push({ command, remaining: times });
  }

  /** True (once per time asked for) when the reply to `command` is to be lost. */
  takeDroppedReply(command: string): boolean {
    const drop = this.droppedReplies.find((d) => d.command === command && d.remaining > 0);
    if (!drop) return false;
    drop.remaining--;
    this.droppedReplies = this.droppedReplies.filter((d) => d.remaining > 0);
    return true;
  }

  clear(): void {
    this.failures = [];
    this.droppedReplies = [];
    this.hidden.clear();
    this.replyDelayMs = 0;
  }
}
