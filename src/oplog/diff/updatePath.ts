/**
 * The paths a modifier update (`{$set: {...}, $push: {...}, ...}`) touches, in the order the
 * server applies them. `fromUpdate.ts` builds the server's `$v: 2` diff from these.
 *
 * The server parses every operator's paths into ONE tree (`UpdateObjectNode`, one child per
 * field name) and applies it depth first, children in the order of
 * `pathsupport::cmpPathsAndArrayIndexes`: plain names in byte order, names that are unpadded
 * numbers in numeric order ("Starting in MongoDB 5.0, update operators process document fields
 * with string-based names in lexicographic order. Fields with numeric names are processed in
 * numeric order." — the $set manual). So operators interleave: `{$set: {b: 1}, $inc: {a: 1}}`
 * applies `a` first, and new fields are appended in that order, not in the update's.
 * A `$rename` sits in the tree at its target path (its source only holds a placeholder).
 */
import type { Document } from "bson";
import { asEmbeddedDocument, compareUtf8 } from "../../bson/compare.js";

/** One operator applied at one path. */
export interface UpdateLeaf {
  /** `$set`, `$inc`, ... (`$setOnInsert` appears as `$set` when the update inserts). */
  operator: string;
  /** The dotted path, split; for `$rename` the target. */
  path: string[];
  /** The operand as the client sent it (for `$rename`, the target name). */
  operand: unknown;
  /** `$rename` only: the source path. */
  from?: string[];
}

const OPERATORS = new Set([
  "$set",
  "$setOnInsert",
  "$unset",
  "$inc",
  "$mul",
  "$min",
  "$max",
  "$bit",
  "$currentDate",
  "$rename",
  "$push",
  "$addToSet",
  "$pull",
  "$pullAll",
  "$pop",
]);

/**
 * The leaves of a modifier update in the server's application order, or undefined when a path is
 * dynamic (`$`, `$[]`, `$[id]`: which elements it reaches depends on the query or the array
 * filters) or the update is not a plain modifier document.
 *
 * `$setOnInsert` only acts when the update inserts (the server's insert-only context), so it is
 * dropped otherwise.
 */
export function updateLeaves(
  update: Document,
  options: { inserting?: boolean } = {},
): UpdateLeaf[] | undefined {
  const leaves: UpdateLeaf[] = [];
  for (const [operator, fields] of Object.entries(update)) {
    if (!OPERATORS.has(operator)) return undefined;
    if (operator === "$setOnInsert" && !options.inserting) continue;
    const entries = asEmbeddedDocument(fields);
    if (entries === undefined) return undefined;
    for (const [key, operand] of Object.entries(entries)) {
      const path = key.split(".");
      if (isDynamic(path)) return undefined;
      if (operator === "$rename") {
        if (typeof operand !== "string") return undefined;
        const to = operand.split(".");
        if (isDynamic(to)) return undefined;
        leaves.push({ operator, path: to, operand, from: path });
      } else {
        leaves.push({ operator: operator === "$setOnInsert" ? "$set" : operator, path, operand });
      }
    }
  }
  return leaves.sort((a, b) => comparePaths(a.path, b.path));
}

/** A positional `$`, an all-elements `$[]` or a filtered `$[id]` component. */
function isDynamic(path: string[]): boolean {
  return path.some((part) => part === "$" || (part.startsWith("$[") && part.endsWith("]")));
}

/** Depth-first tree order: component by component, a prefix before its extensions. */
export function comparePaths(a: readonly string[], b: readonly string[]): number {
  const common = Math.min(a.length, b.length);
  for (let i = 0; i < common; i++) {
    const order = compareFieldNames(a[i], b[i]);
    if (order !== 0) return order;
  }
  return a.length - b.length;
}

const isDigit = (char: string | undefined) => char !== undefined && char >= "0" && char <= "9";

/**
 * `pathsupport::cmpPathsAndArrayIndexes`: two names that start with a digit and are not
 * zero-padded compare by length, then digit by digit (so "2" < "10"); anything else, and the
 * rest of a name after a non-digit, by bytes.
 */
export function compareFieldNames(a: string, b: string): number {
  const numeric = (name: string) => isDigit(name[0]) && !(name[0] === "0" && name.length > 1);
  if (!numeric(a) || !numeric(b)) return compareUtf8(a, b);
  if (a.length !== b.length) return a.length - b.length;
  for (let i = 0; i < a.length && isDigit(a[i]) && isDigit(b[i]); i++) {
    if (a[i] !== b[i]) return a.charCodeAt(i) - b.charCodeAt(i);
  }
  return compareUtf8(a, b);
}

/**
 * An array index as the server reads a path component in an array
 * (`str::parseUnsignedBase10Integer`): digits only, leading zeros allowed ("02" is 2).
 */
export function parseArrayIndex(part: string): number | undefined {
  if (!/^\d+$/.test(part)) return undefined;
  const index = Number(part);
  return Number.isSafeInteger(index) ? index : undefined;
}

/** The value at `path` (array components read as indexes), or undefined when absent. */
export function valueAtPath(doc: unknown, path: readonly string[]): unknown {
  let value = doc;
  for (const part of path) {
    if (Array.isArray(value)) {
      const index = parseArrayIndex(part);
      if (index === undefined) return undefined;
      value = value[index];
    } else {
      const embedded = asEmbeddedDocument(value);
      if (embedded === undefined || !Object.hasOwn(embedded, part)) return undefined;
      value = embedded[part];
    }
  }
  return value;
}
