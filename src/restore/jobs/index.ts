export { RestoreJobError } from "./errors.js";
export { RestoreJobs, type RestoreJobsOptions } from "./restoreJobs.js";
export {
  parseAt,
  parseAtTs,
  RestoreBody,
  restoreRequestOf,
  type DeliveryRequest,
  type RestoreRequest,
  type RestoreSourceRecord,
} from "./request.js";
