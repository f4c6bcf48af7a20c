/**
 * What a failed read of a snapshot's collection tells a client (the stream trailer's code and
 * block): which check failed and which block or file it was, taken from the error the reader
 * threw. Block stores name the block they read (BlockStoreError.hash), the file system store its
 * file (FsStoreError.file); a block that was read whole but does not decode (BlockError) is named
 * in its message by the first 16 hex digits of its hash, which the collection's runs complete.
 */
import { BlockError, RunError } from "./errors.js";
import { FsStoreError } from "./fsStore/errors.js";
import type { ManifestCollection } from "./manifest.js";
import { BlockStoreError } from "./stores/errors.js";
import { READ_FAILED, type StreamFailure } from "./streamTrailer.js";

/** The trailer's fields for `error`, thrown while reading `collection`'s documents. */
export function readFailure(error: unknown, collection: ManifestCollection): StreamFailure {
  const message = error instanceof Error ? error.message : String(error);
  const failure = (code: string, block: string | undefined): StreamFailure => ({
    code,
    message,
    namespace: collection.namespace,
    block: block ?? null,
  });
  if (error instanceof BlockStoreError) return failure(error.code, error.hash);
  if (error instanceof FsStoreError) return failure(error.code, error.file ?? collection.file);
  if (error instanceof BlockError) return failure(error.code, blockNamedIn(message, collection));
  if (error instanceof RunError) return failure(error.code, undefined);
  return failure(READ_FAILED, undefined);
}

/** The hash of the collection's block whose 16-digit prefix the message names, if exactly one. */
function blockNamedIn(message: string, collection: ManifestCollection): string | undefined {
  const hashes = new Set((collection.runs ?? []).flatMap((run) => run.blocks.map((block) => block.hash)));
  for (const [prefix] of message.matchAll(/\b[0-9a-f]{16,64}\b/g)) {
    const matches = [...hashes].filter((hash) => hash.startsWith(prefix));
    if (matches.length === 1) return matches[0];
  }
  return undefined;
}
