/**
 * The restore loader: writes snapshot collections into a target deployment through the official
 * driver. In order: connect and preflight (nothing is written if a namespace exists and `drop`
 * is not given), create collections with their options, then views, load documents byte for
 * byte in parallel raw batches (rawInsert.ts), build each collection's indexes once its documents
 * are in, and compare the target's dbHash with the expected MD5s. A failure after the first write is a
 * RestoreInterruptedError saying which namespaces are complete.
 */
import type { MongoClient } from "mongodb";
import {
  createTargetCollection,
  creationOrder,
  loadDocuments,
  type DocumentLoadOptions,
  type LoaderCollection,
  type PlannedCollection,
} from "./collectionLoader.js";
import { RestoreInterruptedError } from "./errors.js";
import { buildIndexes } from "./indexBuilder.js";
import { createNamespaceFilter, splitNamespace } from "./namespaceFilter.js";
import { connectTarget, preflightTarget, type ConnectOptions } from "./targetPreflight.js";
import { documentSequenceClass } from "./rawInsert.js";
import { isVerifiedByDbHash, verifyTarget, type VerifyResult } from "./targetVerify.js";

export * from "./errors.js";
export * from "./namespaceFilter.js";
export { connectTarget, existingNamespaces, preflightTarget, redactUri } from "./targetPreflight.js";
export type { ConnectOptions, PreflightOptions } from "./targetPreflight.js";
export {
  createOptions,
  createTargetCollection,
  creationOrder,
  DEFAULT_BATCH_BYTES,
  fromCanonical,
  loadDocuments,
  MAX_BATCH_COUNT,
} from "./collectionLoader.js";
export type {
  CreateOutcome,
  DocumentLoadOptions,
  LoadedCounts,
  LoaderCollection,
  LoadProgress,
  PlannedCollection,
} from "./collectionLoader.js";
export { buildIndexes, indexSpecsToBuild } from "./indexBuilder.js";
export { loaderCollectionOf } from "./fromManifest.js";
export { verifyTarget } from "./targetVerify.js";
export type { VerifyExpectation, VerifyResult } from "./targetVerify.js";
export { RawInsertError, RawInsertUnavailableError } from "./rawInsert.js";

export interface PlanOptions {
  /** mongorestore-style `*` patterns over source namespaces (--nsInclude / --nsExclude). */
  include?: readonly string[];
  exclude?: readonly string[];
  /** Source namespace → target namespace (--nsFrom / --nsTo; see createNamespaceRenamer). */
  rename?: (namespace: string) => string;
}

/**
 * The collections to restore and where each goes. `system.views` is never loaded as data: views
 * are created from their definitions.
 */
export function planRestore(
  collections: readonly LoaderCollection[],
  options: PlanOptions = {},
): PlannedCollection[] {
  const selected = createNamespaceFilter(options);
  return collections
    .filter((collection) => splitNamespace(collection.namespace).collection !== "system.views")
    .filter((collection) => selected(collection.namespace))
    .map((collection) => {
      const target = options.rename ? options.rename(collection.namespace) : collection.namespace;
      splitNamespace(target);
      return { ...collection, target };
    });
}

export interface LoaderOptions extends PlanOptions, DocumentLoadOptions, ConnectOptions {
  /** Target deployment; ignored when `client` is given. */
  uri?: string;
  /** An already connected client to use (not closed at the end). */
  client?: MongoClient;
  collections: readonly LoaderCollection[];
  /** Drop target namespaces that exist instead of refusing. */
  drop?: boolean;
  /** Compare the target's dbHash with each collection's MD5 at the end (default true). */
  verify?: boolean;
  /** Messages worth showing (skipped collections, drops). */
  log?: (line: string) => void;
}

export interface CollectionResult {
  source: string;
  namespace: string;
  type: LoaderCollection["type"];
  status: "restored" | "skipped";
  message?: string;
  documents: number;
  bytes: number;
  indexes: string[];
}

export interface LoadResult {
  collections: CollectionResult[];
  /** Target namespaces that existed and were dropped. */
  dropped: string[];
  verification: VerifyResult[];
  /** Every verified collection matched. */
  verified: boolean;
}

/**
 * Restores `collections` into the target; see the module comment for the steps. Refusals before
 * anything is written (unreachable target, existing namespaces) are thrown as they are; any
 * failure after is thrown as a RestoreInterruptedError whose `cause` it is.
 */
export async function loadCollections(options: LoaderOptions): Promise<LoadResult> {
  const plans = planRestore(options.collections, options);
  // Before connecting: a driver without what the raw inserts need fails here, not mid-restore.
  documentSequenceClass();
  const log = options.log ?? (() => {});
  let client = options.client;
  const ownClient = !client;
  if (!client) {
    if (!options.uri) throw new Error("loadCollections: give a target uri or client");
    client = await connectTarget(options.uri, options);
  }
  try {
    const dropped = await preflightTarget(
      client,
      plans.map((plan) => plan.target),
      { drop: options.drop },
    );
    for (const namespace of dropped) log(`dropped ${namespace}`);

    const results = new Map<string, CollectionResult>();
    const completed = new Set<string>();
    try {
      const { collections, verification, verified } = await loadPlans(
        client,
        plans,
        options,
        results,
        completed,
      );
      return { collections, dropped, verification, verified };
    } catch (error) {
      throw new RestoreInterruptedError(progressSummary(plans, results, completed), error);
    }
  } finally {
    if (ownClient) await client.close();
  }
}

/**
 * Which planned namespaces are complete and which are not. A skipped one (a time series the target
 * cannot create) is neither: a rerun skips it again.
 */
function progressSummary(
  plans: readonly PlannedCollection[],
  results: ReadonlyMap<string, CollectionResult>,
  completed: ReadonlySet<string>,
) {
  const incomplete = plans.filter(
    (plan) => !completed.has(plan.target) && results.get(plan.target)?.status !== "skipped",
  );
  return {
    completed: plans.filter((plan) => completed.has(plan.target)).map((plan) => plan.target),
    incomplete: incomplete.map((plan) => plan.target),
    incompleteSources: incomplete.map((plan) => plan.namespace),
  };
}

/**
 * Creates, loads, indexes and verifies, recording each collection's result in `results` and each
 * namespace in `completed` as soon as it is (a view once created, a collection once its documents
 * and indexes are in).
 */
async function loadPlans(
  client: MongoClient,
  plans: readonly PlannedCollection[],
  options: LoaderOptions,
  results: Map<string, CollectionResult>,
  completed: Set<string>,
): Promise<Omit<LoadResult, "dropped">> {
  const log = options.log ?? (() => {});
  for (const plan of creationOrder(plans)) {
    const outcome = await createTargetCollection(client, plan, plans);
    if (outcome.status === "skipped") log(outcome.message);
    results.set(plan.target, {
      source: plan.namespace,
      namespace: plan.target,
      type: plan.type,
      status: outcome.status === "created" ? "restored" : "skipped",
      message: outcome.status === "skipped" ? outcome.message : undefined,
      documents: 0,
      bytes: 0,
      indexes: [],
    });
    if (plan.type === "view" && outcome.status === "created") completed.add(plan.target);
  }
  const toLoad = plans.filter((plan) => results.get(plan.target)!.status === "restored");
  const finish = async (plan: PlannedCollection) => {
    results.get(plan.target)!.indexes = await buildIndexes(client, plan);
    completed.add(plan.target);
  };
  const counts = await loadDocuments(client, toLoad, options, finish);
  for (const [namespace, loaded] of counts) Object.assign(results.get(namespace)!, loaded);
  // Views, and collections given no documents to read, are not finished by the load above.
  for (const plan of toLoad) if (plan.type !== "view" && !completed.has(plan.target)) await finish(plan);

  let verification: VerifyResult[] = [];
  if (options.verify !== false) {
    // A time series collection's documents are bucketed by the target, so its dbHash (over
    // the buckets) cannot be compared with the measurements' MD5.
    for (const plan of toLoad)
      if (plan.type === "timeseries") log(`${plan.target}: time series collection, not verified by dbHash`);
    const expectations = toLoad
      .filter(isVerifiedByDbHash)
      .map((plan) => ({ namespace: plan.target, md5: plan.md5! }));
    verification = await verifyTarget(client, expectations);
  }
  return {
    collections: plans.map((plan) => results.get(plan.target)!),
    verification,
    verified: verification.every((result) => result.match),
  };
}
