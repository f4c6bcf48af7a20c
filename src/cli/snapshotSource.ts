/** A complete snapshot as the CLI reads it from the server: its manifest, and each collection's documents. */
import type { snapshotView } from "../server/routes/snapshots.js";
import { splitDocuments } from "../snapshot/fsStore/streams.js";
import { parseManifest, type SnapshotManifest } from "../snapshot/manifest.js";
import { ApiClient, CliError } from "./apiClient.js";

type SnapshotView = ReturnType<typeof snapshotView> & { manifest?: unknown };

/** Exit code of a command that did nothing (bad input, a damaged snapshot). */
const EXIT_FAILED = 2;

/** One collection's documents, streamed from the server as raw BSON (the CLI holds the target's credentials, the server never does). */
export function documentsFrom(
  api: ApiClient,
  snapshotId: string,
  namespace: string,
): () => AsyncIterable<Uint8Array> {
  return async function* () {
    const response = await api.stream(
      `/api/v1/snapshots/${encodeURIComponent(snapshotId)}/collections/${encodeURIComponent(namespace)}`,
    );
    if (!response.body) return;
    async function* chunks(): AsyncGenerator<Buffer> {
      try {
        for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>)
          yield Buffer.from(chunk);
      } catch (error) {
        throw new CliError(
          `the server stopped sending ${namespace} of snapshot ${snapshotId}: ${(error as Error).message}`,
          `the snapshot may be damaged: run tidemark snapshots verify ${snapshotId} (the server's log names the block)`,
          EXIT_FAILED,
        );
      }
    }
    yield* splitDocuments(chunks());
  };
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
