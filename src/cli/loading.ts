import { MultiBar, Presets } from "cli-progress";
import { TargetConnectionError, TargetNamespacesExistError } from "../restore/loader/errors.js";
import type { LoadProgress } from "../restore/loader/index.js";
import { CliError } from "./apiClient.js";

/** Exit code of `restore` and `import` when nothing (or not all) was loaded. */
export const EXIT_NOT_LOADED = 2;

/**
 * A loader error as `restore` and `import` say it. `existsHint` is the command's way around
 * namespaces that exist already; `what` names the load in the generic message.
 */
export function loadFailure(error: unknown, what: string, existsHint: string): CliError {
  if (error instanceof CliError) return error;
  if (error instanceof TargetNamespacesExistError)
    return new CliError(error.message, existsHint, EXIT_NOT_LOADED);
  if (error instanceof TargetConnectionError)
    return new CliError(
      error.message,
      "check the --to URI, the network and the credentials",
      EXIT_NOT_LOADED,
    );
  return new CliError(
    `${what} failed: ${(error as Error).message}`,
    "rerun with --drop once the cause is fixed",
    EXIT_NOT_LOADED,
  );
}

/** A bar per collection being loaded (restore, import), on a terminal only; nothing otherwise. */
export function collectionProgressBars(): { onProgress?: (p: LoadProgress) => void; stop(): void } {
  if (!process.stderr.isTTY) return { stop() {} };
  const bars = new MultiBar(
    { format: "{namespace} {bar} {value}/{total} documents", stream: process.stderr, clearOnComplete: false },
    Presets.shades_classic,
  );
  const byNamespace = new Map<string, ReturnType<MultiBar["create"]>>();
  return {
    onProgress(p) {
      let bar = byNamespace.get(p.namespace);
      if (!bar) {
        bar = bars.create(p.totalDocuments ?? 0, 0, { namespace: p.namespace });
        byNamespace.set(p.namespace, bar);
      }
      // A dump does not say how many documents it holds: the total follows what was read.
      if (p.documents > bar.getTotal()) bar.setTotal(p.documents);
      bar.update(p.documents, { namespace: p.namespace });
    },
    stop: () => bars.stop(),
  };
}
