// TEMPORARY STUB written by the lead so the emulator compiles; helper-1 replaces this file whole.
import type { Document } from "bson";
export class DiffApplyError extends Error {
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
  }
}
export function applyDiff(_pre: Document, _diff: Document): Document {
  throw new DiffApplyError(1, "stub");
}
