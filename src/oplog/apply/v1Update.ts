/**
 * `$v: 1` (and pre-3.6, unversioned) modifier updates as servers up to 4.4 logged them: only
 * `$set` and `$unset`, with dotted paths whose numeric parts index arrays. The server applies
 * them with its update nodes (`src/mongo/db/update/`), which this follows:
 *
 * - the paths form a tree whose children are visited in `cmpPathsAndArrayIndexes` order, so new
 *   fields are appended in that order ("2" before "10"), existing ones change in place;
 * - `$set` creates missing parents as documents (a numeric part names a field there), and in an
 *   array a numeric part is an index: past the end, the array is padded with null;
 * - `$unset` of a document field removes it, of an array element sets it to null (arrays keep
 *   their length), of a missing path does nothing.
 *
 * A path that runs into a value that is neither a document nor an array, or a non-numeric part
 * in an array, makes the server fail (PathNotViable). Over a fuzzy copy that means the document
 * is not yet the one the entry was logged against, so the caller gets a `conflict` instead of a
 * result, and records the document as missing so that it is fetched again.
 */
import type { Document } from "bson";
import { asEmbeddedDocument } from "../../bson/compare.js";
import { compareFieldNames, parseArrayIndex } from "../diff/updatePath.js";

interface PathNode {
  children: Map<string, PathNode>;
  /** Set for a `$set` leaf (the value may be null). */
  set?: { value: unknown };
  unset?: true;
}

export type V1Result = { kind: "updated"; doc: Document } | { kind: "conflict"; reason: string };

/** Thrown for a malformed `$v:1` body (not for a document it does not fit). */
export class V1UpdateError extends Error {}

/** Applies `o` (`{$v?: 1, $set?: {...}, $unset?: {...}}`) to `doc`; `doc` is not modified. */
export function applyV1Update(doc: Document, o: Document): V1Result {
  const root: PathNode = { children: new Map() };
  for (const [operator, operand] of Object.entries(o)) {
    if (operator === "$v") continue;
    if (operator !== "$set" && operator !== "$unset")
      throw new V1UpdateError(`unsupported modifier ${operator} in a $v:1 update`);
    const fields = asEmbeddedDocument(operand);
    if (fields === undefined) throw new V1UpdateError(`${operator} must be a document`);
    for (const [path, value] of Object.entries(fields))
      addPath(root, path, operator === "$set" ? { value } : undefined);
  }
  const conflict: string[] = [];
  const result = applyToDocument(doc, root, "", conflict);
  if (conflict.length > 0) return { kind: "conflict", reason: conflict[0] };
  return { kind: "updated", doc: result };
}

function addPath(root: PathNode, path: string, set: { value: unknown } | undefined): void {
  const parts = path.split(".");
  if (parts.some((part) => part.length === 0)) throw new V1UpdateError(`empty field name in path '${path}'`);
  let node = root;
  for (const [i, part] of parts.entries()) {
    if (node.set || node.unset) throw new V1UpdateError(`path '${path}' conflicts with another update path`);
    let child = node.children.get(part);
    if (!child) node.children.set(part, (child = { children: new Map() }));
    node = child;
    if (i === parts.length - 1) {
      if (node.children.size > 0 || node.set || node.unset)
        throw new V1UpdateError(`path '${path}' conflicts with another update path`);
      if (set) node.set = set;
      else node.unset = true;
    }
  }
}

function sortedChildren(node: PathNode): Array<[string, PathNode]> {
  return [...node.children].sort(([a], [b]) => compareFieldNames(a, b));
}

function hasSet(node: PathNode): boolean {
  return node.set !== undefined || [...node.children.values()].some(hasSet);
}

function applyToDocument(doc: Document, node: PathNode, path: string, conflict: string[]): Document {
  const out: Document = { ...doc };
  for (const [name, child] of sortedChildren(node)) {
    const exists = Object.hasOwn(out, name);
    if (child.set) out[name] = child.set.value;
    else if (child.unset) delete out[name];
    else if (exists) out[name] = applyToValue(out[name], child, `${path}${name}`, conflict);
    else if (hasSet(child)) out[name] = applyToDocument({}, child, `${path}${name}.`, conflict);
  }
  return out;
}

function applyToArray(array: unknown[], node: PathNode, path: string, conflict: string[]): unknown[] {
  const out = [...array];
  for (const [name, child] of sortedChildren(node)) {
    const index = parseArrayIndex(name);
    if (index === undefined) {
      if (hasSet(child)) conflict.push(`cannot create field '${name}' in array '${path.slice(0, -1)}'`);
      continue;
    }
    if (child.unset) {
      if (index < out.length) out[index] = null;
      continue;
    }
    if (index >= out.length && !hasSet(child)) continue;
    while (out.length < index) out.push(null);
    if (child.set) out[index] = child.set.value;
    else if (index === out.length) out.push(applyToDocument({}, child, `${path}${name}.`, conflict));
    else out[index] = applyToValue(out[index], child, `${path}${name}`, conflict);
  }
  return out;
}

/** Descends into an existing value for the children of `node`. */
function applyToValue(value: unknown, node: PathNode, path: string, conflict: string[]): unknown {
  if (Array.isArray(value)) return applyToArray(value, node, `${path}.`, conflict);
  const embedded = asEmbeddedDocument(value);
  if (embedded !== undefined) return applyToDocument(embedded, node, `${path}.`, conflict);
  if (hasSet(node))
    conflict.push(`cannot create a field under '${path}', which is neither a document nor an array`);
  return value;
}
