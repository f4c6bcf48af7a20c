import { escapeKeyPart } from "../oplogstore/keys.js";
import type { ServerContext } from "./context.js";

/** Where a slice lives in the oplog store. */
export function sliceStoreKey(
  deploymentId: string,
  generation: number,
  stream: string,
  sequence: number,
): string {
  const safeStream = stream.split("/").map(escapeKeyPart).join("/");
  return `${deploymentId}/g${generation}/${safeStream}/${String(sequence).padStart(10, "0")}.slice`;
}

/**
 * Deletes a deployment's slices from the store and the catalog: all of them, or those of the
 * generations before `keepGeneration` (after a resync). The catalog rows go last, so a crash in
 * between leaves rows pointing at nothing rather than objects nobody knows about.
 */
export async function deleteDeploymentSlices(
  ctx: ServerContext,
  deploymentId: string,
  keepGeneration?: number,
): Promise<void> {
  if (keepGeneration === undefined) {
    await ctx.store.deletePrefix(`${deploymentId}/`);
    ctx.catalog.slices.deleteForDeployment(deploymentId);
    return;
  }
  for (let generation = 0; generation < keepGeneration; generation++) {
    await ctx.store.deletePrefix(`${deploymentId}/g${generation}/`);
  }
  ctx.catalog.slices.deleteOlderGenerations(deploymentId, keepGeneration);
}
