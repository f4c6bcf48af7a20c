import { deserialize, type Document } from "bson";
import { GeneratorSource, type DocumentSource } from "../cursors.js";
import { CommandError, ErrorCode } from "../errors.js";
import type { Deployment } from "../deployment.js";
import type { Collection } from "../storage/collection.js";
import { compileFilter, matchesRaw, type Predicate } from "./matcher.js";
import { extractTsRange, isOplog, scanCollection, type RecordIdRange, type ScanOrder } from "./scan.js";
import { isEmpty, projectDocument, sortDocuments } from "./sortAndProject.js";

export interface FindRequest {
  filter?: Document;
  sort?: Document;
  projection?: Document;
  skip?: number;
  limit?: number;
  tailable?: boolean;
}

/** The scan order a sort asks for, when a scan can produce it without sorting. */
function scanOrderFor(sort: Document | undefined): { order: ScanOrder; direction: 1 | -1 } | undefined {
  if (isEmpty(sort)) return { order: "natural", direction: 1 };
  const entries = Object.entries(sort!);
  if (entries.length !== 1) return undefined;
  const [field, value] = entries[0];
  const direction = Number(value) < 0 ? -1 : 1;
  if (field === "$natural") return { order: "natural", direction };
  if (field === "_id") return { order: "id", direction };
  return undefined;
}

function* skipAndLimit(docs: Iterable<Buffer>, skip: number, limit: number): Generator<Buffer> {
  let skipped = 0;
  let returned = 0;
  if (limit === 0) limit = Infinity;
  for (const doc of docs) {
    if (skipped < skip) {
      skipped++;
      continue;
    }
    if (returned >= limit) return;
    returned++;
    yield doc;
  }
}

function* projected(docs: Iterable<Buffer>, projection: Document | undefined): Generator<Buffer> {
  for (const raw of docs) yield isEmpty(projection) ? raw : projectDocument(deserialize(raw), projection!);
}

/** Documents of `collection` for a find: streamed when the order allows, sorted in memory otherwise. */
export function findDocuments(collection: Collection, request: FindRequest): Generator<Buffer> {
  const skip = request.skip ?? 0;
  const limit = Math.abs(request.limit ?? 0);
  const scanOrder = scanOrderFor(request.sort);
  let docs: Iterable<Buffer>;
  if (scanOrder) {
    docs = scanCollection(collection, { filter: request.filter, ...scanOrder });
  } else {
    const matches = [...scanCollection(collection, { filter: request.filter, order: "natural" })].map(
      (raw) => ({
        raw,
        doc: deserialize(raw),
      }),
    );
    docs = sortDocuments(matches, request.sort!).map((item) => item.raw);
  }
  return projected(skipAndLimit(docs, skip, limit), request.projection);
}

export function findSource(
  deployment: Deployment,
  collection: Collection,
  request: FindRequest,
): DocumentSource {
  if (request.tailable) {
    if (!collection.capped) {
      throw new CommandError(
        ErrorCode.BadValue,
        `error processing query: ${collection.ns} tailable cursor requested on non capped collection`,
      );
    }
    return new TailableSource(deployment, collection, request.filter);
  }
  return new GeneratorSource(findDocuments(collection, request));
}

/**
 * A tailable cursor on a capped collection: remembers the last RecordId it looked at and resumes
 * after it. If the cap deleted that record, the position is lost (CappedPositionLost), as on a
 * real server, rather than silently skipping entries.
 */
export class TailableSource implements DocumentSource {
  readonly tailable = true;
  private lastRecordId: bigint | undefined;
  private readonly range: RecordIdRange;
  private readonly predicate: Predicate | undefined;

  constructor(
    private readonly deployment: Deployment,
    private readonly collection: Collection,
    filter: Document | undefined,
  ) {
    const extracted = isOplog(collection) ? extractTsRange(filter ?? {}) : { rest: filter ?? {} };
    this.range = extracted.range ?? {};
    this.predicate = compileFilter(extracted.rest);
  }

  next(): Buffer | undefined {
    this.assertPositionKept();
    while (true) {
      const record = this.nextRecord();
      if (!record) return undefined;
      const [id, raw] = record;
      const upper = this.range.upper;
      if (upper && (upper.inclusive ? id > upper.id : id >= upper.id)) return undefined;
      this.lastRecordId = id;
      if (matchesRaw(this.predicate, raw)) return raw;
    }
  }

  waitForMore(timeoutMs: number): Promise<void> {
    return this.deployment.oplog.waitForEntryAfter(
      this.deployment.oplog.collection.newestRecordId(),
      timeoutMs,
    );
  }

  private nextRecord(): [bigint, Buffer] | undefined {
    if (this.lastRecordId !== undefined) return this.collection.recordAfter(this.lastRecordId);
    const lower = this.range.lower;
    if (!lower) return this.collection.recordAfter(undefined);
    const first = this.collection.firstRecordAtOrAfter(lower.id);
    if (first && !lower.inclusive && first[0] === lower.id) return this.collection.recordAfter(first[0]);
    return first;
  }

  private assertPositionKept(): void {
    const last = this.lastRecordId;
    if (last === undefined || this.collection.hasRecord(last)) return;
    throw new CommandError(
      ErrorCode.CappedPositionLost,
      `CollectionScan died due to position in capped collection ${this.collection.ns} being deleted. ` +
        `Last seen record id: RecordId(${last})`,
    );
  }
}
