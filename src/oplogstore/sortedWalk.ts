import type { Dirent } from "node:fs";
import { readdir, stat } from "node:fs/promises";
import path from "node:path";
import { errnoCode, isTempFileName } from "./durableWrite.js";
import type { StoredObject } from "./oplogStore.js";

/**
 * Lists the files under `root` whose key (path relative to root, "/"-separated) starts with
 * `prefix`, in key byte order, as S3 lists objects.
 *
 * A plain depth-first walk with sorted directory entries is NOT key order: for "a.b" and the
 * directory "a" (holding "a/b"), readdir order gives "a/b" first, but "." < "/" so the key "a.b"
 * sorts first. Sorting each directory's entries with "/" appended to directory names fixes that:
 * every key under directory "a" starts with "a/", so comparing "a/" with file names orders whole
 * keys correctly. Keys are ASCII (keys.ts), so JavaScript's UTF-16 comparison is byte order.
 *
 * Memory is one directory listing per level, never the whole store. Temp files are skipped.
 */
export async function* walkSorted(root: string, prefix: string): AsyncGenerator<StoredObject> {
  const slash = prefix.lastIndexOf("/");
  const dirKey = prefix.slice(0, slash + 1); // "" or "dep/oplog/"
  const namePrefix = prefix.slice(slash + 1);
  yield* walkDirectory(path.join(root, ...dirKey.split("/").filter(Boolean)), dirKey, namePrefix);
}

async function* walkDirectory(
  dir: string,
  keyPrefix: string,
  namePrefix: string,
): AsyncGenerator<StoredObject> {
  let entries: Dirent[];
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch (err) {
    // The prefix's directory does not exist (or is a file): nothing matches.
    if (errnoCode(err) === "ENOENT" || errnoCode(err) === "ENOTDIR") return;
    throw err;
  }
  const sorted = entries
    .filter(
      (e) => (e.isFile() || e.isDirectory()) && e.name.startsWith(namePrefix) && !isTempFileName(e.name),
    )
    .map((e) => ({ entry: e, sortName: e.isDirectory() ? `${e.name}/` : e.name }))
    .sort((a, b) => (a.sortName < b.sortName ? -1 : a.sortName > b.sortName ? 1 : 0));

  for (const { entry } of sorted) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) {
      yield* walkDirectory(full, `${keyPrefix}${entry.name}/`, "");
      continue;
    }
    try {
      const info = await stat(full);
      yield { key: `${keyPrefix}${entry.name}`, size: info.size };
    } catch (err) {
      // Deleted since readdir: a concurrent delete wins, as it would in S3.
      if (errnoCode(err) !== "ENOENT") throw err;
    }
  }
}
