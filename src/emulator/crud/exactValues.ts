import { deserialize, serialize, type Document } from "bson";
import { parseArrayIndex, valueAtPath, type UpdateLeaf } from "../../oplog/diff/updatePath.js";

/**
 * mingo runs on promoted values (plain JS numbers), so values it moves or copies lose their BSON
 * types: the elements of an array it sorts, slices, pulls or appends to, a renamed value, the
 * operand $min/$max stores. A modifier update logs such values whole (`u: {a: [...]}`), so this
 * puts the exact values back, taken from the exact pre-image and the update as the client sent it
 * (`exactOperands.ts` does the same for $set operands and $inc/$mul results).
 */
export function restoreMovedTypes(post: Document, preExact: Document, leaves: readonly UpdateLeaf[]): void {
  for (const leaf of leaves) {
    switch (leaf.operator) {
      case "$push":
      case "$addToSet":
        retypeArray(post, leaf.path, [...arrayAt(preExact, leaf.path), ...pushedValues(leaf.operand)]);
        break;
      case "$pull":
      case "$pullAll":
      case "$pop":
        retypeArray(post, leaf.path, arrayAt(preExact, leaf.path));
        break;
      case "$rename": {
        const value = valueAtPath(preExact, leaf.from as string[]);
        if (value !== undefined && valueAtPath(post, leaf.path) !== undefined)
          replaceAt(post, leaf.path, value);
        break;
      }
      case "$min":
      case "$max": {
        // A changed value is the operand.
        const after = valueAtPath(post, leaf.path);
        const before = valueAtPath(preExact, leaf.path);
        if (after !== undefined && (before === undefined || !samePromoted(after, before))) {
          replaceAt(post, leaf.path, leaf.operand);
        }
        break;
      }
    }
  }
}

function arrayAt(doc: Document, path: readonly string[]): unknown[] {
  const value = valueAtPath(doc, path);
  return Array.isArray(value) ? value : [];
}

/** The values a $push / $addToSet operand adds: its `$each`, or the operand itself. */
function pushedValues(operand: unknown): unknown[] {
  const spec = operand as { $each?: unknown } | null;
  if (spec !== null && typeof spec === "object" && !Array.isArray(spec) && Array.isArray(spec.$each)) {
    return spec.$each;
  }
  return [operand];
}

/** What a value looks like after mingo's promotion: its promoted BSON bytes. */
function promotedKey(value: unknown): string {
  const promoted = deserialize(serialize({ "": value }))[""] as unknown;
  return Buffer.from(serialize({ "": promoted })).toString("base64");
}

/** Whether two values are equal once promoted the way mingo sees them. */
function samePromoted(a: unknown, b: unknown): boolean {
  return promotedKey(a) === promotedKey(b);
}

/**
 * Replaces each element of the array at `path` with the first unused candidate that promotes to
 * the same value. Candidates with equal promoted values but different exact types (int32 1 and
 * double 1.0 in one array) can swap places; nothing else changes.
 */
function retypeArray(post: Document, path: readonly string[], candidates: unknown[]): void {
  const array = valueAtPath(post, path);
  if (!Array.isArray(array) || candidates.length === 0) return;
  const pool = new Map<string, unknown[]>();
  for (const candidate of candidates) {
    const key = promotedKey(candidate);
    const same = pool.get(key);
    if (same) same.push(candidate);
    else pool.set(key, [candidate]);
  }
  for (let i = 0; i < array.length; i++) {
    const match = pool.get(promotedKey(array[i]))?.shift();
    if (match !== undefined) array[i] = match;
  }
}

/** Sets the value at an existing path (array components as indexes). */
function replaceAt(doc: Document, path: readonly string[], value: unknown): void {
  const parent = path.length === 1 ? doc : valueAtPath(doc, path.slice(0, -1));
  const last = path[path.length - 1];
  if (Array.isArray(parent)) {
    const index = parseArrayIndex(last);
    if (index !== undefined && index < parent.length) parent[index] = value;
  } else if (parent !== null && typeof parent === "object" && Object.hasOwn(parent, last)) {
    (parent as Document)[last] = value;
  }
}
