import type { OpTimeJson } from "../protocol/agentProtocol.js";

/** Exit code for a configuration the agent cannot work with (bad source, credentials, key). */
export const EXIT_BAD_CONFIGURATION = 2;

/** What is wrong with the configuration, for programs; the message and hint are for people. */
export type ConfigurationProblem =
  | "unreachable"
  | "authentication"
  | "not_replica_set"
  | "no_oplog"
  | "missing_privilege"
  | "agent_key"
  | "invalid_option";

/** The agent cannot run with this configuration; retrying will not help. Exit code 2. */
export class ConfigurationError extends Error {
  override readonly name = "ConfigurationError";
  readonly exitCode = EXIT_BAD_CONFIGURATION;

  constructor(
    readonly problem: ConfigurationProblem,
    message: string,
    readonly hint?: string,
  ) {
    super(message);
  }

  /** The message followed by its hint, as printed before exiting. */
  describe(): string {
    return this.hint ? `${this.message}\n  hint: ${this.hint}` : this.message;
  }
}

/** The server answered with an error that retrying the same request will not fix. */
export class ServerResponseError extends Error {
  override readonly name: string = "ServerResponseError";

  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly hint?: string,
  ) {
    super(message);
  }
}

/** 400 on a slice: the agent built something the server cannot accept, a bug. Stops that stream. */
export class SliceRejectedError extends ServerResponseError {
  override readonly name = "SliceRejectedError";
}

/**
 * 409: the job moved on (a new generation, a stopped job) or the server holds another slice under
 * that sequence. The agent stops what it is doing and fetches the job again.
 */
export class JobConflictError extends ServerResponseError {
  override readonly name = "JobConflictError";
}

/** The tail's resume point is no longer in the deployment's oplog. */
export class OplogGapError extends Error {
  override readonly name = "OplogGapError";

  constructor(
    readonly resumeTs: OpTimeJson,
    readonly oldestTs: OpTimeJson | undefined,
    message: string,
  ) {
    super(message);
  }
}

/** Work was cancelled (the job stopped, or the agent is shutting down). */
export class StoppedError extends Error {
  override readonly name = "StoppedError";

  constructor(message = "stopped") {
    super(message);
  }
}

export function isStopped(error: unknown): boolean {
  return error instanceof StoppedError || (error instanceof Error && error.name === "AbortError");
}
