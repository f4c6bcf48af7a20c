/**
 * Computes the `$v: 2` delta diff the server logs for a replacement-style or pipeline update,
 * following `doc_diff::computeOplogDiff` (`src/mongo/db/update/document_diff_calculator.cpp`)
 * and the writer of `document_diff_serialization.cpp`.
 *
 * The calculator walks pre and post side by side. A field equal in both (byte for byte, so int32
 * 1 and double 1.0 differ) is skipped; a field with the same name and a new value becomes an
 * update, or a sub-diff when both values are documents or both arrays; a pre field whose name
 * differs from the post field at that position is deleted (collected, written in byte order of
 * names after the trailing deletes); post fields left over are inserts. Arrays compare by
 * position: changed elements are updates or sub-diffs, extra post elements updates, a shorter post
 * array a resize. A sub-diff whose approximate size (`DiffNode.size`, the server's
 * `ApproxBSONSizeTracker`) is not smaller than the new value is replaced by an update of the value.
 *
 * Writer order: `d`, `u`, `i`, then sub-diffs in the order found; an array diff is `a`, then `l`
 * (int32) if resized, then its entries by ascending index.
 */
import { calculateObjectSize, Int32, serialize, type Document } from "bson";
import { asEmbeddedDocument, compareUtf8 } from "../../bson/compare.js";

// The server's approximate sizes (document_diff_serialization.h): an empty object diff, an
// empty array diff ({a: true}), the wrapper of a d/u/i section, and an `l` entry.
const EMPTY_OBJECT_DIFF_SIZE = 5;
const EMPTY_ARRAY_DIFF_SIZE = 9;
const SECTION_WRAPPER_SIZE = 8;
const RESIZE_ENTRY_SIZE = 7;

/** `update_oplog_entry::kSizeOfDeltaOplogEntryMetadata`: room for `{$v: 2, diff: ...}`. */
export const DELTA_OPLOG_METADATA_SIZE = 15;

/**
 * The diff the server's calculator produces from `pre` to `post`, or undefined when they are
 * equal. It is returned even when the server would log a replacement instead (see
 * `updateOplogObject`).
 */
export function computeDiff(pre: Document, post: Document): Document | undefined {
  const node = diffObjects(pre, post, 0);
  return node.isEmpty() ? undefined : node.toDiff();
}

/**
 * The oplog `o` of an update from `pre` to `post`, as the server writes it for a replacement or
 * pipeline update: `{$v: 2, diff}` when the diff is smaller than the post-image, otherwise the
 * post-image itself (a replacement entry); undefined when nothing changed (no entry is written).
 *
 * The server's rule (`computeOplogDiff` with `kSizeOfDeltaOplogEntryMetadata` padding): give up
 * when the approximate diff size plus 15 bytes is not below the post-image's size, then keep the
 * diff only if its real BSON size is below the post-image's size.
 */
export function updateOplogObject(pre: Document, post: Document): Document | undefined {
  const node = diffObjects(pre, post, DELTA_OPLOG_METADATA_SIZE);
  if (node.isEmpty()) return undefined;
  const postSize = calculateObjectSize(post);
  if (node.size < postSize) {
    const diff = node.toDiff();
    if (calculateObjectSize(diff) < postSize) return { $v: new Int32(2), diff };
  }
  return post;
}

type DiffNode = ObjectDiffNode | ArrayDiffNode;

class ObjectDiffNode {
  size: number;
  private readonly deletes: string[] = [];
  private readonly updates: [string, unknown][] = [];
  private readonly inserts: [string, unknown][] = [];
  private readonly subDiffs: [string, DiffNode][] = [];

  constructor(padding: number) {
    this.size = EMPTY_OBJECT_DIFF_SIZE + padding;
  }

  isEmpty(): boolean {
    return this.deletes.length + this.updates.length + this.inserts.length + this.subDiffs.length === 0;
  }

  addDelete(name: string): void {
    this.size += entrySize(name) + 1 + (this.deletes.length === 0 ? SECTION_WRAPPER_SIZE : 0);
    this.deletes.push(name);
  }

  addUpdate(name: string, value: unknown): void {
    this.size += entrySize(name) + valueSize(value) + (this.updates.length === 0 ? SECTION_WRAPPER_SIZE : 0);
    this.updates.push([name, value]);
  }

  addInsert(name: string, value: unknown): void {
    this.size += entrySize(name) + valueSize(value) + (this.inserts.length === 0 ? SECTION_WRAPPER_SIZE : 0);
    this.inserts.push([name, value]);
  }

  addSubDiff(name: string, child: DiffNode): void {
    // +1 for the "s" prefix of the key.
    this.size += entrySize(name) + child.size + 1;
    this.subDiffs.push([name, child]);
  }

  toDiff(): Document {
    const diff: Document = {};
    if (this.deletes.length > 0) diff.d = Object.fromEntries(this.deletes.map((name) => [name, false]));
    if (this.updates.length > 0) diff.u = Object.fromEntries(this.updates);
    if (this.inserts.length > 0) diff.i = Object.fromEntries(this.inserts);
    for (const [name, child] of this.subDiffs) diff[`s${name}`] = child.toDiff();
    return diff;
  }
}

class ArrayDiffNode {
  size = EMPTY_ARRAY_DIFF_SIZE;
  private newLength: number | undefined;
  private readonly entries: [number, { value: unknown } | { child: DiffNode }][] = [];

  addUpdate(index: number, value: unknown): void {
    this.size += arrayEntrySize(index) + valueSize(value);
    this.entries.push([index, { value }]);
  }

  addSubDiff(index: number, child: DiffNode): void {
    this.size += arrayEntrySize(index) + child.size;
    this.entries.push([index, { child }]);
  }

  setResize(length: number): void {
    this.newLength = length;
    this.size += RESIZE_ENTRY_SIZE;
  }

  toDiff(): Document {
    const diff: Document = { a: true };
    if (this.newLength !== undefined) diff.l = new Int32(this.newLength);
    // Entries are added in ascending index order already.
    for (const [index, entry] of this.entries) {
      if ("child" in entry) diff[`s${index}`] = entry.child.toDiff();
      else diff[`u${index}`] = entry.value;
    }
    return diff;
  }
}

/** Field name + type byte + name terminator, as the server counts an entry. */
function entrySize(name: string): number {
  return Buffer.byteLength(name, "utf8") + 2;
}

/** "u"/"s" + index digits + type byte + terminator. */
function arrayEntrySize(index: number): number {
  return 1 + String(index).length + 2;
}

/** The size of a value's BSON encoding without type byte and name (`BSONElement::valuesize`). */
function valueSize(value: unknown): number {
  // {"": value} is 4 (length) + 1 (type) + 1 (empty name) + value + 1 (terminator).
  return calculateObjectSize({ "": value }) - 7;
}

function bsonEqual(a: unknown, b: unknown): boolean {
  if (a === b && (typeof a === "object" || typeof a === "string" || typeof a === "boolean")) return true;
  return Buffer.from(serialize({ "": a })).equals(Buffer.from(serialize({ "": b })));
}

/** Field names that BSON will hold: `bson` drops fields whose value is undefined. */
function fieldNames(doc: Document): string[] {
  return Object.keys(doc).filter((name) => doc[name] !== undefined);
}

function diffObjects(pre: Document, post: Document, padding: number): ObjectDiffNode {
  const node = new ObjectDiffNode(padding);
  const preNames = fieldNames(pre);
  const postNames = fieldNames(post);
  const laterDeletes = new Set<string>();
  let i = 0;
  let j = 0;
  for (; i < preNames.length && j < postNames.length; i++) {
    const name = preNames[i];
    if (name !== postNames[j]) {
      // Deleted, or moved: a moved field is inserted at the end and so not deleted after all.
      laterDeletes.add(name);
      continue;
    }
    const preValue = pre[name];
    const postValue = post[name];
    if (!bsonEqual(preValue, postValue)) addChange(node, name, preValue, postValue);
    j++;
  }
  for (; i < preNames.length; i++) node.addDelete(preNames[i]);
  for (; j < postNames.length; j++) {
    node.addInsert(postNames[j], post[postNames[j]]);
    laterDeletes.delete(postNames[j]);
  }
  for (const name of [...laterDeletes].sort(compareUtf8)) node.addDelete(name);
  return node;
}

function diffArrays(pre: unknown[], post: unknown[]): ArrayDiffNode {
  const node = new ArrayDiffNode();
  const common = Math.min(pre.length, post.length);
  for (let index = 0; index < common; index++) {
    if (!bsonEqual(pre[index], post[index])) addChange(node, index, pre[index], post[index]);
  }
  for (let index = common; index < post.length; index++) node.addUpdate(index, post[index]);
  if (pre.length > post.length) node.setResize(post.length);
  return node;
}

/**
 * Records a changed value: a sub-diff when both sides are documents or both arrays and the
 * sub-diff is smaller than the new value, otherwise an update with the new value.
 */
function addChange(
  node: ObjectDiffNode | ArrayDiffNode,
  at: string | number,
  preValue: unknown,
  postValue: unknown,
) {
  const child = subDiff(preValue, postValue);
  if (child !== undefined && child.size < containerSize(postValue)) {
    if (node instanceof ObjectDiffNode) node.addSubDiff(at as string, child);
    else node.addSubDiff(at as number, child);
  } else if (node instanceof ObjectDiffNode) {
    node.addUpdate(at as string, postValue);
  } else {
    node.addUpdate(at as number, postValue);
  }
}

function subDiff(preValue: unknown, postValue: unknown): DiffNode | undefined {
  if (Array.isArray(preValue) && Array.isArray(postValue)) return diffArrays(preValue, postValue);
  const preDoc = asEmbeddedDocument(preValue);
  const postDoc = asEmbeddedDocument(postValue);
  return preDoc && postDoc ? diffObjects(preDoc, postDoc, 0) : undefined;
}

/** The BSON size of an array or embedded document (a DBRef in its document form). */
function containerSize(value: unknown): number {
  return calculateObjectSize(
    Array.isArray(value) ? (value as unknown as Document) : (asEmbeddedDocument(value) as Document),
  );
}
