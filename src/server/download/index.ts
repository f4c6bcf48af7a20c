/*
 * What a restore archive download needs (`GET /api/v1/restores/:id/download`): expiring signed
 * links, their secret in the data directory, and streaming a file with Range support.
 */
export { DownloadLinks, LINK_SECRET_MIN_BYTES } from "./links.js";
export type { DownloadLinkOptions, LinkCheck, LinkFailure, LinkFailureReason } from "./links.js";
export { DEFAULT_RENEW_HINT, downloadLinkError, requireDownloadLink } from "./requireLink.js";
export {
  LINK_SECRET_BYTES,
  LINK_SECRET_FILE,
  LinkSecretError,
  loadOrCreateLinkSecret,
} from "./linkSecret.js";
export type { LinkSecret, LinkSecretOptions } from "./linkSecret.js";
export { parseRange, satisfiedContentRange, unsatisfiedContentRange } from "./range.js";
export type { RangeDecision } from "./range.js";
export { sendFile } from "./sendFile.js";
export type { SendFileOptions } from "./sendFile.js";
export { fileEtag, ifRangeMatches, strongEtag } from "./validators.js";
export { attachmentDisposition } from "./contentDisposition.js";
