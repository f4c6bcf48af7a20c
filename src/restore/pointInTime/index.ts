export { describeImage, imageDocuments, type ImageDescription } from "./image.js";
export {
  materializePointInTime,
  type MaterializedPoint,
  type MaterializeOptions,
  type MaterializeProgress,
} from "./materialize.js";
export { openTransactionEntries } from "./openTransactions.js";
export { deploymentRanges, planPointInTime, type PointInTimePlan } from "./plan.js";
export {
  baseSnapshotId,
  describeTarget,
  isoOf,
  locateTarget,
  restorableRanges,
  snapshotReach,
  TargetNotRestorableError,
  type LocatedTarget,
  type RangeSlice,
  type RangeSnapshot,
  type RestoreRange,
  type RestoreTarget,
} from "./ranges.js";
