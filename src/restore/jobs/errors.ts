/** A restore request refused before any work; the API answers it with `status`, `code` and `hint`. */
export class RestoreJobError extends Error {
  override readonly name = "RestoreJobError";
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly hint?: string,
  ) {
    super(message);
  }
}
