import { randomBytes } from "node:crypto";
import { mkdir, open, rename, unlink } from "node:fs/promises";
import path from "node:path";

/**
 * Temp files are named `<final name>~<random>.tmp`. "~" never appears in a valid key (keys.ts), so
 * a temp file can never collide with or be mistaken for an object, and open() can sweep the
 * leftovers of a crash by name alone.
 */
export function isTempFileName(name: string): boolean {
  return name.includes("~") && name.endsWith(".tmp");
}

function tempPathFor(target: string): string {
  return `${target}~${randomBytes(6).toString("hex")}.tmp`;
}

/** How many times to redo mkdir when a concurrent delete pruned the (empty) directory under us. */
const MKDIR_ATTEMPTS = 5;

/**
 * Writes `data` to `target` so that it is durable when this resolves and no reader ever sees a
 * partial file: write a temp file in the same directory, fsync it, rename it over the target
 * (atomic within one file system), then fsync the directory so the rename itself survives a power
 * loss. Directories this call creates are fsynced in their parents too.
 *
 * On failure the temp file is removed and the original error (ENOSPC, EDQUOT, EIO ...) rethrown
 * for the caller to classify; an existing `target` is left untouched.
 */
export async function writeFileDurably(target: string, data: Buffer): Promise<void> {
  const dir = path.dirname(target);
  for (let attempt = 1; ; attempt++) {
    const created = await mkdir(dir, { recursive: true });
    const temp = tempPathFor(target);
    try {
      await writeAndSync(temp, data);
    } catch (err) {
      if (errnoCode(err) === "ENOENT" && attempt < MKDIR_ATTEMPTS) continue;
      throw err;
    }
    try {
      await rename(temp, target);
    } catch (err) {
      await unlink(temp).catch(() => {});
      throw err;
    }
    await syncDirectories(dir, created);
    return;
  }
}

async function writeAndSync(temp: string, data: Buffer): Promise<void> {
  // "wx": fail rather than share a temp file with another writer (the random suffix makes that unlikely).
  const handle = await open(temp, "wx", 0o644);
  try {
    await handle.writeFile(data);
    await handle.sync();
  } catch (err) {
    await handle.close().catch(() => {});
    await unlink(temp).catch(() => {});
    throw err;
  }
  try {
    await handle.close();
  } catch (err) {
    await unlink(temp).catch(() => {});
    throw err;
  }
}

/** fsyncs `dir`, and if mkdir created directories (`firstCreated` is the topmost), every parent that gained an entry. */
async function syncDirectories(dir: string, firstCreated: string | undefined): Promise<void> {
  const dirs = [dir];
  if (firstCreated !== undefined) {
    const stop = path.dirname(firstCreated);
    for (let d = dir; d !== stop && path.dirname(d) !== d;) {
      d = path.dirname(d);
      dirs.push(d);
    }
  }
  for (const d of dirs) await syncDirectory(d);
}

export async function syncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, "r");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

export function errnoCode(err: unknown): string | undefined {
  return typeof err === "object" && err !== null && "code" in err && typeof err.code === "string"
    ? err.code
    : undefined;
}
