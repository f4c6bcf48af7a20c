import type { Document } from "bson";

/** Error codes the emulator returns, with MongoDB 7.0's names (src/mongo/base/error_codes.yml). */
export const ErrorCode = {
  InternalError: 1,
  BadValue: 2,
  NoSuchKey: 4,
  FailedToParse: 9,
  Unauthorized: 13,
  TypeMismatch: 14,
  AuthenticationFailed: 18,
  IllegalOperation: 20,
  NamespaceNotFound: 26,
  IndexNotFound: 27,
  CursorNotFound: 43,
  NamespaceExists: 48,
  MaxTimeMSExpired: 50,
  CommandNotFound: 59,
  ImmutableField: 66,
  InvalidOptions: 72,
  InvalidNamespace: 73,
  IndexOptionsConflict: 85,
  IndexKeySpecsConflict: 86,
  NoSuchTransaction: 251,
  TransactionCommitted: 256,
  TransactionTooOld: 225,
  OperationNotSupportedInTransaction: 263,
  IndexAlreadyExists: 68,
  CannotCreateIndex: 67,
  InvalidIdField: 53,
  NotWritablePrimary: 10107,
  DocumentValidationFailure: 121,
  DuplicateKey: 11000,
  InvalidViewDefinition: 182,
  CommandNotSupportedOnView: 166,
  Location16436: 16436,
  ConflictingUpdateOperators: 40,
  NoMatchingDocument: 47,
  HostUnreachable: 6,
  ShutdownInProgress: 91,
  InterruptedAtShutdown: 11600,
  CappedPositionLost: 136,
  OplogQueryMinTsMissing: 326,
  InvalidLength: 25,
  ProtocolError: 17,
  NotImplemented: 238,
} as const;

const codeNames = new Map<number, string>(Object.entries(ErrorCode).map(([name, code]) => [code, name]));

export function codeName(code: number): string {
  return codeNames.get(code) ?? `Location${code}`;
}

/** A command failure, answered as `{ok: 0, errmsg, code, codeName, ...extra}`. */
export class CommandError extends Error {
  override readonly name = "CommandError";
  constructor(
    readonly code: number,
    message: string,
    /** Fields MongoDB adds to this error's reply (keyPattern and keyValue for DuplicateKey, ...). */
    readonly extra: Document = {},
    /** Error labels such as TransientTransactionError. */
    readonly labels: string[] = [],
  ) {
    super(message);
  }

  toReply(): Document {
    const reply: Document = { ok: 0, errmsg: this.message, code: this.code, codeName: codeName(this.code) };
    Object.assign(reply, this.extra);
    if (this.labels.length > 0) reply.errorLabels = this.labels;
    return reply;
  }
}

export function badValue(message: string): CommandError {
  return new CommandError(ErrorCode.BadValue, message);
}

export function namespaceNotFound(ns: string): CommandError {
  return new CommandError(ErrorCode.NamespaceNotFound, `ns does not exist: ${ns}`);
}
