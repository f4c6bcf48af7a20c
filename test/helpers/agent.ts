/** The agent in-process, configured for tests: short backoffs and polls, so that tests run fast. */
import { startAgent, type AgentOptions, type RunningAgent } from "../../src/agent/agent.js";
import type { BackoffOptions } from "../../src/agent/backoff.js";

/** Retries and restarts within a fraction of a second. */
export const FAST_BACKOFF: BackoffOptions = { initialMs: 20, maxMs: 200 };

export type TestAgentOptions = Pick<AgentOptions, "serverUrl" | "agentKey" | "sourceUri"> &
  Partial<AgentOptions>;

/**
 * `options` over the test defaults: fast backoffs, the job polled every 100 ms, a heartbeat every
 * 500 ms, oplog awaits of 100 ms, no log.
 */
export function testAgentOptions(options: TestAgentOptions): AgentOptions {
  return {
    pollIntervalMs: 100,
    heartbeatIntervalMs: 500,
    backoff: FAST_BACKOFF,
    restartBackoff: FAST_BACKOFF,
    oplogAwaitMs: 100,
    log: () => {},
    ...options,
  };
}

export function startTestAgent(options: TestAgentOptions): RunningAgent {
  return startAgent(testAgentOptions(options));
}
