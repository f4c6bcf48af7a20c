export {
  OplogApplier,
  type ApplyBatchOptions,
  type ApplyBatchResult,
  type OplogApplierOptions,
} from "./applier.js";
export { defaultNamespaceFilter, type ApplyStats, type NamespaceFilter } from "./context.js";
export { compareTimestamps, isNullOpTime, OplogEntry } from "./entry.js";
export { OplogApplyError, type ApplyErrorCode } from "./errors.js";
export { transactionId } from "./transactions.js";
export { applyV1Update, V1UpdateError, type V1Result } from "./v1Update.js";
