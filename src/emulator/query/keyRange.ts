import type { Document } from "bson";
import { encodeIdKey } from "../../bson/keyEncoding.js";

/** Bounds on an encoded key, taken from comparison operators on one field. */
export interface KeyRange {
  /** Exact keys ($eq, equality, $in). */
  points?: string[];
  lower?: { key: string; inclusive: boolean };
  upper?: { key: string; inclusive: boolean };
}

const RANGE_OPERATORS = new Set(["$eq", "$gt", "$gte", "$lt", "$lte", "$in"]);

function isOperatorObject(value: unknown): value is Document {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return false;
  if ("_bsontype" in value || value instanceof Date || value instanceof RegExp) return false;
  const keys = Object.keys(value);
  return keys.length > 0 && keys.every((key) => key.startsWith("$"));
}

const keyOf = (value: unknown) => encodeIdKey(value).toString("latin1");

/**
 * Turns `filter[field]` into a key range when it uses only equality and comparison operators,
 * and returns the rest of the filter; otherwise returns undefined and the filter unchanged.
 * Comparisons on encoded keys are exact for every BSON type, which mingo's are not.
 */
export function extractKeyRange(filter: Document, field: string): { range?: KeyRange; rest: Document } {
  if (!(field in filter)) return { rest: filter };
  const condition = filter[field] as unknown;
  const { [field]: _removed, ...rest } = filter;
  if (
    condition instanceof RegExp ||
    (typeof condition === "object" &&
      condition !== null &&
      "_bsontype" in condition &&
      (condition as Document)._bsontype === "BSONRegExp")
  ) {
    return { rest: filter };
  }
  if (!isOperatorObject(condition)) {
    if (
      Array.isArray(condition) ||
      (typeof condition === "object" &&
        condition !== null &&
        !("_bsontype" in condition) &&
        !(condition instanceof Date))
    ) {
      // Documents and arrays: equality has subtleties (array fields) best left to the matcher.
      return { rest: filter };
    }
    return { range: { points: [keyOf(condition)] }, rest };
  }
  if (!Object.keys(condition).every((op) => RANGE_OPERATORS.has(op))) return { rest: filter };
  const range: KeyRange = {};
  for (const [op, value] of Object.entries(condition)) {
    if (op === "$eq") range.points = [keyOf(value)];
    else if (op === "$in") {
      if (
        !Array.isArray(value) ||
        value.some(
          (v) =>
            v instanceof RegExp ||
            (typeof v === "object" && v !== null && !("_bsontype" in v) && !(v instanceof Date)),
        )
      ) {
        return { rest: filter };
      }
      range.points = [...new Set(value.map(keyOf))].sort();
    } else if (op === "$gt" || op === "$gte") range.lower = { key: keyOf(value), inclusive: op === "$gte" };
    else range.upper = { key: keyOf(value), inclusive: op === "$lte" };
  }
  return { range, rest };
}

// Comparison operators only match values of the same canonical type ("type bracketing"):
// {$gt: 5} matches no string. An encoded key starts with its type class, so compare that too.
const sameTypeClass = (a: string, b: string) => a.charCodeAt(0) === b.charCodeAt(0);

export function withinUpper(range: KeyRange, key: string): boolean {
  if (!range.upper) return true;
  if (!sameTypeClass(key, range.upper.key)) return false;
  return range.upper.inclusive ? key <= range.upper.key : key < range.upper.key;
}

export function withinLower(range: KeyRange, key: string): boolean {
  if (!range.lower) return true;
  if (!sameTypeClass(key, range.lower.key)) return false;
  return range.lower.inclusive ? key >= range.lower.key : key > range.lower.key;
}

export function inRange(range: KeyRange, key: string): boolean {
  if (range.points && !range.points.includes(key)) return false;
  return withinLower(range, key) && withinUpper(range, key);
}
