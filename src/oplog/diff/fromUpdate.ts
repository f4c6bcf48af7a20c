/**
 * The `$v: 2` diff a MongoDB 7.0 server logs for a MODIFIER update (`$set`, `$inc`, `$push`, ...).
 *
 * Unlike a replacement or pipeline update (`compute.ts`, the server's diff calculator), a modifier
 * update is logged by the update nodes themselves as they apply (`ModifierNode::logUpdate` and
 * the `*_node.cpp` overrides, collected by `V2LogBuilder`, see `logTree.ts`). Each leaf, in the
 * server's application order (`updatePath.ts`), logs at its own path:
 *  - an existing value that changes: `u` with the whole new value (a `$push` that only appends
 *    logs each new element as `u<index>` instead); unchanged (byte-equal) values log nothing;
 *  - a path that did not exist: `i` at its first missing component, the created documents
 *    spelled out (`u<index>` when that component is an array index);
 *  - `$unset`: `d`, or `u<index>: null` for an array element;
 *  - `$rename`: its target like a `$set` (always logged, even when equal), then `d` of the source.
 * Every component of an existing path that is an array index makes its parent an array diff.
 *
 * Inputs are the pre-image, the post-image the update produced, and the update's leaves; the
 * logged values are read from the post-image, so it must carry the BSON types to log. The diff
 * applied to the pre-image gives the post-image's content (created fields in server order).
 */
import { serialize, type Document } from "bson";
import { asEmbeddedDocument } from "../../bson/compare.js";
import { addAtPath, DocumentNode, LogConflict, writeDiff, type ComponentType } from "./logTree.js";
import { parseArrayIndex, valueAtPath, type UpdateLeaf } from "./updatePath.js";

export type { UpdateLeaf } from "./updatePath.js";
export { updateLeaves } from "./updatePath.js";

export type UpdateDiff =
  | { kind: "diff"; diff: Document }
  /** Every leaf was a no-op: the server writes no oplog entry. */
  | { kind: "noop" }
  /** The leaves and images do not fit the server's rules; use the diff calculator. */
  | { kind: "unresolved"; reason: string };

/** Builds the server's diff of a modifier update from its pre-image, post-image and leaves. */
export function diffFromUpdate(pre: Document, post: Document, leaves: readonly UpdateLeaf[]): UpdateDiff {
  const state: BuildState = { root: new DocumentNode("subDiff"), current: pre, post };
  try {
    for (const leaf of leaves) {
      const problem = logLeaf(state, leaf);
      if (problem !== undefined) return { kind: "unresolved", reason: `${leaf.path.join(".")}: ${problem}` };
    }
  } catch (error) {
    if (error instanceof LogConflict) return { kind: "unresolved", reason: error.message };
    throw error;
  }
  return state.root.isEmpty() ? { kind: "noop" } : { kind: "diff", diff: writeDiff(state.root) };
}

interface BuildState {
  root: DocumentNode;
  /** The document as the server sees it before the next leaf: the pre-image plus created paths. */
  current: Document;
  post: Document;
}

/** A path resolved against the current document (`UpdateObjectNode::applyChild`). */
interface Resolved {
  /** Component types; a created component is an index only if its parent is an array. */
  types: ComponentType[];
  /** How many leading components exist. */
  existing: number;
  /** The existing value when the whole path exists. */
  value?: unknown;
  /** Set when the path runs into a scalar or a non-numeric field of an array ("not viable"). */
  blockedAt?: number;
}

function resolve(doc: Document, path: readonly string[]): Resolved {
  const types: ComponentType[] = [];
  let value: unknown = doc;
  for (let i = 0; i < path.length; i++) {
    let child: unknown;
    if (Array.isArray(value)) {
      const index = parseArrayIndex(path[i]);
      if (index === undefined) return { types, existing: i, blockedAt: i };
      types.push("index");
      child = index < value.length ? value[index] : undefined;
    } else {
      const embedded = asEmbeddedDocument(value);
      if (embedded === undefined) return { types, existing: i, blockedAt: i };
      types.push("field");
      child = Object.hasOwn(embedded, path[i]) ? embedded[path[i]] : undefined;
    }
    if (child === undefined) {
      // Created paths below the first missing component are plain documents.
      while (types.length < path.length) types.push("field");
      return { types, existing: i };
    }
    value = child;
  }
  return { types, existing: path.length, value };
}

/** Byte equality of two values (type included), as the server's no-op checks compare. */
function sameBson(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  return Buffer.from(serialize({ "": a })).equals(Buffer.from(serialize({ "": b })));
}

/** Logs one leaf; returns why it cannot be logged, if so. */
function logLeaf(state: BuildState, leaf: UpdateLeaf): string | undefined {
  if (leaf.operator === "$rename") return logRename(state, leaf);
  const { path, operator } = leaf;
  const at = resolve(state.current, path);
  if (at.blockedAt !== undefined) return notViable(state, path, at.blockedAt);
  const after = valueAtPath(state.post, path);
  const exists = at.existing === path.length;
  switch (operator) {
    case "$unset":
      if (!exists) return undefined;
      // An array element is set to null, not removed.
      if (at.types[at.types.length - 1] === "index") {
        if (after !== null) return "array element not null in the post-image";
        addAtPath(state.root, path, at.types, update(null));
      } else {
        if (after !== undefined) return "still in the post-image";
        addAtPath(state.root, path, at.types, { kind: "delete" });
      }
      return undefined;
    case "$pull":
    case "$pullAll":
    case "$pop": {
      // Nothing to do on a missing path; otherwise the whole array if it changed.
      if (!exists) return undefined;
      if (!Array.isArray(at.value) || !Array.isArray(after)) return "not an array";
      if (after.length !== at.value.length) addAtPath(state.root, path, at.types, update(after));
      return undefined;
    }
    case "$push":
    case "$addToSet":
      if (exists) return logArrayAppend(state, leaf, at, after);
      return create(state, path, at, after);
    case "$currentDate":
    case "$set":
    case "$inc":
    case "$mul":
    case "$min":
    case "$max":
    case "$bit":
      if (!exists) return create(state, path, at, after);
      if (after === undefined) return "removed from the post-image";
      // $currentDate always sets; the others are no-ops when the value is unchanged.
      if (operator === "$currentDate" || !sameBson(at.value, after)) {
        addAtPath(state.root, path, at.types, update(after));
      }
      return undefined;
    default:
      return `unsupported operator ${operator}`;
  }
}

const update = (value: unknown) => ({ kind: "update" as const, value });

/** A created path: logged at its full path, internal documents marked as created. */
function create(state: BuildState, path: string[], at: Resolved, after: unknown): string | undefined {
  if (after === undefined) return "missing from the post-image";
  addAtPath(state.root, path, at.types, { kind: "insert", value: after }, at.existing);
  state.current = place(state.current, path, 0, after) as Document;
  return undefined;
}

/**
 * A path through a scalar, or a field name in an array: the server fails the update (or skips the
 * leaf when applying the oplog). Fine only if the update left that part of the document alone.
 */
function notViable(state: BuildState, path: string[], blockedAt: number): string | undefined {
  const prefix = path.slice(0, blockedAt);
  const before = prefix.length === 0 ? state.current : valueAtPath(state.current, prefix);
  const after = prefix.length === 0 ? state.post : valueAtPath(state.post, prefix);
  return sameBson(before, after) ? undefined : "path not viable, yet the post-image changed there";
}

/**
 * `$push` (`PushNode::performPush`) and `$addToSet` on an existing array. A `$push` that only
 * appends to a non-empty array, with no `$sort` and no `$slice` that trims, logs each new element;
 * any other change logs the whole array. In 7.0 `$addToSet` always logs the whole array.
 */
function logArrayAppend(
  state: BuildState,
  leaf: UpdateLeaf,
  at: Resolved,
  after: unknown,
): string | undefined {
  const before = at.value;
  if (!Array.isArray(before) || !Array.isArray(after)) return "not an array";
  if (leaf.operator === "$addToSet") {
    if (after.length !== before.length) addAtPath(state.root, leaf.path, at.types, update(after));
    return undefined;
  }
  const mode = pushMode(before.length, leaf.operand);
  if (mode === "noop") return undefined;
  if (mode === "whole") {
    addAtPath(state.root, leaf.path, at.types, update(after));
    return undefined;
  }
  const appended = after.length - before.length;
  if (appended <= 0) return "the post-image did not append";
  for (let index = before.length; index < after.length; index++) {
    addAtPath(
      state.root,
      [...leaf.path, String(index)],
      [...at.types, "index"],
      { kind: "insert", value: after[index] },
      leaf.path.length,
    );
  }
  return undefined;
}

/** How `PushNode` logs a push onto an existing array of `length` elements. */
function pushMode(length: number, operand: unknown): "noop" | "append" | "whole" {
  const spec = asEmbeddedDocument(operand);
  const withModifiers = spec !== undefined && Object.hasOwn(spec, "$each");
  const count = withModifiers && Array.isArray(spec.$each) ? spec.$each.length : 1;
  const position = withModifiers ? numberValue(spec.$position) : undefined;
  const slice = withModifiers ? numberValue(spec.$slice) : undefined;
  let mode: "noop" | "append" | "whole";
  if (count === 0) mode = "noop";
  else if (length === 0) mode = "whole";
  else mode = position === undefined || position > length ? "append" : "whole";
  // Sorting, or a $slice that removes elements, rewrites the array.
  if (withModifiers && spec.$sort !== undefined) mode = "whole";
  if (slice !== undefined && length + count > Math.abs(slice)) mode = "whole";
  return mode;
}

/** A number given as a JS number or a `bson` wrapper (Int32, Double, Long). */
function numberValue(value: unknown): number | undefined {
  if (typeof value === "number") return value;
  if (typeof value === "bigint") return Number(value);
  if (value !== null && typeof value === "object") {
    const wrapped = value as { _bsontype?: string; value?: unknown; toNumber?: () => number };
    if (wrapped._bsontype === "Long" && wrapped.toNumber) return wrapped.toNumber();
    if (typeof wrapped.value === "number") return wrapped.value;
  }
  return undefined;
}

/**
 * `$rename` (`RenameNode::apply`): nothing if the source is missing; else the target is set like
 * `SetElementNode` (logged even when the value is the same) and the source deleted.
 */
function logRename(state: BuildState, leaf: UpdateLeaf): string | undefined {
  const from = leaf.from as string[];
  const source = resolve(state.current, from);
  if (source.blockedAt !== undefined) return notViable(state, from, source.blockedAt);
  if (source.existing < from.length) return undefined;
  const target = resolve(state.current, leaf.path);
  if (target.blockedAt !== undefined) return "target path not viable";
  // The server refuses to rename into or out of arrays.
  if (source.types.includes("index") || target.types.includes("index")) return "rename through an array";
  const after = valueAtPath(state.post, leaf.path);
  if (target.existing === leaf.path.length) {
    if (after === undefined) return "target missing from the post-image";
    addAtPath(state.root, leaf.path, target.types, update(after));
  } else {
    const problem = create(state, leaf.path, target, after);
    if (problem !== undefined) return problem;
  }
  addAtPath(state.root, from, source.types, { kind: "delete" });
  return undefined;
}

/** A copy of `node` with `value` at `path`, creating documents and padding arrays with null. */
function place(node: unknown, path: readonly string[], i: number, value: unknown): unknown {
  if (i === path.length) return value;
  if (Array.isArray(node)) {
    const index = parseArrayIndex(path[i]) as number;
    const copy = node.slice();
    while (copy.length < index) copy.push(null);
    copy[index] = place(copy[index], path, i + 1, value);
    return copy;
  }
  const copy: Document = { ...(asEmbeddedDocument(node) ?? {}) };
  const child = Object.hasOwn(copy, path[i]) ? copy[path[i]] : undefined;
  Object.defineProperty(copy, path[i], {
    value: place(child, path, i + 1, value),
    enumerable: true,
    writable: true,
    configurable: true,
  });
  return copy;
}
