/** An error answered as `{error, code, hint?}` with an HTTP status. */
export class HttpError extends Error {
  override readonly name = "HttpError";
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly hint?: string,
  ) {
    super(message);
  }

  toBody(): { error: string; code: string; hint?: string } {
    return this.hint
      ? { error: this.message, code: this.code, hint: this.hint }
      : { error: this.message, code: this.code };
  }
}

export const unauthorized = (what: string) =>
  new HttpError(
    401,
    "UNAUTHORIZED",
    `missing or unknown ${what} key`,
    "send it as 'Authorization: Bearer <key>'",
  );

export const forbidden = (message: string) => new HttpError(403, "FORBIDDEN", message);

export const notFound = (what: string) => new HttpError(404, "NOT_FOUND", `${what} not found`);

export const badRequest = (message: string, hint?: string) =>
  new HttpError(400, "BAD_REQUEST", message, hint);

export const conflict = (code: string, message: string, hint?: string) =>
  new HttpError(409, code, message, hint);
