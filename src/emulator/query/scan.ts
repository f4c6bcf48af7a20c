import { Timestamp, type Document } from "bson";
import { recordIdOf } from "../oplog/clock.js";
import { OPLOG_COLLECTION, OPLOG_DB } from "../oplog/oplog.js";
import type { Collection } from "../storage/collection.js";
import { extractKeyRange, inRange, withinUpper, type KeyRange } from "./keyRange.js";
import { compileFilter, matchesRaw } from "./matcher.js";

export type ScanOrder = "natural" | "id";

export interface ScanRequest {
  filter?: Document;
  /** 1 or -1 along `order`. */
  direction?: 1 | -1;
  order: ScanOrder;
}

/** Bounds on the oplog's RecordId (its ts), from a filter on `ts`. */
export interface RecordIdRange {
  lower?: { id: bigint; inclusive: boolean };
  upper?: { id: bigint; inclusive: boolean };
}

export function isOplog(collection: Collection): boolean {
  return collection.db === OPLOG_DB && collection.name === OPLOG_COLLECTION;
}

/**
 * On the oplog, comparisons on `ts` become RecordId bounds: mingo cannot order Timestamps, and
 * seeking is what makes tailing from a resume point cheap.
 */
export function extractTsRange(filter: Document): { range?: RecordIdRange; rest: Document } {
  const condition = filter.ts as unknown;
  if (condition instanceof Timestamp) {
    const { ts: _ts, ...rest } = filter;
    const id = recordIdOf(condition);
    return { range: { lower: { id, inclusive: true }, upper: { id, inclusive: true } }, rest };
  }
  if (typeof condition !== "object" || condition === null) return { rest: filter };
  const ops = Object.entries(condition as Document);
  if (
    !ops.every(
      ([op, value]) => ["$gt", "$gte", "$lt", "$lte", "$eq"].includes(op) && value instanceof Timestamp,
    )
  ) {
    return { rest: filter };
  }
  const range: RecordIdRange = {};
  for (const [op, value] of ops) {
    const id = recordIdOf(value as Timestamp);
    if (op === "$eq") {
      range.lower = { id, inclusive: true };
      range.upper = { id, inclusive: true };
    } else if (op.startsWith("$gt")) range.lower = { id, inclusive: op === "$gte" };
    else range.upper = { id, inclusive: op === "$lte" };
  }
  const { ts: _ts, ...rest } = filter;
  return { range, rest };
}

/**
 * The documents of a collection that match `filter`, lazily, in natural or `_id` order. Equality
 * and ranges on `_id` (and on `ts` in the oplog) seek instead of scanning everything.
 */
export function* scanCollection(collection: Collection, request: ScanRequest): Generator<Buffer> {
  const direction = request.direction ?? 1;
  let filter = request.filter ?? {};
  if (isOplog(collection) && request.order === "natural") {
    const extracted = extractTsRange(filter);
    filter = extracted.rest;
    const predicate = compileFilter(filter);
    yield* scanOplogRange(collection, extracted.range ?? {}, direction, predicate);
    return;
  }
  const extracted = extractKeyRange(filter, "_id");
  const predicate = compileFilter(extracted.rest);
  if (extracted.range) {
    yield* scanIdRange(collection, extracted.range, direction, predicate);
    return;
  }
  const records =
    request.order === "id"
      ? direction === 1
        ? collection.scanById()
        : collection.scanByIdReverse()
      : direction === 1
        ? collection.scanNatural()
        : collection.scanNaturalReverse();
  for (const [, raw] of records) if (matchesRaw(predicate, raw)) yield raw;
}

function* scanIdRange(
  collection: Collection,
  range: KeyRange,
  direction: 1 | -1,
  predicate: ReturnType<typeof compileFilter>,
): Generator<Buffer> {
  if (range.points) {
    const points = direction === 1 ? range.points : [...range.points].reverse();
    for (const key of points) {
      if (!inRange(range, key)) continue;
      const raw = collection.getById(key);
      if (raw && matchesRaw(predicate, raw)) yield raw;
    }
    return;
  }
  if (direction === -1) {
    for (const [key, raw] of collection.scanByIdReverse())
      if (inRange(range, key) && matchesRaw(predicate, raw)) yield raw;
    return;
  }
  const start = range.lower;
  if (start?.inclusive) {
    const exact = collection.getById(start.key);
    if (exact && withinUpper(range, start.key) && matchesRaw(predicate, exact)) yield exact;
  }
  for (const [key, raw] of collection.scanById(start?.key)) {
    if (!inRange(range, key)) {
      if (!withinUpper(range, key)) break;
      continue;
    }
    if (matchesRaw(predicate, raw)) yield raw;
  }
}

function* scanOplogRange(
  collection: Collection,
  range: RecordIdRange,
  direction: 1 | -1,
  predicate: ReturnType<typeof compileFilter>,
): Generator<Buffer> {
  const aboveLower = (id: bigint) =>
    !range.lower || (range.lower.inclusive ? id >= range.lower.id : id > range.lower.id);
  const belowUpper = (id: bigint) =>
    !range.upper || (range.upper.inclusive ? id <= range.upper.id : id < range.upper.id);
  if (direction === -1) {
    for (const [id, raw] of collection.scanNaturalReverse()) {
      if (!aboveLower(id)) break;
      if (belowUpper(id) && matchesRaw(predicate, raw)) yield raw;
    }
    return;
  }
  for (const [id, raw] of oplogFrom(collection, range.lower?.id)) {
    if (!aboveLower(id)) continue;
    if (!belowUpper(id)) break;
    if (matchesRaw(predicate, raw)) yield raw;
  }
}

/** Oplog records from `from` (inclusive) on, lazily; all of them when `from` is undefined. */
function* oplogFrom(collection: Collection, from: bigint | undefined): Generator<[bigint, Buffer]> {
  if (from === undefined) {
    yield* collection.scanNatural();
    return;
  }
  const first = collection.firstRecordAtOrAfter(from);
  if (!first) return;
  yield first;
  yield* collection.scanNatural(first[0]);
}
