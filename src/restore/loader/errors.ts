/** Errors of the restore loader; each names what went wrong so a CLI can print it as it is. */

/** The target deployment cannot be reached or refuses the credentials. */
export class TargetConnectionError extends Error {
  constructor(
    message: string,
    readonly reason: "unreachable" | "authentication",
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = "TargetConnectionError";
  }
}

/** Namespaces to restore already exist on the target and `drop` was not given. */
export class TargetNamespacesExistError extends Error {
  constructor(readonly namespaces: string[]) {
    super(
      `the target already has ${namespaces.length === 1 ? "this namespace" : "these namespaces"}: ` +
        `${namespaces.join(", ")}; restore with drop to replace ${namespaces.length === 1 ? "it" : "them"}`,
    );
    this.name = "TargetNamespacesExistError";
  }
}

/** A write, create or index build on the target failed. */
export class LoadError extends Error {
  constructor(
    readonly namespace: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`${namespace}: ${message}`, options);
    this.name = "LoadError";
  }
}

/** Reading a collection's documents from the source (a snapshot download, a dump) failed. */
export class SourceReadError extends Error {
  constructor(
    readonly namespace: string,
    options: { cause: unknown },
  ) {
    super(`${namespace}: reading its documents failed: ${messageOf(options.cause)}`, options);
    this.name = "SourceReadError";
  }
}

/**
 * What stopped a load part way: the source could not be read (SOURCE_FAILED), the target refused
 * or dropped a create, write, index build or dbHash (TARGET_FAILED), or anything else (LOAD_FAILED).
 */
export type RestoreInterruptionCode = "SOURCE_FAILED" | "TARGET_FAILED" | "LOAD_FAILED";

export interface RestoreProgressSummary {
  /** Target namespaces fully loaded: created, every document, every index (views: created). */
  completed: string[];
  /** Target namespaces created or partly loaded, or not reached: a rerun must load them again. */
  incomplete: string[];
  /** The source namespaces of `incomplete` (what --ns-include selects, before any rename). */
  incompleteSources: string[];
}

/**
 * A load that stopped after writing to the target: which namespaces are complete and which are
 * not, so the rerun can be told (with drop, and only the incomplete ones if wished). The first
 * failure is the `cause`; others that happened while the loads in flight stopped are not kept.
 */
export class RestoreInterruptedError extends Error {
  readonly code: RestoreInterruptionCode;
  readonly completed: string[];
  readonly incomplete: string[];
  readonly incompleteSources: string[];

  constructor(summary: RestoreProgressSummary, cause: unknown) {
    const { completed, incomplete } = summary;
    super(
      `${messageOf(cause)}; the load stopped with ${completed.length} of ` +
        `${completed.length + incomplete.length} namespaces complete` +
        (incomplete.length > 0 ? ` (incomplete: ${incomplete.join(", ")})` : ""),
      { cause },
    );
    this.name = "RestoreInterruptedError";
    this.code = interruptionCode(cause);
    this.completed = completed;
    this.incomplete = incomplete;
    this.incompleteSources = summary.incompleteSources;
  }
}

function interruptionCode(cause: unknown): RestoreInterruptionCode {
  if (cause instanceof SourceReadError) return "SOURCE_FAILED";
  // The loader wraps its own target operations in LoadError; dbHash's driver errors come as they are.
  if (cause instanceof LoadError || (cause instanceof Error && cause.name.startsWith("Mongo")))
    return "TARGET_FAILED";
  return "LOAD_FAILED";
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
