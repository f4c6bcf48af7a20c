import { readdir, stat, unlink } from "node:fs/promises";
import path from "node:path";
import { isTempFileName } from "./durableWrite.js";

export interface SweepResult {
  /** Total size in bytes of the objects (temp files excluded), the start of the store's running total. */
  bytes: number;
  objects: number;
  /** Temp files a crashed put left behind, now removed. */
  removedTempFiles: number;
}

/**
 * Walks the whole store once at open: removes temp files left by a put that crashed before its
 * rename (they were never acknowledged, so the agent will upload those slices again) and adds up
 * the objects' sizes so the `maxBytes` quota can be checked without walking the tree on every put.
 */
export async function sweepStore(root: string): Promise<SweepResult> {
  const result: SweepResult = { bytes: 0, objects: 0, removedTempFiles: 0 };
  const pending = [root];
  while (pending.length > 0) {
    const dir = pending.pop() as string;
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) {
        pending.push(full);
      } else if (entry.isFile() && isTempFileName(entry.name)) {
        await unlink(full);
        result.removedTempFiles++;
      } else if (entry.isFile()) {
        result.bytes += (await stat(full)).size;
        result.objects++;
      }
    }
  }
  return result;
}
