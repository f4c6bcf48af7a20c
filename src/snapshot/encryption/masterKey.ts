import { createHash, randomBytes } from "node:crypto";
import { closeSync, fstatSync, openSync, readFileSync, statSync, writeSync } from "node:fs";
import { EncryptionError } from "./errors.js";

/*
 * The master key: 32 bytes that wrap (encrypt) the data keys and nothing else. It comes from a key
 * file or an environment variable holding 64 hexadecimal characters or the base64 of 32 bytes
 * (surrounding whitespace ignored). It is never stored by Tidemark, never logged, never put in an
 * error message: it is named by its fingerprint, the first 16 hex characters of
 * SHA-256("tidemark master key" || key), which is safe to show (a one-way hash of a random key,
 * with a label so it matches no other hash of the same bytes).
 *
 * The key bytes live in a module-private WeakMap, not on the object, so `console.log`,
 * `util.inspect` and `JSON.stringify` of a MasterKey show only its fingerprint and source.
 */

export const MASTER_KEY_BYTES = 32;
const FINGERPRINT_LABEL = "tidemark master key";
/** A key file is a line of text; anything much larger is not a key file. */
const MAX_KEY_FILE_BYTES = 4096;
const KEY_FORMAT_HINT =
  "a master key is 32 random bytes written as 64 hexadecimal characters or as base64 " +
  "(44 characters); create one with `openssl rand -hex 32`";

const material = new WeakMap<MasterKey, Buffer>();

/** Fingerprint of 32 key bytes: first 16 hex characters of SHA-256("tidemark master key" || key). */
export function masterKeyFingerprint(key: Uint8Array): string {
  return createHash("sha256").update(FINGERPRINT_LABEL, "utf8").update(key).digest("hex").slice(0, 16);
}

/** Parses key text; on failure says what is wrong in terms of lengths only, never the content. */
function parseKeyText(text: string): { key: Buffer } | { problem: string } {
  const trimmed = text.trim();
  if (trimmed.length === 0) return { problem: "is empty" };
  if (/^[0-9a-fA-F]+$/.test(trimmed)) {
    if (trimmed.length === 2 * MASTER_KEY_BYTES) return { key: Buffer.from(trimmed, "hex") };
    return { problem: `holds ${trimmed.length} hexadecimal characters, not 64` };
  }
  // Node's base64 decoder also accepts the URL-safe alphabet.
  if (/^[A-Za-z0-9+/_-]+={0,2}$/.test(trimmed)) {
    const key = Buffer.from(trimmed, "base64");
    if (key.length === MASTER_KEY_BYTES) return { key };
    return { problem: `holds base64 of ${key.length} bytes, not ${MASTER_KEY_BYTES}` };
  }
  return {
    problem: `is neither hexadecimal nor base64 (${trimmed.length} characters after trimming whitespace)`,
  };
}

export interface MasterKeyFileOptions {
  /**
   * Called with a warning (e.g. the file can be read by group or others), for the caller's log at
   * warn level. The warning names the file and its mode, never its content.
   */
  onWarning?: (message: string) => void;
}

/** A 32-byte master key, named by its fingerprint and where it came from. */
export class MasterKey {
  /** First 16 hex characters of SHA-256("tidemark master key" || key): safe to show and log. */
  readonly fingerprint: string;

  private constructor(
    key: Buffer,
    /** Where the key came from, for messages: "key file /etc/tidemark/master.key", ... */
    readonly source: string,
  ) {
    const copy = Buffer.from(key);
    material.set(this, copy);
    this.fingerprint = masterKeyFingerprint(copy);
  }

  /** A master key from its 32 bytes (the bytes are copied). */
  static fromBytes(key: Uint8Array, source = "a key given by the program"): MasterKey {
    if (key.length !== MASTER_KEY_BYTES) {
      throw new EncryptionError(
        "BAD_KEY",
        `master key from ${source} is ${key.length} bytes, not ${MASTER_KEY_BYTES}: ${KEY_FORMAT_HINT}`,
      );
    }
    return new MasterKey(Buffer.from(key), source);
  }

  /** A new random master key (for tests and for `writeMasterKeyFile`). */
  static generate(source = "a generated key"): MasterKey {
    return new MasterKey(randomBytes(MASTER_KEY_BYTES), source);
  }

  /**
   * Reads a key file: 64 hex characters or base64 of 32 bytes, whitespace trimmed. A missing,
   * unreadable or malformed file is a BAD_KEY_FILE error naming the file. On POSIX systems a file
   * that group or others can access is reported through `options.onWarning` (not refused).
   */
  static fromFile(path: string, options: MasterKeyFileOptions = {}): MasterKey {
    const source = `key file ${path}`;
    let text: string;
    try {
      const size = statSync(path).size;
      if (size > MAX_KEY_FILE_BYTES) {
        throw new EncryptionError(
          "BAD_KEY_FILE",
          `${source} is ${size} bytes, too large to be a key file: ${KEY_FORMAT_HINT}`,
        );
      }
      text = readFileSync(path, "utf8");
    } catch (error) {
      if (error instanceof EncryptionError) throw error;
      throw new EncryptionError("BAD_KEY_FILE", `${source} ${describeFsError(error)}: ${KEY_FORMAT_HINT}`);
    }
    const parsed = parseKeyText(text);
    if ("problem" in parsed) {
      throw new EncryptionError("BAD_KEY_FILE", `${source} ${parsed.problem}: ${KEY_FORMAT_HINT}`);
    }
    if (options.onWarning && process.platform !== "win32") {
      const mode = statSync(path).mode & 0o777;
      if ((mode & 0o077) !== 0) {
        options.onWarning(
          `${source} can be accessed by group or others (mode ${mode.toString(8).padStart(4, "0")}); ` +
            `only the user running Tidemark should read it: chmod 600 ${path}`,
        );
      }
    }
    return new MasterKey(parsed.key, source);
  }

  /**
   * Reads the key from the environment variable `name` (e.g. TIDEMARK_ENCRYPTION_KEY): same
   * formats as a key file. Unset, empty or malformed is a BAD_KEY_VARIABLE error naming it.
   */
  static fromEnvironment(name: string, env: NodeJS.ProcessEnv = process.env): MasterKey {
    const source = `environment variable ${name}`;
    const value = env[name];
    if (value === undefined) {
      throw new EncryptionError("BAD_KEY_VARIABLE", `${source} is not set: ${KEY_FORMAT_HINT}`);
    }
    const parsed = parseKeyText(value);
    if ("problem" in parsed) {
      throw new EncryptionError("BAD_KEY_VARIABLE", `${source} ${parsed.problem}: ${KEY_FORMAT_HINT}`);
    }
    return new MasterKey(parsed.key, source);
  }

  /** True when both are the same key (compared by fingerprint). */
  equals(other: MasterKey): boolean {
    return other.fingerprint === this.fingerprint;
  }

  toString(): string {
    return `master key ${this.fingerprint} (${this.source})`;
  }

  toJSON(): { fingerprint: string; source: string } {
    return { fingerprint: this.fingerprint, source: this.source };
  }
}

/**
 * The key bytes, for the wrapping code of this module only (not exported from the module's
 * index). Never log or return them.
 */
export function masterKeyMaterial(key: MasterKey): Buffer {
  const bytes = material.get(key);
  if (!bytes) throw new Error("not a MasterKey made by MasterKey.from*/generate");
  return bytes;
}

/**
 * Creates a key file holding a new random master key as 64 hex characters and a newline, readable
 * by its owner only (mode 0600). Refuses to overwrite an existing file (BAD_KEY_FILE): losing a
 * master key loses every snapshot sealed under it.
 */
export function writeMasterKeyFile(path: string): MasterKey {
  const key = MasterKey.generate(`key file ${path}`);
  let fd: number;
  try {
    fd = openSync(path, "wx", 0o600);
  } catch (error) {
    throw new EncryptionError(
      "BAD_KEY_FILE",
      (error as NodeJS.ErrnoException).code === "EEXIST"
        ? `key file ${path} already exists: an existing key file is never overwritten ` +
            "(it may be the only copy of a master key); choose another path"
        : `key file ${path} cannot be created (${(error as NodeJS.ErrnoException).code ?? String(error)})`,
    );
  }
  try {
    writeSync(fd, `${masterKeyMaterial(key).toString("hex")}\n`);
    if (process.platform !== "win32" && (fstatSync(fd).mode & 0o077) !== 0) {
      throw new Error("the new key file did not get mode 0600");
    }
  } finally {
    closeSync(fd);
  }
  return key;
}

function describeFsError(error: unknown): string {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  switch (code) {
    case "ENOENT":
      return "does not exist";
    case "EACCES":
    case "EPERM":
      return "cannot be read: permission denied";
    case "EISDIR":
      return "is a directory, not a key file";
    default:
      return `cannot be read (${code ?? (error instanceof Error ? error.message : String(error))})`;
  }
}
