import { randomBytes } from "node:crypto";
import {
  closeSync,
  fsyncSync,
  linkSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  statSync,
  unlinkSync,
  writeSync,
} from "node:fs";
import { join } from "node:path";

/*
 * The server's download link secret: 32 random bytes in `<dataDir>/download-secret` (mode 0600).
 * It lives in a file, not in memory, so links handed out before a restart keep working after it;
 * deleting the file makes a new secret on the next start and voids every earlier link (which is
 * also the way to revoke them all).
 */

export const LINK_SECRET_FILE = "download-secret";
export const LINK_SECRET_BYTES = 32;

/** The secret file cannot be used (damaged, unreadable, not a file) or cannot be created. */
export class LinkSecretError extends Error {
  override readonly name = "LinkSecretError";

  constructor(
    /** The secret file's path. */
    readonly file: string,
    problem: string,
    /** What to do about it (also at the end of the message). */
    readonly hint: string,
  ) {
    super(`download link secret file ${file} ${problem}: ${hint}`);
  }
}

export interface LinkSecret {
  secret: Buffer;
  file: string;
  /** True when this call made the file (first start on this data directory). */
  created: boolean;
}

export interface LinkSecretOptions {
  /** Called with a warning (the file can be read by group or others) for the server's log. */
  onWarning?: (message: string) => void;
}

/**
 * Reads the data directory's download link secret, creating it (and the directory) on first use.
 * A new secret is written to a temporary file, flushed, then linked into place, so a crash or a
 * concurrent start never leaves a partly written secret under the real name. A file of the wrong
 * size (or all zero bytes, as a crash on some file systems leaves) is a LinkSecretError naming
 * the file and the fix; it is never silently replaced, since that would void every link.
 */
export function loadOrCreateLinkSecret(dataDir: string, options: LinkSecretOptions = {}): LinkSecret {
  const file = join(dataDir, LINK_SECRET_FILE);
  const existing = readLinkSecret(file, options);
  if (existing) return { secret: existing, file, created: false };
  if (createLinkSecret(dataDir, file)) {
    return { secret: readLinkSecret(file, options)!, file, created: true };
  }
  // Another process created it between our read and our link: use theirs.
  const theirs = readLinkSecret(file, options);
  if (!theirs) throw new LinkSecretError(file, "vanished while being created", "start the server again");
  return { secret: theirs, file, created: false };
}

const REPLACE_HINT = (file: string) =>
  `delete ${file} and start the server again to make a new secret ` +
  "(download links made before then stop working; ask for new ones)";

/** The secret, or undefined when the file does not exist. */
function readLinkSecret(file: string, options: LinkSecretOptions): Buffer | undefined {
  let stat;
  try {
    stat = statSync(file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw fsError(file, error);
  }
  if (!stat.isFile()) throw new LinkSecretError(file, "is not a regular file", REPLACE_HINT(file));
  if (stat.size !== LINK_SECRET_BYTES) {
    throw new LinkSecretError(
      file,
      `is ${stat.size} bytes, not ${LINK_SECRET_BYTES}: it is damaged or not a Tidemark secret`,
      REPLACE_HINT(file),
    );
  }
  let secret: Buffer;
  try {
    secret = readFileSync(file);
  } catch (error) {
    throw fsError(file, error);
  }
  if (secret.length !== LINK_SECRET_BYTES) {
    throw new LinkSecretError(file, "changed size while being read", "start the server again");
  }
  if (secret.every((byte) => byte === 0)) {
    throw new LinkSecretError(file, "holds only zero bytes: it is damaged", REPLACE_HINT(file));
  }
  if (options.onWarning && process.platform !== "win32" && (stat.mode & 0o077) !== 0) {
    const mode = (stat.mode & 0o777).toString(8).padStart(4, "0");
    options.onWarning(
      `download link secret file ${file} can be accessed by group or others (mode ${mode}); ` +
        `anyone who reads it can make download links: chmod 600 ${file}`,
    );
  }
  return secret;
}

/** Writes a new secret under `file` unless one appears first; false when one did. */
function createLinkSecret(dataDir: string, file: string): boolean {
  const temporary = `${file}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`;
  try {
    mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    const fd = openSync(temporary, "wx", 0o600);
    try {
      writeSync(fd, randomBytes(LINK_SECRET_BYTES));
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    try {
      // link() fails if the name exists, so two servers starting at once cannot both win.
      linkSync(temporary, file);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === "EEXIST") return false;
      // A file system without hard links: rename (we just saw no file there).
      if (code !== "EPERM" && code !== "ENOTSUP" && code !== "EOPNOTSUPP" && code !== "ENOSYS") throw error;
      renameSync(temporary, file);
    }
    syncDirectory(dataDir);
    return true;
  } catch (error) {
    if (error instanceof LinkSecretError) throw error;
    throw new LinkSecretError(
      file,
      `cannot be created (${(error as NodeJS.ErrnoException).code ?? String(error)})`,
      `make sure the server can write to ${dataDir}`,
    );
  } finally {
    try {
      unlinkSync(temporary);
    } catch {
      // already renamed, or never created
    }
  }
}

/** Makes the new directory entry durable; not every platform can open a directory to sync it. */
function syncDirectory(directory: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(directory, "r");
    fsyncSync(fd);
  } catch {
    // Windows and some file systems refuse; the file's own fsync already holds the bytes.
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

function fsError(file: string, error: unknown): LinkSecretError {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === "EACCES" || code === "EPERM") {
    return new LinkSecretError(
      file,
      "cannot be read: permission denied",
      "run the server as the user that owns the data directory",
    );
  }
  return new LinkSecretError(
    file,
    `cannot be read (${code ?? (error instanceof Error ? error.message : String(error))})`,
    "check the data directory",
  );
}
