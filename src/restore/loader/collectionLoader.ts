/**
 * Creates the collections (with their options; views after what they read from; time series
 * where the target supports them) and loads their documents in batches, several batches of
 * several collections at once, holding only the batches in flight.
 */
import { EJSON, type Document } from "bson";
import type { MongoClient } from "mongodb";
import { LoadError, SourceReadError } from "./errors.js";
import { splitNamespace } from "./namespaceFilter.js";
import { insertRawDocuments } from "./rawInsert.js";
import { Semaphore } from "../semaphore.js";

/** One collection to restore, as a snapshot manifest describes it (plus where its documents are). */
export interface LoaderCollection {
  /** Source namespace `<db>.<collection>`. */
  namespace: string;
  type: "collection" | "view" | "timeseries";
  /** Collection options as canonical Extended JSON (listCollections' `options`). */
  options: Record<string, unknown>;
  /** Index specs as canonical Extended JSON (listIndexes' output). */
  indexes: Array<Record<string, unknown>>;
  /** Expected dbHash MD5 of the documents; null or absent skips verification (views). */
  md5?: string | null;
  /** Expected document count and BSON bytes, for progress totals. */
  count?: number;
  bytes?: number;
  /** The documents as raw BSON, in `_id` order; called once, when the collection's turn comes. */
  documents?: () => AsyncIterable<Uint8Array>;
}

/** A collection with the namespace it goes to. */
export interface PlannedCollection extends LoaderCollection {
  target: string;
}

export interface LoadProgress {
  /** Target namespace. */
  namespace: string;
  source: string;
  documents: number;
  bytes: number;
  totalDocuments?: number;
  totalBytes?: number;
  done: boolean;
}

export type CreateOutcome = { status: "created" } | { status: "skipped"; message: string };

/** Canonical Extended JSON → BSON values with their exact types (Int32 stays Int32...). */
export function fromCanonical(value: Record<string, unknown>): Document {
  return EJSON.deserialize(value, { relaxed: false }) as Document;
}

/**
 * Views after the collections and views they are defined on (when those are restored too), so
 * each create finds its source.
 */
export function creationOrder(plans: readonly PlannedCollection[]): PlannedCollection[] {
  const collections = plans.filter((plan) => plan.type !== "view");
  const views = plans.filter((plan) => plan.type === "view");
  const ordered: PlannedCollection[] = [...collections];
  const placed = new Set(collections.map((plan) => plan.target));
  let pending = views;
  while (pending.length > 0) {
    const ready = pending.filter((view) => {
      const source = viewSourceTarget(view, plans);
      return !views.some((other) => other.target === source) || placed.has(source);
    });
    // A cycle cannot be created anyway; let the target report it.
    const next = ready.length > 0 ? ready : pending;
    for (const view of next) {
      ordered.push(view);
      placed.add(view.target);
    }
    pending = pending.filter((view) => !next.includes(view));
  }
  return ordered;
}

/** The target namespace a view reads from: its source renamed along with it, if restored too. */
function viewSourceTarget(view: PlannedCollection, plans: readonly PlannedCollection[]): string {
  const { db } = splitNamespace(view.namespace);
  const source = `${db}.${String(view.options.viewOn)}`;
  return (
    plans.find((plan) => plan.namespace === source)?.target ??
    `${splitNamespace(view.target).db}.${String(view.options.viewOn)}`
  );
}

/** The create command's options for a plan; a view's `viewOn` follows a renamed source. */
export function createOptions(plan: PlannedCollection, plans: readonly PlannedCollection[]): Document {
  const options = fromCanonical(plan.options);
  if (plan.type === "view") {
    const source = splitNamespace(viewSourceTarget(plan, plans));
    if (source.db === splitNamespace(plan.target).db) options.viewOn = source.collection;
    options.pipeline ??= [];
  }
  return options;
}

/**
 * Creates one collection or view. A time series collection the target does not make a real one
 * of (listCollections does not show type "timeseries", as with the emulator) is dropped again and
 * reported skipped.
 */
export async function createTargetCollection(
  client: MongoClient,
  plan: PlannedCollection,
  plans: readonly PlannedCollection[],
): Promise<CreateOutcome> {
  const { db, collection } = splitNamespace(plan.target);
  const database = client.db(db);
  try {
    await database.command({ create: collection, ...createOptions(plan, plans) });
  } catch (error) {
    if (plan.type === "timeseries") {
      return {
        status: "skipped",
        message: `${plan.target}: the target cannot create time series collections (${(error as Error).message}); skipped`,
      };
    }
    throw new LoadError(plan.target, `cannot create the ${plan.type}: ${(error as Error).message}`, {
      cause: error,
    });
  }
  if (plan.type === "timeseries") {
    const [info] = await database.listCollections({ name: collection }, { nameOnly: true }).toArray();
    if (info?.type !== "timeseries") {
      await database
        .collection(collection)
        .drop()
        .catch(() => {});
      return {
        status: "skipped",
        message:
          `${plan.target}: the target does not support time series collections ` +
          `(it made a ${String(info?.type ?? "nothing")} of it); skipped`,
      };
    }
  }
  return { status: "created" };
}

export interface DocumentLoadOptions {
  /** Batches (of any collections) written at once, and collections read at once. Default 4. */
  parallel?: number;
  /** A batch is sent when it reaches this many bytes of BSON. Default 256 KiB (DEFAULT_BATCH_BYTES). */
  batchBytes?: number;
  /** ...or this many documents (at most 100,000, mongod's maxWriteBatchSize). Default 100,000. */
  batchCount?: number;
  onProgress?: (progress: LoadProgress) => void;
}

export interface LoadedCounts {
  documents: number;
  bytes: number;
}

/**
 * Bytes of documents per insert. Batches in flight are what the loader holds (with --parallel 4,
 * about 1 MiB); 256 KiB is as fast as larger batches against the target.
 */
export const DEFAULT_BATCH_BYTES = 256 * 1024;
export const MAX_BATCH_COUNT = 100_000;

/**
 * The next of the plan's documents (undefined at the end); an error of the source's becomes a
 * SourceReadError naming the collection. Called by hand rather than wrapped in another generator:
 * that would be one more step for every document.
 */
async function nextDocument(
  plan: PlannedCollection,
  documents: AsyncIterator<Uint8Array>,
): Promise<Uint8Array | undefined> {
  try {
    const next = await documents.next();
    return next.done ? undefined : next.value;
  } catch (error) {
    throw new SourceReadError(plan.namespace, { cause: error });
  }
}

/**
 * Loads the documents of every plan that has some. Memory holds at most `parallel` batches being
 * written plus one being filled per collection being read (at most `parallel` of them). Capped
 * collections load one batch at a time so their natural order is the source's order.
 *
 * `onCollectionLoaded` runs once all of a collection's documents are written, before its worker
 * takes the next collection (a restore builds the indexes there, so that each collection is
 * complete as early as it can be, and an interrupted restore leaves as many complete as it can);
 * its error stops the load like any other.
 */
export async function loadDocuments(
  client: MongoClient,
  plans: readonly PlannedCollection[],
  options: DocumentLoadOptions = {},
  onCollectionLoaded?: (plan: PlannedCollection, loaded: LoadedCounts) => Promise<void>,
): Promise<Map<string, LoadedCounts>> {
  const parallel = Math.max(1, Math.floor(options.parallel ?? 4));
  const batchBytes = Math.max(1, options.batchBytes ?? DEFAULT_BATCH_BYTES);
  const batchCount = Math.min(
    MAX_BATCH_COUNT,
    Math.max(1, Math.floor(options.batchCount ?? MAX_BATCH_COUNT)),
  );
  const writes = new Semaphore(parallel);
  const counts = new Map<string, LoadedCounts>();
  const queue = plans.filter((plan) => plan.type !== "view" && plan.documents);
  let failure: unknown;

  const report = (plan: PlannedCollection, done: boolean) => {
    const loaded = counts.get(plan.target)!;
    options.onProgress?.({
      namespace: plan.target,
      source: plan.namespace,
      documents: loaded.documents,
      bytes: loaded.bytes,
      totalDocuments: plan.count,
      totalBytes: plan.bytes,
      done,
    });
  };

  async function loadOne(plan: PlannedCollection): Promise<void> {
    const { db, collection } = splitNamespace(plan.target);
    const database = client.db(db);
    const loaded: LoadedCounts = { documents: 0, bytes: 0 };
    counts.set(plan.target, loaded);
    const inFlight = new Set<Promise<void>>();
    const capped = fromCanonical(plan.options).capped === true;
    // A batch sent again after a network error counts duplicate `_id`s as its own first attempt's:
    // sound where `_id` is unique, which a time series collection does not promise.
    const retryOnNetworkError = plan.type !== "timeseries";

    const send = async (docs: Uint8Array[], bytes: number) => {
      const release = await writes.acquire();
      const write = (async () => {
        try {
          if (failure) return;
          await insertRawDocuments(database, collection, docs, { retryOnNetworkError });
          loaded.documents += docs.length;
          loaded.bytes += bytes;
          report(plan, false);
        } catch (error) {
          failure ??= new LoadError(plan.target, `inserting documents failed: ${(error as Error).message}`, {
            cause: error,
          });
        } finally {
          release();
        }
      })();
      inFlight.add(write);
      void write.finally(() => inFlight.delete(write));
      if (capped) await write;
    };

    const documents = plan.documents!()[Symbol.asyncIterator]();
    let ended = false;
    try {
      let docs: Uint8Array[] = [];
      let bytes = 0;
      while (!failure) {
        const raw = await nextDocument(plan, documents);
        if (raw === undefined) {
          ended = true;
          break;
        }
        if (docs.length > 0 && (bytes + raw.byteLength > batchBytes || docs.length >= batchCount)) {
          await send(docs, bytes);
          docs = [];
          bytes = 0;
        }
        docs.push(raw);
        bytes += raw.byteLength;
      }
      if (docs.length > 0 && !failure) await send(docs, bytes);
    } catch (error) {
      failure ??= error;
    } finally {
      // Stopped early (a failure): let the source close its stream or file.
      if (!ended) await documents.return?.().catch(() => {});
      await Promise.all(inFlight);
    }
    if (failure) return;
    report(plan, true);
    try {
      await onCollectionLoaded?.(plan, loaded);
    } catch (error) {
      failure ??= error;
    }
  }

  let next = 0;
  const worker = async () => {
    while (!failure && next < queue.length) await loadOne(queue[next++]);
  };
  await Promise.all(Array.from({ length: Math.min(parallel, queue.length) }, worker));
  if (failure) throw failure;
  return counts;
}
