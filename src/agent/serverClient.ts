import type { z } from "zod";
import {
  AgentJob,
  AgentSelf,
  ApiError,
  SliceAck,
  type CloneDone,
  type CollectionDone,
  type Heartbeat,
  type InitialSyncStart,
  type OplogGap,
  type VerificationAnswer,
} from "../protocol/agentProtocol.js";
import { Backoff, sleep, type BackoffOptions } from "./backoff.js";
import {
  ConfigurationError,
  JobConflictError,
  ServerResponseError,
  SliceRejectedError,
  StoppedError,
} from "./errors.js";
import { describeError, silentLogger, type Logger } from "./logger.js";

export interface ServerClientOptions {
  /** Base URL of the Tidemark server, e.g. `http://backup.example.com:8080`. */
  serverUrl: string;
  agentKey: string;
  /** The deployment this agent backs up; looked up with the key (GET /api/v1/agent/self) when absent. */
  deploymentId?: string;
  /** Per-request time limit. Default 60 s. */
  requestTimeoutMs?: number;
  /** Backoff between retries of transient failures. */
  backoff?: BackoffOptions;
  log?: Logger;
  /** For tests: another fetch implementation. */
  fetch?: typeof fetch;
}

/**
 * A failure that may go away by itself: the server is unreachable or timed out, or answered 5xx,
 * 429 (too many requests) or 507 (its oplog store is full). Retried with backoff, forever.
 */
export class TransientServerError extends Error {
  override readonly name = "TransientServerError";

  constructor(
    message: string,
    readonly status?: number,
    /** From a Retry-After header. */
    readonly retryAfterMs?: number,
  ) {
    super(message);
  }
}

const RETRIED_STATUSES = new Set([429, 507]);

function retryAfterMs(header: string | null): number | undefined {
  if (!header) return undefined;
  const seconds = Number(header);
  if (Number.isFinite(seconds) && seconds >= 0) return seconds * 1000;
  const date = Date.parse(header);
  return Number.isNaN(date) ? undefined : Math.max(0, date - Date.now());
}

/**
 * Runs `attempt` until it succeeds, retrying TransientServerErrors with exponential backoff and
 * jitter (honouring Retry-After, up to the backoff's maximum). Any other error ends it; so does
 * `signal` (StoppedError).
 */
export async function withRetries<T>(
  what: string,
  attempt: () => Promise<T>,
  options: { signal?: AbortSignal; backoff?: BackoffOptions; log?: Logger } = {},
): Promise<T> {
  const backoff = new Backoff(options.backoff);
  const log = options.log ?? silentLogger;
  const maxMs = options.backoff?.maxMs ?? 30_000;
  while (true) {
    if (options.signal?.aborted) throw new StoppedError();
    try {
      return await attempt();
    } catch (error) {
      if (!(error instanceof TransientServerError)) throw error;
      const delay = Math.min(maxMs, Math.max(backoff.nextDelayMs(), error.retryAfterMs ?? 0));
      log.warn(`${what} failed, retrying`, {
        reason: error.message,
        status: error.status,
        attempt: backoff.attempts,
        retryInMs: delay,
      });
      await sleep(delay, options.signal);
    }
  }
}

/** The agent's side of the HTTP protocol of `src/protocol/agentProtocol.ts`. */
export class ServerClient {
  private readonly base: string;
  private readonly fetchImpl: typeof fetch;
  private readonly timeoutMs: number;
  private readonly log: Logger;
  private deployment: string | undefined;

  constructor(private readonly options: ServerClientOptions) {
    this.base = options.serverUrl.replace(/\/+$/, "");
    this.fetchImpl = options.fetch ?? fetch;
    this.timeoutMs = options.requestTimeoutMs ?? 60_000;
    this.log = options.log ?? silentLogger;
    this.deployment = options.deploymentId;
  }

  get deploymentId(): string {
    if (!this.deployment) throw new Error("the deployment is not known yet: call identify() first");
    return this.deployment;
  }

  /** Whether the deployment is known (given, or found by identify()). */
  get identified(): boolean {
    return this.deployment !== undefined;
  }

  /** Finds out which deployment the agent key belongs to (unless it was given). */
  async identify(signal?: AbortSignal): Promise<string> {
    if (this.deployment) return this.deployment;
    let self: AgentSelf;
    try {
      self = await withRetries(
        "identifying the deployment",
        () => this.request("GET", "/api/v1/agent/self", { schema: AgentSelf, signal }),
        this.retryOptions(signal),
      );
    } catch (error) {
      if (error instanceof ServerResponseError && error.status === 404) {
        throw new ConfigurationError(
          "invalid_option",
          "the server cannot tell the agent which deployment its key belongs to (GET /api/v1/agent/self: 404)",
          "pass --deployment <id> (the id printed when the deployment was added, or by `tidemark deployments list`)",
        );
      }
      throw error;
    }
    this.deployment = self.deploymentId;
    return self.deploymentId;
  }

  /** GET job: one attempt (the agent polls every second anyway). */
  getJob(signal?: AbortSignal): Promise<AgentJob> {
    return this.request("GET", this.path("job"), { schema: AgentJob, signal });
  }

  /** POST initial-sync/start, retried until the server takes it. */
  async startInitialSync(body: z.input<typeof InitialSyncStart>, signal?: AbortSignal): Promise<void> {
    await this.post("initial-sync/start", body, signal);
  }

  async collectionDone(body: z.input<typeof CollectionDone>, signal?: AbortSignal): Promise<void> {
    await this.post("clone/collection-done", body, signal);
  }

  async cloneDone(body: z.input<typeof CloneDone>, signal?: AbortSignal): Promise<void> {
    await this.post("initial-sync/clone-done", body, signal);
  }

  async reportOplogGap(body: z.input<typeof OplogGap>, signal?: AbortSignal): Promise<void> {
    await this.post("oplog-gap", body, signal);
  }

  /** POST verifications/:id, retried until the server takes it (404/409: it no longer waits). */
  async answerVerification(id: string, body: VerificationAnswer, signal?: AbortSignal): Promise<void> {
    await this.post(`verifications/${encodeURIComponent(id)}`, body, signal);
  }

  /** POST heartbeat: one attempt (the next one is 10 s away). */
  async heartbeat(body: z.input<typeof Heartbeat>, signal?: AbortSignal): Promise<void> {
    await this.request("POST", this.path("heartbeat"), { json: body, signal });
  }

  /**
   * PUT one slice: one attempt. Throws TransientServerError (retry), SliceRejectedError (400),
   * JobConflictError (409), ConfigurationError (401/403) or ServerResponseError.
   */
  putSlice(
    slice: { stream: string; sequence: number; bytes: Buffer },
    generation: number,
    signal?: AbortSignal,
  ): Promise<SliceAck> {
    const path = this.path(`slices/${encodeURIComponent(slice.stream)}/${slice.sequence}`);
    return this.request("PUT", path, {
      body: slice.bytes,
      headers: { "content-type": "application/octet-stream", "x-tidemark-generation": String(generation) },
      schema: SliceAck,
      signal,
      slice: true,
    });
  }

  private retryOptions(signal: AbortSignal | undefined) {
    return { signal, backoff: this.options.backoff, log: this.log };
  }

  private async post(endpoint: string, json: unknown, signal: AbortSignal | undefined): Promise<void> {
    await withRetries(
      `POST ${endpoint}`,
      () => this.request("POST", this.path(endpoint), { json, signal }),
      this.retryOptions(signal),
    );
  }

  private path(endpoint: string): string {
    return `/api/v1/agent/deployments/${encodeURIComponent(this.deploymentId)}/${endpoint}`;
  }

  private async request<T = unknown>(
    method: string,
    path: string,
    options: {
      json?: unknown;
      body?: Buffer;
      headers?: Record<string, string>;
      schema?: z.ZodType<T>;
      signal?: AbortSignal;
      slice?: boolean;
    },
  ): Promise<T> {
    if (options.signal?.aborted) throw new StoppedError();
    const headers: Record<string, string> = {
      authorization: `Bearer ${this.options.agentKey}`,
      accept: "application/json",
      ...options.headers,
    };
    let body: Buffer | string | undefined = options.body;
    if (options.json !== undefined) {
      headers["content-type"] = "application/json";
      body = JSON.stringify(options.json);
    }
    const timeout = AbortSignal.timeout(this.timeoutMs);
    const signal = options.signal ? AbortSignal.any([options.signal, timeout]) : timeout;
    const what = `${method} ${path}`;
    let response: Response;
    try {
      response = await this.fetchImpl(`${this.base}${path}`, { method, headers, body, signal });
    } catch (error) {
      if (options.signal?.aborted) throw new StoppedError();
      if (timeout.aborted) throw new TransientServerError(`${what}: no answer within ${this.timeoutMs} ms`);
      const cause = (error as { cause?: unknown }).cause;
      throw new TransientServerError(`${what}: ${describeError(cause ?? error)}`);
    }
    let text: string;
    try {
      text = await response.text();
    } catch (error) {
      if (options.signal?.aborted) throw new StoppedError();
      throw new TransientServerError(`${what}: the reply was cut (${describeError(error)})`, response.status);
    }
    if (response.ok) {
      if (!options.schema) return undefined as T;
      let parsed: unknown;
      try {
        parsed = JSON.parse(text);
      } catch {
        throw new ServerResponseError(response.status, "BAD_REPLY", `${what}: the reply is not JSON`);
      }
      const checked = options.schema.safeParse(parsed);
      if (!checked.success) {
        const problems = checked.error.issues.map((i) => `${i.path.join(".") || "body"}: ${i.message}`);
        throw new ServerResponseError(
          response.status,
          "BAD_REPLY",
          `${what}: the reply does not follow the agent protocol (${problems.join("; ")})`,
          "the agent and the server may be different versions",
        );
      }
      return checked.data;
    }
    const apiError = parseApiError(text);
    const message = `${what}: ${response.status} ${apiError?.error ?? (text.slice(0, 200) || response.statusText)}`;
    const status = response.status;
    if (status >= 500 || RETRIED_STATUSES.has(status)) {
      throw new TransientServerError(message, status, retryAfterMs(response.headers.get("retry-after")));
    }
    const code = apiError?.code ?? `HTTP_${status}`;
    if (status === 401 || status === 403) {
      throw new ConfigurationError(
        "agent_key",
        `the server refused the agent key (${status} ${apiError?.error ?? response.statusText})`,
        status === 401
          ? "check --key: use the agent key printed when the deployment was added to the server"
          : "this key belongs to another deployment: use the key of this deployment",
      );
    }
    if (status === 409) throw new JobConflictError(status, code, message, apiError?.hint);
    if (status === 400 && options.slice) throw new SliceRejectedError(status, code, message, apiError?.hint);
    throw new ServerResponseError(status, code, message, apiError?.hint);
  }
}

function parseApiError(text: string): ApiError | undefined {
  try {
    const parsed = ApiError.safeParse(JSON.parse(text));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}
