/**
 * Integrity of a snapshot (`tidemark snapshots verify`, the integrity job): reads back every block
 * or file, which checks each hash as it is read, and recomputes each collection's count, bytes
 * and MD5 against the manifest. Problems name the collection and the first bad block or file.
 */
import { createHash } from "node:crypto";
import type { SnapshotManifest } from "./manifest.js";
import { readCollection, type SnapshotSource } from "./reader.js";

export interface CollectionCheck {
  namespace: string;
  ok: boolean;
  count: number;
  expectedCount: number;
  md5: string | null;
  expectedMd5: string | null;
  problem?: string;
}

export interface SnapshotVerification {
  snapshotId: string;
  ok: boolean;
  collections: CollectionCheck[];
  /** Bytes of documents read back. */
  bytesRead: number;
  /** The first problem found, naming the block or file. */
  firstProblem?: string;
  durationMs: number;
}

export async function verifySnapshot(
  manifest: SnapshotManifest,
  source: SnapshotSource,
  onProgress?: (done: number, total: number) => void,
): Promise<SnapshotVerification> {
  const started = Date.now();
  const collections: CollectionCheck[] = [];
  let bytesRead = 0;
  let firstProblem: string | undefined;
  const total = manifest.collections.reduce((sum, c) => sum + c.bytes, 0);
  if (source.kind === "fs") {
    // The files' own hashes first: names the damaged file even when its data still parses.
    const files = await source.files.verify(manifest.snapshotId);
    // The store's problem messages say what is wrong ("the file's SHA-256 is …"), not which file:
    // the file is named here.
    const problem = files.problems[0];
    if (!files.ok)
      firstProblem = problem
        ? `file ${problem.file}: ${problem.message}`
        : `file ${files.firstBadFile ?? "?"} is damaged`;
  }
  for (const collection of manifest.collections) {
    if (collection.type === "view") continue;
    const md5 = createHash("md5");
    let count = 0;
    let bytes = 0;
    let problem: string | undefined;
    try {
      for await (const doc of readCollection(manifest, collection, source, { checkIdKeys: true })) {
        md5.update(doc);
        count++;
        bytes += doc.length;
        if (count % 10_000 === 0) onProgress?.(bytesRead + bytes, total);
      }
    } catch (error) {
      problem = `${collection.namespace}: ${error instanceof Error ? error.message : String(error)}`;
    }
    bytesRead += bytes;
    const actualMd5 = problem ? null : md5.digest("hex");
    if (!problem && (actualMd5 !== collection.md5 || count !== collection.count)) {
      problem =
        `${collection.namespace}: read back ${count} documents with MD5 ${actualMd5}, ` +
        `the manifest says ${collection.count} with MD5 ${collection.md5}`;
    }
    firstProblem ??= problem;
    collections.push({
      namespace: collection.namespace,
      ok: problem === undefined,
      count,
      expectedCount: collection.count,
      md5: actualMd5,
      expectedMd5: collection.md5,
      ...(problem ? { problem } : {}),
    });
    onProgress?.(bytesRead, total);
  }
  return {
    snapshotId: manifest.snapshotId,
    ok: firstProblem === undefined,
    collections,
    bytesRead,
    ...(firstProblem ? { firstProblem } : {}),
    durationMs: Date.now() - started,
  };
}
