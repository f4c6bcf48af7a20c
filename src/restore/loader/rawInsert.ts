/**
 * Inserts documents as their own BSON bytes, as mongorestore does: a restored document is never
 * decoded, so it arrives byte for byte whatever it holds (types, field order, DBPointer,
 * Undefined, repeated names), and the restore does not spend its CPU turning bytes into JS
 * objects and back (that took half of the CLI's time, bench/restore.bench.ts).
 *
 * The driver's public insertMany takes JS objects only. Its own insert path sends the documents
 * it serialized as an OP_MSG document sequence (`DocumentSequence` in its cmap/commands module);
 * this module gives that class the snapshot's bytes and runs the `insert` command with
 * Db.command, so the driver still does connections, authentication, sessions and framing. The
 * class is internal to the driver, so `documentSequenceClass()` checks it is there and behaves as
 * expected, and a restore says so plainly otherwise (package-lock.json pins the driver).
 */
import { createRequire } from "node:module";
import { deserialize, EJSON } from "bson";
import { MongoNetworkError, type Db, type Document } from "mongodb";

interface DocumentSequence {
  push(document: unknown, bytes: Uint8Array): number;
}
type DocumentSequenceClass = new (field: string) => DocumentSequence;

const require = createRequire(import.meta.url);
let sequenceClass: DocumentSequenceClass | undefined;

/** The code of mongod's duplicate key error. */
const DUPLICATE_KEY = 11000;

/** The driver has no document sequence this module can fill (another driver version). */
export class RawInsertUnavailableError extends Error {
  override readonly name = "RawInsertUnavailableError";
  constructor(detail: string) {
    const version = (require("mongodb/package.json") as { version: string }).version;
    super(
      `this restore sends documents as raw BSON through the mongodb driver's document sequence, ` +
        `which the installed driver (mongodb ${version}) does not offer as expected (${detail}); ` +
        "install the version package-lock.json names (npm ci)",
    );
  }
}

/** The driver's DocumentSequence, checked once: it must take a field name and (document, bytes). */
export function documentSequenceClass(): DocumentSequenceClass {
  if (sequenceClass) return sequenceClass;
  let found: unknown;
  try {
    found = (require("mongodb/lib/cmap/commands.js") as { DocumentSequence?: unknown }).DocumentSequence;
  } catch (error) {
    throw new RawInsertUnavailableError(`cannot load its cmap/commands module: ${(error as Error).message}`);
  }
  if (typeof found !== "function") throw new RawInsertUnavailableError("no DocumentSequence class");
  const probe = new (found as DocumentSequenceClass)("documents");
  const bytes = Uint8Array.of(5, 0, 0, 0, 0);
  if (typeof probe.push !== "function" || probe.push(bytes, bytes) !== 1 + 4 + "documents".length + 1 + 5)
    throw new RawInsertUnavailableError("its push(document, bytes) does not add the bytes");
  sequenceClass = found as DocumentSequenceClass;
  return sequenceClass;
}

/** A write the target refused: which document (its `_id`), and why. */
export class RawInsertError extends Error {
  override readonly name = "RawInsertError";
}

function describeId(bytes: Uint8Array | undefined): string {
  if (!bytes) return "";
  try {
    return ` (first failing _id ${EJSON.stringify(deserialize(bytes, { promoteValues: false })._id, { relaxed: false })})`;
  } catch {
    return "";
  }
}

interface WriteError {
  index: number;
  code: number;
  errmsg?: string;
}

/**
 * Checks an insert reply: every document inserted, or (`duplicatesAreOurs`, a batch sent again)
 * already there from the first attempt.
 */
function checkReply(reply: Document, docs: readonly Uint8Array[], duplicatesAreOurs: boolean): void {
  const refused = ((reply.writeErrors ?? []) as WriteError[]).filter(
    (e) => !(duplicatesAreOurs && e.code === DUPLICATE_KEY),
  );
  if (refused.length > 0) {
    const first = refused[0];
    throw new RawInsertError(
      `${refused.length} document(s) were refused${describeId(docs[first.index])}: ${first.errmsg ?? `code ${first.code}`}`,
    );
  }
  if (reply.writeConcernError)
    throw new RawInsertError(
      `write concern failed: ${(reply.writeConcernError as { errmsg?: string }).errmsg}`,
    );
  const present = Number(reply.n ?? 0) + ((reply.writeErrors ?? []) as WriteError[]).length;
  if (present !== docs.length)
    throw new RawInsertError(`the target took ${present} of ${docs.length} documents without saying why`);
}

export interface RawInsertOptions {
  /**
   * After a network error the batch is sent once more, and a duplicate `_id` counts as the first
   * attempt's document. Only sound where the `_id` is unique (not time series).
   */
  retryOnNetworkError?: boolean;
}

/** Inserts `docs` (whole BSON documents) into `db`.`collection`, unordered, without validation. */
export async function insertRawDocuments(
  db: Db,
  collection: string,
  docs: readonly Uint8Array[],
  { retryOnNetworkError = true }: RawInsertOptions = {},
): Promise<void> {
  const Sequence = documentSequenceClass();
  const command = () => {
    const documents = new Sequence("documents");
    for (const bytes of docs) documents.push(bytes, bytes);
    return { insert: collection, documents, ordered: false, bypassDocumentValidation: true };
  };
  let reply: Document;
  try {
    reply = await db.command(command());
  } catch (error) {
    if (!retryOnNetworkError || !(error instanceof MongoNetworkError)) throw error;
    checkReply(await db.command(command()), docs, true);
    return;
  }
  checkReply(reply, docs, false);
}
