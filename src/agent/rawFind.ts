import { Long, type ClientSession, type Document, type MongoClient } from "mongodb";
import { elements } from "../bson/elements.js";

export interface RawFindOptions {
  filter: Document;
  sort?: Document;
  hint?: Document;
  /**
   * Documents per batch. Default: the server's first batch (101 documents), then batches of about
   * `batchBytes`, sized from the documents seen so far.
   */
  batchSize?: number;
  /** Bytes per batch to aim for when batchSize is not given (default 8 MiB; servers stop at 16). */
  batchBytes?: number;
  /** Aborts the command in flight. */
  signal?: AbortSignal;
}

const DEFAULT_BATCH_BYTES = 8 * 1024 * 1024;
const BSON_INT64 = 0x12;
const BSON_DOCUMENT = 0x03;
const BSON_ARRAY = 0x04;

/**
 * A find cursor that hands out whole batches of raw documents, as views into the server's reply.
 * The driver's cursor makes an object per document (and parses each one's fields); here `find`
 * and `getMore` run as plain commands whose replies stay raw BSON, and a batch is only walked for
 * where its documents lie, which makes reading about three times cheaper.
 *
 * As soon as a batch is handed out, the getMore for the next one is sent, so the server prepares
 * it while the caller works (the caller must yield to the event loop now and then for the request
 * to go out). At most two replies are held: the batch being worked on and the one on its way, of
 * about `batchBytes` each (a single document can be larger). The commands run on an explicit
 * session (a getMore must come from the session that opened the cursor) and on the primary, the
 * server that holds the cursor.
 */
export class RawFindCursor {
  private readonly session: ClientSession;
  private started = false;
  private closed = false;
  /** The server's cursor id once known; zero when it is exhausted. */
  private cursorId: Long | undefined;
  private next: Promise<Document> | undefined;

  constructor(
    private readonly client: MongoClient,
    private readonly db: string,
    private readonly collection: string,
    private readonly options: RawFindOptions,
  ) {
    this.session = client.startSession({ causalConsistency: false });
  }

  /** The next batch of documents (views into the reply), or undefined once the cursor is done or closed. */
  async nextBatch(): Promise<Buffer[] | undefined> {
    if (this.closed) return undefined;
    let reply: Document;
    let field: string;
    if (!this.started) {
      this.started = true;
      reply = await this.command({
        find: this.collection,
        filter: this.options.filter,
        ...(this.options.sort ? { sort: this.options.sort } : {}),
        ...(this.options.hint ? { hint: this.options.hint } : {}),
        ...(this.options.batchSize ? { batchSize: this.options.batchSize } : {}),
      });
      field = "firstBatch";
    } else {
      if (!this.next) return undefined;
      const pending = this.next;
      this.next = undefined;
      reply = await pending;
      field = "nextBatch";
    }
    if (this.closed) return undefined;
    const { id, documents } = readCursorReply(reply, field);
    this.cursorId = id;
    if (!id.isZero()) {
      this.next = this.command({
        getMore: id,
        collection: this.collection,
        batchSize: this.options.batchSize ?? this.nextBatchSize(documents),
      });
      // Awaited by the next call; until then a failure must not count as unhandled.
      this.next.catch(() => {});
    }
    return documents;
  }

  /** Documents in about `batchBytes`, at the average size of the batch just read. */
  private nextBatchSize(batch: Buffer[]): number {
    const bytes = batch.reduce((sum, doc) => sum + doc.length, 0);
    const average = batch.length > 0 ? bytes / batch.length : 1024;
    return Math.max(1, Math.floor((this.options.batchBytes ?? DEFAULT_BATCH_BYTES) / average));
  }

  /** Kills the server's cursor if it is still open (best effort) and ends the session. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const pending = this.next;
    this.next = undefined;
    if (pending) {
      // The getMore on its way may have moved the cursor on, or ended it.
      try {
        this.cursorId = readCursorReply(await pending, "nextBatch").id;
      } catch {
        // It failed: the cursor is gone (or the connection is, and the server reaps it).
        this.cursorId = undefined;
      }
    }
    const id = this.cursorId;
    if (id && !id.isZero()) {
      await this.client
        .db(this.db)
        .command({ killCursors: this.collection, cursors: [id] }, { session: this.session })
        .catch(() => {});
    }
    await this.session.endSession().catch(() => {});
  }

  private command(command: Document): Promise<Document> {
    return this.client.db(this.db).command(command, {
      session: this.session,
      raw: true,
      ...(this.options.signal ? { signal: this.options.signal } : {}),
    });
  }
}

/** The cursor id and the documents of a find/getMore reply whose `cursor` was left raw. */
export function readCursorReply(reply: Document, batchField: string): { id: Long; documents: Buffer[] } {
  const cursor = reply.cursor as unknown;
  if (!(cursor instanceof Uint8Array)) throw new Error("the reply has no cursor document");
  const view = Buffer.from(cursor.buffer, cursor.byteOffset, cursor.byteLength);
  let id: Long | undefined;
  let documents: Buffer[] | undefined;
  for (const element of elements(view)) {
    if (element.name === "id" && element.type === BSON_INT64) {
      id = new Long(view.readInt32LE(element.valueStart), view.readInt32LE(element.valueStart + 4));
    } else if (element.name === batchField && element.type === BSON_ARRAY) {
      documents = arrayDocuments(view, element.valueStart);
    }
  }
  if (id === undefined || documents === undefined) {
    throw new Error(`the reply's cursor has no id or no ${batchField}`);
  }
  return { id, documents };
}

/** The documents of the BSON array at `start`, as views; walked by length prefixes, no names decoded. */
function arrayDocuments(bytes: Buffer, start: number): Buffer[] {
  const end = start + bytes.readInt32LE(start);
  const documents: Buffer[] = [];
  let pos = start + 4;
  while (pos < end - 1) {
    const type = bytes[pos];
    const nameEnd = bytes.indexOf(0, pos + 1);
    if (type !== BSON_DOCUMENT || nameEnd < 0 || nameEnd >= end) {
      throw new Error(`malformed cursor batch at offset ${pos}: not a document`);
    }
    const docStart = nameEnd + 1;
    const docEnd = docStart + bytes.readInt32LE(docStart);
    if (docEnd > end) throw new Error(`malformed cursor batch at offset ${pos}: a document overruns it`);
    documents.push(bytes.subarray(docStart, docEnd));
    pos = docEnd;
  }
  return documents;
}
