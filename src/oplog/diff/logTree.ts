/**
 * The tree the server's `V2LogBuilder` (`src/mongo/db/update/v2_log_builder.cpp`) collects while a
 * modifier update runs, and its serialization into a `$v: 2` diff.
 *
 * Each modification is added at its full path. Missing internal nodes are created on the way:
 * an array node when the next component is an array index, a "document insertion" node when the
 * component was created by this update, otherwise a document sub-diff. Leaves are updates
 * (`u`), inserts (`i`, or `u<index>` in an array) and deletes (`d`).
 *
 * Writer order (the builder's frames): in a document sub-diff `d`, `u`, `i`, then the `s<field>`
 * sub-diffs, each section in the order its entries were added; an inserted document holds its
 * inserts in order; an array diff is `{a: true}` then its entries by ascending index — never an
 * `l`, the update path does not log resizes. Logged values are the final values at their paths
 * (the server keeps references to the live elements).
 */
import type { Document } from "bson";
import { parseArrayIndex } from "./updatePath.js";

/** How a path component addresses its parent: a field of a document or an array index. */
export type ComponentType = "field" | "index";

type Leaf = { kind: "update"; value: unknown } | { kind: "insert"; value: unknown } | { kind: "delete" };
type LogNode = Leaf | DocumentNode | ArrayNode;

/** A document level: a sub-diff of an existing document, or a document this update created. */
export class DocumentNode {
  readonly children = new Map<string, LogNode>();
  /** Children in the order added; the writer groups them by kind, keeping this order. */
  readonly order: string[] = [];

  constructor(readonly kind: "subDiff" | "insertion") {}

  isEmpty(): boolean {
    return this.order.length === 0;
  }
}

export class ArrayNode {
  readonly kind = "array";
  readonly children = new Map<number, LogNode>();
}

/** Thrown for a path the builder cannot hold; the caller falls back to the diff calculator. */
export class LogConflict extends Error {}

function getChild(node: DocumentNode | ArrayNode, part: string): LogNode | undefined {
  if (node instanceof ArrayNode) {
    const index = parseArrayIndex(part);
    return index === undefined ? undefined : node.children.get(index);
  }
  return node.children.get(part);
}

function addChild(node: DocumentNode | ArrayNode, part: string, child: LogNode): void {
  if (node instanceof ArrayNode) {
    const index = parseArrayIndex(part);
    if (index === undefined || node.children.has(index)) throw new LogConflict(`array entry ${part}`);
    if (child.kind === "delete") throw new LogConflict("a delete inside an array");
    node.children.set(index, child);
    return;
  }
  if (node.children.has(part)) throw new LogConflict(`field ${part} logged twice`);
  // A created document is written as a whole: only inserts can live in it.
  if (node.kind === "insertion" && child.kind !== "insert" && child.kind !== "insertion") {
    throw new LogConflict(`a ${child.kind} inside a created document`);
  }
  node.children.set(part, child);
  node.order.push(part);
}

/**
 * `V2LogBuilder::addNodeAtPath`: adds `leaf` at `path`, creating internal nodes as needed.
 * `firstNew` is the index of the first component the update created, if any.
 */
export function addAtPath(
  root: DocumentNode,
  path: readonly string[],
  types: readonly ComponentType[],
  leaf: Leaf,
  firstNew?: number,
): void {
  let node: DocumentNode | ArrayNode = root;
  for (let i = 0; i < path.length - 1; i++) {
    let child = getChild(node, path[i]);
    if (child === undefined) {
      const isNew = firstNew !== undefined && i >= firstNew;
      if (types[i + 1] === "index") {
        // Created paths are documents all the way down, so an array is never new.
        if (isNew) throw new LogConflict("array index under a created field");
        child = new ArrayNode();
      } else {
        child = new DocumentNode(isNew ? "insertion" : "subDiff");
      }
      addChild(node, path[i], child);
    }
    if (!(child instanceof DocumentNode || child instanceof ArrayNode)) {
      throw new LogConflict(`${path.slice(0, i + 1).join(".")} was already logged as a value`);
    }
    node = child;
  }
  addChild(node, path[path.length - 1], leaf);
}

/** Sets a field, also one named `__proto__`, as an own enumerable property. */
function setField(doc: Document, name: string, value: unknown): void {
  Object.defineProperty(doc, name, { value, enumerable: true, writable: true, configurable: true });
}

/** The `$v: 2` diff of a document sub-diff node. */
export function writeDiff(node: DocumentNode): Document {
  const diff: Document = {};
  const section = (
    predicate: (child: LogNode) => boolean,
    write: (name: string, child: LogNode) => unknown,
  ) => {
    const names = node.order.filter((name) => predicate(node.children.get(name) as LogNode));
    if (names.length === 0) return undefined;
    const out: Document = {};
    for (const name of names) setField(out, name, write(name, node.children.get(name) as LogNode));
    return out;
  };
  const deletes = section(
    (child) => child.kind === "delete",
    () => false,
  );
  const updates = section(
    (child) => child.kind === "update",
    (_name, child) => (child as { value: unknown }).value,
  );
  const inserts = section((child) => child.kind === "insert" || child.kind === "insertion", writeInsert);
  if (deletes) diff.d = deletes;
  if (updates) diff.u = updates;
  if (inserts) diff.i = inserts;
  for (const name of node.order) {
    const child = node.children.get(name) as LogNode;
    if (child instanceof ArrayNode) setField(diff, `s${name}`, writeArrayDiff(child));
    else if (child instanceof DocumentNode && child.kind === "subDiff")
      setField(diff, `s${name}`, writeDiff(child));
  }
  return diff;
}

/** An inserted value, or the document a chain of created fields builds. */
function writeInsert(_name: string, child: LogNode): unknown {
  if (child instanceof DocumentNode) {
    const doc: Document = {};
    for (const name of child.order)
      setField(doc, name, writeInsert(name, child.children.get(name) as LogNode));
    return doc;
  }
  return (child as { value: unknown }).value;
}

function writeArrayDiff(node: ArrayNode): Document {
  const diff: Document = { a: true };
  for (const index of [...node.children.keys()].sort((x, y) => x - y)) {
    const child = node.children.get(index) as LogNode;
    if (child instanceof ArrayNode) diff[`s${index}`] = writeArrayDiff(child);
    else if (child instanceof DocumentNode && child.kind === "subDiff") diff[`s${index}`] = writeDiff(child);
    // Updates, inserts and created documents are all `u<index>` in an array.
    else diff[`u${index}`] = writeInsert(String(index), child);
  }
  return diff;
}
