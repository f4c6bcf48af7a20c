import { CommandError } from "./errors.js";

interface CommandFailure {
  command: string;
  code: number;
  remaining: number;
  errorLabels: string[];
}

/**
 * Faults a test can inject (through the `tidemarkFault` admin command or the in-process API):
 * failing the next N commands of a name, delaying replies, and closing every connection.
 */
export class FaultInjector {
  private failures: CommandFailure[] = [];
  /** Milliseconds added before every reply. */
  replyDelayMs = 0;

  failCommand(command: string, code: number, times = 1, errorLabels: string[] = []): void {
    this.failures.push({ command, code, remaining: times, errorLabels });
  }

  /** Throws the injected error if `command` is due to fail. */
  beforeCommand(command: string): void {
    const failure = this.failures.find((f) => f.command === command && f.remaining > 0);
    if (!failure) return;
    failure.remaining--;
    this.failures = this.failures.filter((f) => f.remaining > 0);
    throw new CommandError(
      failure.code,
      `Failing command ${command} via tidemarkFault`,
      {},
      failure.errorLabels,
    );
  }

  clear(): void {
    this.failures = [];
    this.replyDelayMs = 0;
  }
}
