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

/** A document whose bytes the driver cannot reproduce (so the target's dbHash could not match). */
export class UnrepresentableDocumentError extends Error {
  constructor(
    readonly namespace: string,
    readonly id: string,
    readonly reason: string,
  ) {
    super(
      `${namespace}: document ${id} cannot be restored byte for byte through the driver (${reason}); ` +
        "nothing was altered to make it fit",
    );
    this.name = "UnrepresentableDocumentError";
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
