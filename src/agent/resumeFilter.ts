import { Binary, MaxKey, ObjectId, Timestamp, type Document } from "bson";
import { bsonKindOf, CANONICAL_RANK, type BsonKind } from "../bson/compare.js";

/**
 * For each kind of value an `_id` can have (in MongoDB's sort order), filters that select exactly
 * that kind. Comparison operators only match values of the same type ("type bracketing",
 * https://www.mongodb.com/docs/v7.0/reference/method/db.collection.find/#type-bracketing), so
 * `{$gte: <smallest value of a kind>}` selects that whole kind, with simple `_id` index bounds.
 * The deprecated kinds after Timestamp (DBPointer, JavaScript, JavaScript with scope, ranks 55-65)
 * have no such value and share one `$type` filter, which scans the index: it only runs when a clone
 * resumes. Arrays, regular expressions and undefined cannot be `_id`s. Dates before the year
 * -271821 (beyond JavaScript's Date) are not supported.
 */
const KINDS: Array<[BsonKind, Document[]]> = [
  ["null", [{ _id: null }]],
  // NaN sorts before every other number, and {$gte: NaN} only matches NaN: two ranges.
  ["number", [{ _id: NaN }, { _id: { $gte: -Infinity } }]],
  ["string", [{ _id: { $gte: "" } }]],
  ["object", [{ _id: { $gte: {} } }]],
  ["binData", [{ _id: { $gte: new Binary(Buffer.alloc(0), 0) } }]],
  ["objectId", [{ _id: { $gte: new ObjectId("000000000000000000000000") } }]],
  ["bool", [{ _id: { $gte: false } }]],
  ["date", [{ _id: { $gte: new Date(-8_640_000_000_000_000) } }]],
  ["timestamp", [{ _id: { $gte: new Timestamp({ t: 0, i: 0 }) } }]],
  ["dbPointer", [{ _id: { $type: ["dbPointer", "javascript", "javascriptWithScope"] } }]],
  ["maxKey", [{ _id: new MaxKey() }]],
];

/** Kinds whose later values are in the shared `$type` filter of the kinds after Timestamp. */
const SHARED_TAIL: ReadonlySet<BsonKind> = new Set(["dbPointer", "code", "codeWithScope"]);

/** Kinds with a single possible value: nothing of the same kind sorts after it. */
const SINGLE_VALUED: ReadonlySet<BsonKind> = new Set(["minKey", "undefined", "null", "maxKey"]);

/**
 * Filters whose results, each read with `sort {_id: 1}` and one after the other, are every
 * document whose `_id` sorts after `lastId`, in MongoDB's order: first the rest of `lastId`'s own
 * kind (`{_id: {$gt: lastId}}`), then each later kind. One `{_id: {$gt: lastId}}` is not enough:
 * type bracketing would skip every `_id` of a later kind (the strings after the numbers, the
 * ObjectIds after the strings...). Without `lastId`: one filter, everything.
 */
export function filtersAfter(lastId?: unknown): Document[] {
  if (lastId === undefined) return [{}];
  const kind = bsonKindOf(lastId);
  const rank = CANONICAL_RANK[kind];
  const filters: Document[] = [];
  if (SHARED_TAIL.has(kind)) {
    // The rest of its own kind, then the later deprecated kinds.
    filters.push({ _id: { $gt: lastId } });
    if (kind !== "codeWithScope") {
      filters.push({
        _id: { $type: kind === "dbPointer" ? ["javascript", "javascriptWithScope"] : "javascriptWithScope" },
      });
    }
    filters.push({ _id: new MaxKey() });
    return filters;
  }
  if (!SINGLE_VALUED.has(kind)) filters.push({ _id: { $gt: lastId } });
  for (const [later, laterFilters] of KINDS) {
    if (CANONICAL_RANK[later] > rank) filters.push(...laterFilters);
  }
  return filters;
}
