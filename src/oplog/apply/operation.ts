import { applyCommand } from "./commands.js";
import { applyError, type ApplyContext } from "./context.js";
import { applyCrud } from "./crud.js";
import type { OplogEntry } from "./entry.js";

/** Applies one operation: a top-level entry, or an operation inside an applyOps. */
export function applyOperation(ctx: ApplyContext, entry: OplogEntry): void {
  const op = entry.op;
  switch (op) {
    case "i":
    case "u":
    case "d":
      return applyCrud(ctx, entry, op);
    case "c":
      return applyCommand(ctx, entry);
    case "n":
      // No-ops (periodic, resharding and migration markers, retryable-write images) change nothing.
      return;
    default:
      throw applyError(entry, "UNKNOWN_OP", `op '${String(op)}' is not one the applier knows`);
  }
}
