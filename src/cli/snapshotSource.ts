/** A complete snapshot as the CLI reads it from the server: its manifest, and each collection's documents. */
import type { snapshotView } from "../server/routes/snapshots.js";
import { parseManifest, type SnapshotManifest } from "../snapshot/manifest.js";
import {
  documentBatchesUntilTrailer,
  READ_FAILED,
  StreamFailureError,
  type StreamFailure,
} from "../snapshot/streamTrailer.js";
import { ApiClient, CliError } from "./apiClient.js";

type SnapshotView = ReturnType<typeof snapshotView> & { manifest?: unknown };

/** Exit code of a command that did nothing (bad input, a damaged snapshot). */
const EXIT_FAILED = 2;

/** How a failed collection download is told: a cut without trailer, and the server's trailer. */
export interface DownloadErrors {
  cut: (error: Error) => CliError;
  trailer: (failure: StreamFailure) => CliError;
}

/** Raw BSON documents streamed from `path` on the server, ending at the error trailer if one comes. */
export async function* streamedDocuments(
  api: ApiClient,
  path: string,
  errors: DownloadErrors,
): AsyncGenerator<Buffer> {
  const response = await api.stream(path);
  if (!response.body) return;
  async function* chunks(): AsyncGenerator<Buffer> {
    try {
      // A view, not a copy: each chunk is the response's own, fresh from the socket.
      for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>)
        yield Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    } catch (error) {
      // Cut without a trailer: the connection dropped, or the server stopped before it could say why.
      throw errors.cut(error as Error);
    }
  }
  try {
    // One step per document in all (the loader's own): batches below, not generators in a row.
    for await (const documents of documentBatchesUntilTrailer(chunks()))
      for (const document of documents) yield document;
  } catch (error) {
    if (error instanceof StreamFailureError) throw errors.trailer(error.failure);
    throw error;
  }
}

/** One collection's documents, streamed from the server as raw BSON (the CLI holds the target's credentials, the server never does). */
export function documentsFrom(
  api: ApiClient,
  snapshotId: string,
  namespace: string,
): () => AsyncIterable<Uint8Array> {
  const path = `/api/v1/snapshots/${encodeURIComponent(snapshotId)}/collections/${encodeURIComponent(namespace)}`;
  return () =>
    streamedDocuments(api, path, {
      cut: (error) =>
        new CliError(
          `the server stopped sending ${namespace} of snapshot ${snapshotId}: ${error.message}`,
          `the snapshot may be damaged: run tidemark snapshots verify ${snapshotId} (the server's log names the block)`,
          EXIT_FAILED,
        ),
      trailer: (failure) => unreadableSnapshot(snapshotId, failure),
    });
}

/** The server's trailer as the person restoring reads it: which block of which namespace, and what now. */
function unreadableSnapshot(snapshotId: string, failure: StreamFailure): CliError {
  const where = failure.block === null ? failure.namespace : `block ${failure.block} of ${failure.namespace}`;
  // A store the server cannot reach right now is not damage: the same restore works later.
  if (failure.code === "UNAVAILABLE")
    return new CliError(
      `snapshot ${snapshotId}: ${where} cannot be read now: ${failure.message}`,
      "the server cannot reach its snapshot store; restore again (with --drop) once it can",
      EXIT_FAILED,
    );
  if (failure.code === READ_FAILED || failure.code === "IO")
    return new CliError(
      `snapshot ${snapshotId}: ${where} cannot be read: ${failure.message}`,
      `the server's log has the details; run tidemark snapshots verify ${snapshotId}`,
      EXIT_FAILED,
    );
  // Every other code is a check of the stored bytes that failed (hash, framing, decoding, a missing block).
  return new CliError(
    `snapshot ${snapshotId}: ${where} is damaged: ${failure.message}`,
    `run tidemark snapshots verify ${snapshotId}; restore from another snapshot`,
    EXIT_FAILED,
  );
}

/** The manifest of a complete snapshot; `what` names the command for the error ("restored", "exported"). */
export async function completeSnapshotManifest(
  api: ApiClient,
  snapshotId: string,
  what: string,
): Promise<SnapshotManifest> {
  const view = await api.request<SnapshotView>(
    "GET",
    `/api/v1/snapshots/${encodeURIComponent(snapshotId)}?manifest=true`,
  );
  if (view.status !== "complete")
    throw new CliError(
      `snapshot ${view.id} is ${view.status}; only a complete snapshot can be ${what}`,
      undefined,
      EXIT_FAILED,
    );
  return parseManifest(view.manifest, view.id);
}
