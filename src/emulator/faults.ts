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
 * failing the next N commands of a name, delaying replies, and closing every connection.
 */
export class FaultInjector {
  private failures: CommandFailure[] = [];
  /** Milliseconds added before every reply. */
  replyDelayMs = 0;

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

  clear(): void {
    this.failures = [];
    this.replyDelayMs = 0;
  }
}
