import { MultiBar, Presets } from "cli-progress";
import type { LoadProgress } from "../restore/loader/index.js";

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
