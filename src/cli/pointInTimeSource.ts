/**
 * A deployment at a point in time as the CLI reads it: the server materialises it (a restore job
 * delivered as `stream`: the newest snapshot at or before the target plus the oplog up to it, in a
 * temporary head database), then the CLI reads each collection from the job and deletes the job
 * when done. The target's credentials never reach the server.
 */
import type { RestoreRecord } from "../catalog/restores.js";
import type { RestoreSourceRecord } from "../restore/jobs/index.js";
import type { MaterializeProgress } from "../restore/pointInTime/index.js";
import type { ManifestCollection } from "../snapshot/manifest.js";
import { ApiClient, ApiResponseError, CliError } from "./apiClient.js";
import { streamedDocuments } from "./snapshotSource.js";

/** Exit code of a command that did nothing. */
const EXIT_FAILED = 2;

type RestoreView = Pick<RestoreRecord, "id" | "status" | "progress" | "error"> & {
  source: RestoreSourceRecord;
  result: { ts: { t: number; i: number }; collections: ManifestCollection[] } | null;
};

export interface PointInTimeRequest {
  deployment: string;
  at?: string;
  atTs?: string;
}

export interface PointInTimeSource {
  jobId: string;
  deploymentName: string;
  /** The ts of the newest entry applied: the point restored. */
  ts: { t: number; i: number };
  baseSnapshotId: string;
  collections: ManifestCollection[];
  documentsOf(namespace: string): () => AsyncIterable<Uint8Array>;
  /** Deletes the job (its temporary head database goes with it). */
  release(): Promise<void>;
}

/** One line on a terminal, rewritten in place, while the server materialises the point. */
function progressLine(): { show(p: MaterializeProgress | null): void; stop(): void } {
  if (!process.stderr.isTTY) return { show() {}, stop() {} };
  let shown = false;
  return {
    show(p) {
      if (!p) return;
      const text =
        p.stage === "loading_snapshot"
          ? `loading the snapshot: ${p.collectionsDone}/${p.collections} collections, ${p.documents} documents`
          : `applying the oplog: ${p.slicesDone}/${p.slices} slices, ${p.entriesApplied} entries`;
      process.stderr.write(`\r${text.padEnd(78)}`);
      shown = true;
    },
    stop() {
      if (shown) process.stderr.write("\n");
    },
  };
}

/** Asks the server for the point in time and waits until it is ready to be read. */
export async function openPointInTime(
  api: ApiClient,
  request: PointInTimeRequest,
): Promise<PointInTimeSource> {
  let job: RestoreView;
  try {
    job = await api.request<RestoreView>("POST", "/api/v1/restores", {
      deployment: request.deployment,
      ...(request.at !== undefined ? { at: request.at } : { atTs: request.atTs }),
      delivery: { kind: "stream" },
    });
  } catch (error) {
    // A target out of range, an unknown deployment: nothing was done.
    if (error instanceof ApiResponseError) throw new CliError(error.message, error.hint, EXIT_FAILED);
    throw error;
  }
  const release = async () => {
    await api.request("DELETE", `/api/v1/restores/${job.id}`).catch(() => undefined);
  };
  const progress = progressLine();
  try {
    while (job.status === "queued" || job.status === "materializing") {
      progress.show(job.progress as MaterializeProgress | null);
      await new Promise((resolve) => setTimeout(resolve, 200));
      job = await api.request<RestoreView>("GET", `/api/v1/restores/${job.id}`);
    }
  } catch (error) {
    await release();
    throw error;
  } finally {
    progress.stop();
  }
  if (job.status !== "ready" || !job.result || job.source.kind !== "pointInTime") {
    await release();
    throw new CliError(
      `the server could not materialise ${request.deployment} at ${request.at ?? request.atTs}: ${job.error ?? job.status}`,
      "see the server's log; tidemark restore ranges NAME lists the points that can be restored",
      EXIT_FAILED,
    );
  }
  const { id } = job;
  const source = job.source;
  return {
    jobId: id,
    deploymentName: source.deploymentName,
    ts: job.result.ts,
    baseSnapshotId: source.baseSnapshotId,
    collections: job.result.collections,
    documentsOf: (namespace) => () =>
      streamedDocuments(api, `/api/v1/restores/${id}/collections/${encodeURIComponent(namespace)}`, {
        cut: (error) =>
          new CliError(
            `the server stopped sending ${namespace} of restore ${id}: ${error.message}`,
            "see the server's log, then run the restore again",
            EXIT_FAILED,
          ),
        trailer: (failure) =>
          new CliError(
            `restore ${id}: ${failure.namespace} cannot be read: ${failure.message}`,
            "see the server's log, then run the restore again",
            EXIT_FAILED,
          ),
      }),
    release,
  };
}
