/** The CLI's client of the HTTP API: TIDEMARK_URL and TIDEMARK_API_KEY, or their options. */
export class ApiClient {
  constructor(
    readonly baseUrl: string,
    private readonly apiKey: string | undefined,
  ) {}

  static fromEnvironment(options: { url?: string; apiKey?: string } = {}): ApiClient {
    const url = options.url ?? process.env.TIDEMARK_URL ?? "http://127.0.0.1:8080";
    return new ApiClient(url.replace(/\/+$/, ""), options.apiKey ?? process.env.TIDEMARK_API_KEY);
  }

  async request<T>(method: string, path: string, body?: unknown): Promise<T> {
    if (!this.apiKey) {
      throw new CliError(
        "no API key",
        "set TIDEMARK_API_KEY to the admin key the server printed at its first start",
      );
    }
    let response: Response;
    try {
      response = await fetch(`${this.baseUrl}${path}`, {
        method,
        headers: {
          authorization: `Bearer ${this.apiKey}`,
          ...(body === undefined ? {} : { "content-type": "application/json" }),
        },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (error) {
      throw new CliError(
        `cannot reach the Tidemark server at ${this.baseUrl}: ${(error as Error).cause ?? (error as Error).message}`,
        "start it with 'tidemark server' or set TIDEMARK_URL",
      );
    }
    const text = await response.text();
    const parsed = text ? (JSON.parse(text) as unknown) : undefined;
    if (!response.ok) {
      const error = parsed as { error?: string; hint?: string; code?: string } | undefined;
      throw new ApiResponseError(
        `${error?.error ?? `HTTP ${response.status}`}${error?.code ? ` (${error.code})` : ""}`,
        error?.hint,
        response.status,
        error?.code,
      );
    }
    return parsed as T;
  }
}

/** An error for the person at the terminal: what went wrong and what to do. */
export class CliError extends Error {
  override readonly name: string = "CliError";
  constructor(
    message: string,
    readonly hint?: string,
    readonly exitCode = 1,
  ) {
    super(message);
  }
}

/** The server answered with an error status; `status` and `code` let a command add its own hint. */
export class ApiResponseError extends CliError {
  override readonly name = "ApiResponseError";
  constructor(
    message: string,
    hint: string | undefined,
    readonly status: number,
    readonly code?: string,
  ) {
    super(message, hint);
  }
}
