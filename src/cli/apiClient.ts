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
    const response = await this.send(method, path, body);
    const text = await response.text();
    return (text ? (JSON.parse(text) as unknown) : undefined) as T;
  }

  /** A GET whose body is streamed (raw BSON, archives): the caller reads `response.body`. */
  async stream(path: string): Promise<Response> {
    return this.send("GET", path);
  }

  /** Sends the request; an error status becomes ApiResponseError with the server's message and hint. */
  private async send(method: string, path: string, body?: unknown): Promise<Response> {
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
    if (response.ok) return response;
    const text = await response.text();
    let error: { error?: string; hint?: string; code?: string } | undefined;
    try {
      error = text ? (JSON.parse(text) as typeof error) : undefined;
    } catch {
      error = { error: text };
    }
    throw new ApiResponseError(
      `${error?.error ?? `HTTP ${response.status}`}${error?.code ? ` (${error.code})` : ""}`,
      error?.hint,
      response.status,
      error?.code,
    );
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
