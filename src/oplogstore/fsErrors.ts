import { errnoCode } from "./durableWrite.js";
import { OplogStoreError } from "./errors.js";

export interface FsErrorContext {
  location: string;
  /** The store's root directory, named in hints. */
  root: string;
  key?: string;
  /** "store", "read", "delete" ... for the message. */
  action: string;
}

/**
 * Classifies a Node file system error. ENOSPC and EDQUOT become NO_SPACE so the server can answer
 * the agent "try again later" instead of failing the upload as a bad request; a key that collides
 * with a directory (ENOTDIR / EISDIR / EEXIST: "a" and "a/b" cannot both be files) is INVALID_KEY.
 */
export function fsError(err: unknown, ctx: FsErrorContext): OplogStoreError {
  if (err instanceof OplogStoreError) return err;
  const code = errnoCode(err) ?? "unknown";
  const base = { location: ctx.location, key: ctx.key, cause: err };
  switch (code) {
    case "ENOSPC":
    case "EDQUOT":
      return new OplogStoreError("NO_SPACE", {
        ...base,
        problem: `cannot ${ctx.action}: ${code === "ENOSPC" ? "no space left on the device" : "disk quota exceeded"} (${code})`,
        hint: `free space on ${ctx.root} or raise --oplog-store-max-gb`,
      });
    case "ENOTDIR":
    case "EISDIR":
    case "EEXIST":
      return new OplogStoreError("INVALID_KEY", {
        ...base,
        problem: `cannot ${ctx.action}: the key collides with a directory of other keys (${code})`,
        hint: 'on a file system store a key cannot also be the prefix of other keys ("a" and "a/b")',
      });
    case "EACCES":
    case "EPERM":
    case "EROFS":
      return new OplogStoreError("IO", {
        ...base,
        problem: `cannot ${ctx.action}: permission denied (${code})`,
        hint: `check that ${ctx.root} is on a writable file system and owned by the user running tidemark`,
      });
    default:
      return new OplogStoreError("IO", {
        ...base,
        problem: `cannot ${ctx.action}: ${err instanceof Error ? err.message : String(err)}`,
        hint: `check the disk holding ${ctx.root} (kernel log, file system errors)`,
      });
  }
}
