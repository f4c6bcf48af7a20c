/**
 * Applies a `$v: 2` delta diff (the `diff` of an oplog update entry) the way the server's
 * `doc_diff::applyDiff` does (`src/mongo/db/update/document_diff_applier.cpp`, with the reader
 * rules of `document_diff_serialization.cpp`; the format is summarised in the conformance
 * README, "Key format facts").
 *
 * Grammar: an object diff has sections `d` (delete), `u` (update in place, or append), `i`
 * (insert at the end), `b` (binary patch), in that order, then sub-diffs `s<field>`; an array diff
 * is `{a: true, l?: <int32 length>, u<index>: value | s<index>: sub-diff, ...}`.
 *
 * Replay over a fuzzy copy must be idempotent, so, like `$_internalApplyOplogUpdate`, inserts
 * always check whether the field exists (the server skips that check for insert-only diffs unless
 * the entry says `checkExistenceForDiffInsert`), and a sub-diff that meets a value of another
 * type sets it to null, expecting a later entry to overwrite it.
 *
 * Documents are `bson`-deserialized JS objects, with or without `promoteValues`. Values carrying
 * `_bsontype` (Int32, Double, Long, Binary, ...) are opaque, except DBRef, which is a plain
 * embedded document in BSON and is treated as one. The result is a new object: `pre` is never
 * modified, but unchanged values are shared with `pre` and `diff`, so treat both as immutable.
 *
 * Limits of the JS representation: a JS object cannot hold integer-like field names ("2") after
 * other names, or in descending order, so such documents come out with those fields first; BSON
 * Undefined values vanish on serialization; and `bson` turns a diff with repeated field names into
 * an object that keeps only the last one, so those malformed diffs cannot be detected here.
 */
import { Binary, Decimal128, Double, Int32, Long, type Document } from "bson";
import { asEmbeddedDocument } from "../../bson/compare.js";

/** A malformed diff; `code` is the server's error code for the same problem. */
export class DiffApplyError extends Error {
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
    this.name = "DiffApplyError";
  }
}

/** The server's error codes for malformed diffs. */
export const DiffErrorCode = {
  emptyDiff: 4770500,
  arraySubDiffNotObject: 4770501,
  badArrayEntryPrefix: 4770502,
  unexpectedSection: 4770503,
  emptySectionName: 4770505,
  sectionWrongType: 4770507,
  subDiffNotObject: 470510,
  badArrayIndex: 4770512,
  fieldAfterSubDiffs: 4770514,
  arrayHeaderNotBool: 4770519,
  arrayHeaderNotTrue: 4770520,
  arrayEntryNameTooShort: 4770521,
  duplicateField: 4728000,
  arrayIndexBeyondLength: 12495901,
  binaryPatchNotObject: 10065,
  binaryPatchDataNotBinData: 12262900,
  binaryPatchNegativeOffset: 12262901,
  objectTooLarge: 10334,
} as const;

/** Applies `diff` to `pre` and returns the post-image; throws `DiffApplyError` if malformed. */
export function applyDiff(pre: Document, diff: Document): Document {
  const root = asEmbeddedDocument(diff);
  if (root === undefined) throw new TypeError("a diff must be a document");
  return applyObjectDiff(pre, openObjectDiff(root));
}

// The server reads a diff level by level: a level's structure is checked when its parent builds
// its tables, its contents when it is applied. These types are the opened (checked) levels.

interface ObjectDiff {
  kind: "object";
  deletes: Document;
  updates: Document;
  inserts: Document;
  binaries: Document;
  /** The `s<field>` entries, not yet checked (the server checks them when applying). */
  subDiffs: [string, unknown][];
}

interface ArrayDiff {
  kind: "array";
  newLength: number | undefined;
  /** The `u<index>` / `s<index>` entries, not yet checked. */
  entries: [string, unknown][];
}

type SubDiff = ObjectDiff | ArrayDiff;

type FieldModification =
  | { kind: "delete" }
  | { kind: "update"; value: unknown }
  | { kind: "insert" }
  | { kind: "binary"; patch: unknown }
  | { kind: "subDiff"; diff: SubDiff };

type ArrayModification = { index: number } & (
  { kind: "update"; value: unknown } | { kind: "subDiff"; diff: SubDiff }
);

const SECTION_ORDER: ReadonlyMap<string, number> = new Map([
  ["d", 1],
  ["u", 2],
  ["i", 3],
  ["b", 4],
  ["s", 5],
]);

// An array element costs at least 3 bytes, so no 16 MB document holds an index beyond this;
// the server would fail with BSONObjectTooLarge after padding, this fails before allocating.
const MAX_ARRAY_INDEX = 16 * 1024 * 1024;

function fail(code: number, message: string): never {
  throw new DiffApplyError(code, message);
}

/** Sets a field, also one named `__proto__`, as an own enumerable property. */
function setField(doc: Document, name: string, value: unknown): void {
  if (name === "__proto__") {
    Object.defineProperty(doc, name, { value, enumerable: true, writable: true, configurable: true });
  } else {
    doc[name] = value;
  }
}

function openObjectDiff(diff: Document): ObjectDiff {
  const keys = Object.keys(diff);
  if (keys.length === 0) fail(DiffErrorCode.emptyDiff, "Expected diff to be non-empty");
  const opened: ObjectDiff = {
    kind: "object",
    deletes: {},
    updates: {},
    inserts: {},
    binaries: {},
    subDiffs: [],
  };
  let previousOrder = 0;
  for (let k = 0; k < keys.length; k++) {
    const key = keys[k];
    if (key === "")
      fail(DiffErrorCode.emptySectionName, "Expected sections field names in diff to be non-empty");
    // The server looks only at the first character of a section name.
    const section = key[0];
    const order = SECTION_ORDER.get(section);
    if (order === undefined || order <= previousOrder) {
      fail(DiffErrorCode.unexpectedSection, `Unexpected section: ${section} in document diff`);
    }
    const contents = asEmbeddedDocument(diff[key]);
    if (contents === undefined)
      fail(DiffErrorCode.sectionWrongType, `Expected ${section} section to be type object`);
    if (section === "s") {
      // Everything from the first sub-diff on must be a sub-diff.
      opened.subDiffs = keys.slice(k).map((name) => [name, diff[name]]);
      break;
    }
    if (section === "d") opened.deletes = contents;
    else if (section === "u") opened.updates = contents;
    else if (section === "i") opened.inserts = contents;
    else opened.binaries = contents;
    previousOrder = order;
  }
  return opened;
}

function openArrayDiff(diff: Document): ArrayDiff {
  const keys = Object.keys(diff);
  const header = diff.a;
  if (typeof header !== "boolean") fail(DiffErrorCode.arrayHeaderNotBool, "Expected array header to be bool");
  if (!header) fail(DiffErrorCode.arrayHeaderNotTrue, "Expected array header to be value true");
  let first = 1;
  let newLength: number | undefined;
  if (keys[1] === "l") {
    newLength = int32Value(diff.l);
    if (newLength === undefined || newLength < 0)
      fail(DiffErrorCode.sectionWrongType, "Expected l section to be type int");
    if (newLength > MAX_ARRAY_INDEX)
      fail(DiffErrorCode.objectTooLarge, `array length ${newLength} is too large`);
    first = 2;
  }
  return { kind: "array", newLength, entries: keys.slice(first).map((key) => [key, diff[key]]) };
}

/** An int32 as `bson` gives it: an Int32 wrapper, or an integral number when promoted. */
function int32Value(value: unknown): number | undefined {
  const n = value instanceof Int32 ? value.value : value;
  return typeof n === "number" && Number.isInteger(n) && n >= -(2 ** 31) && n < 2 ** 31 ? n : undefined;
}

/** Opens the sub-diff in an `s` entry: an array diff starts with `a`, anything else is an object diff. */
function openSubDiff(diff: Document): SubDiff {
  const keys = Object.keys(diff);
  if (keys.length === 0) fail(DiffErrorCode.emptyDiff, "Expected diff to be non-empty");
  return keys[0] === "a" ? openArrayDiff(diff) : openObjectDiff(diff);
}

interface DiffTables {
  fields: Map<string, FieldModification>;
  /** Fields to append when the pre-image lacks them: updates, then inserts, in diff order. */
  appends: [string, unknown][];
}

function buildTables(diff: ObjectDiff): DiffTables {
  const fields = new Map<string, FieldModification>();
  const appends: [string, unknown][] = [];
  const add = (name: string, modification: FieldModification) => {
    if (fields.has(name)) fail(DiffErrorCode.duplicateField, `duplicate field name in diff: ${name}`);
    fields.set(name, modification);
  };
  for (const name of Object.keys(diff.deletes)) add(name, { kind: "delete" });
  for (const [name, value] of Object.entries(diff.updates)) {
    add(name, { kind: "update", value });
    appends.push([name, value]);
  }
  for (const [name, patch] of Object.entries(diff.binaries)) add(name, { kind: "binary", patch });
  for (const [key, value] of diff.subDiffs) {
    if (!key.startsWith("s"))
      fail(DiffErrorCode.fieldAfterSubDiffs, `Did not expect more sections in diff but found one: ${key}`);
    const subDiff = asEmbeddedDocument(value);
    if (subDiff === undefined) fail(DiffErrorCode.subDiffNotObject, `Subdiffs should be objects, got ${key}`);
    add(key.slice(1), { kind: "subDiff", diff: openSubDiff(subDiff) });
  }
  for (const [name, value] of Object.entries(diff.inserts)) {
    add(name, { kind: "insert" });
    appends.push([name, value]);
  }
  return { fields, appends };
}

function applyObjectDiff(pre: Document, diff: ObjectDiff): Document {
  const { fields, appends } = buildTables(diff);
  const post: Document = {};
  const updatedInPlace = new Set<string>();
  for (const name of Object.keys(pre)) {
    const value = pre[name];
    const modification = fields.get(name);
    if (modification === undefined) {
      setField(post, name, value);
      continue;
    }
    switch (modification.kind) {
      case "delete":
      case "insert":
        // An inserted field leaves its old position and is appended below.
        break;
      case "update":
        setField(post, name, modification.value);
        updatedInPlace.add(name);
        break;
      case "binary":
        setField(post, name, applyBinaryPatch(value, modification.patch));
        break;
      case "subDiff":
        setField(post, name, applySubDiff(value, modification.diff));
        break;
    }
  }
  for (const [name, value] of appends) {
    if (!updatedInPlace.has(name)) setField(post, name, value);
  }
  return post;
}

/** A sub-diff meeting a value of another type gives null: a later entry overwrites the field. */
function applySubDiff(value: unknown, diff: SubDiff): unknown {
  if (diff.kind === "array") return Array.isArray(value) ? applyArrayDiff(value, diff) : null;
  const doc = asEmbeddedDocument(value);
  return doc === undefined ? null : applyObjectDiff(doc, diff);
}

function readArrayModifications(diff: ArrayDiff): ArrayModification[] {
  const modifications: ArrayModification[] = [];
  for (const [key, value] of diff.entries) {
    if (key.length < 2)
      fail(
        DiffErrorCode.arrayEntryNameTooShort,
        `expected field name to be at least two characters long, but found: ${key}`,
      );
    const digits = key.slice(1);
    if (!/^\d+$/.test(digits)) fail(DiffErrorCode.badArrayIndex, `Expected integer but got ${digits}`);
    const index = Number(digits);
    if (index > MAX_ARRAY_INDEX) fail(DiffErrorCode.objectTooLarge, `array index ${index} is too large`);
    // The server never writes indexes out of order; its applier would not terminate on them.
    const previous = modifications.at(-1);
    if (previous !== undefined && index <= previous.index) {
      fail(
        DiffErrorCode.badArrayIndex,
        `array diff indexes must ascend, got ${index} after ${previous.index}`,
      );
    }
    if (key[0] === "u") {
      modifications.push({ index, kind: "update", value });
    } else if (key[0] === "s") {
      const subDiff = asEmbeddedDocument(value);
      if (subDiff === undefined)
        fail(DiffErrorCode.arraySubDiffNotObject, `expected sub diff at index ${index}`);
      modifications.push({ index, kind: "subDiff", diff: openSubDiff(subDiff) });
    } else {
      fail(
        DiffErrorCode.badArrayEntryPrefix,
        `Expected either 'u' (update) or 's' (sub diff) at index ${index}`,
      );
    }
  }
  return modifications;
}

function applyArrayDiff(pre: unknown[], diff: ArrayDiff): unknown[] {
  const modifications = readArrayModifications(diff);
  const { newLength } = diff;
  const post: unknown[] = [];
  let next = 0;
  let index = 0;
  for (; index < pre.length && (newLength === undefined || index < newLength); index++) {
    const modification = modifications[next];
    if (modification?.index === index) {
      post.push(
        modification.kind === "update" ? modification.value : applySubDiff(pre[index], modification.diff),
      );
      next++;
    } else {
      post.push(pre[index]);
    }
  }
  // Past the pre-image: set updates, pad everything else (sub-diffs included) with null.
  for (; (newLength !== undefined && index < newLength) || next < modifications.length; index++) {
    const modification = modifications[next];
    if (modification?.index === index) {
      post.push(modification.kind === "update" ? modification.value : null);
      next++;
    } else {
      post.push(null);
    }
  }
  if (newLength !== undefined && newLength !== index) {
    fail(DiffErrorCode.arrayIndexBeyondLength, "array diff update index exceeds resize value");
  }
  return post;
}

/**
 * Binary patch (8.x, timeseries buckets): the first `o` bytes of the current value, then `d`,
 * keeping the current subtype. An offset past the end means a later entry shrank the value: no-op.
 */
function applyBinaryPatch(current: unknown, patch: unknown): unknown {
  const patchDoc = asEmbeddedDocument(patch);
  if (patchDoc === undefined)
    fail(DiffErrorCode.binaryPatchNotObject, "invalid parameter: expected an object");
  const offset = intFieldValue(patchDoc.o);
  if (offset < 0) fail(DiffErrorCode.binaryPatchNegativeOffset, "Binary diff offset must be non-negative");
  const data = binDataBytes(patchDoc.d);
  if (data === undefined)
    fail(DiffErrorCode.binaryPatchDataNotBinData, "Expected binary diff 'd' field to be of binData type");
  const currentBytes = binDataBytes(current);
  // The server asserts here; a fuzzy replay can meet another type, which a later entry fixes.
  if (currentBytes === undefined) return null;
  if (offset > currentBytes.length) return current;
  const bytes = Buffer.concat([currentBytes.subarray(0, offset), data]);
  return current instanceof Binary ? new Binary(bytes, current.sub_type) : bytes;
}

function binDataBytes(value: unknown): Uint8Array | undefined {
  if (value instanceof Binary) return value.buffer.subarray(0, value.position);
  if (value instanceof Uint8Array) return value;
  return undefined;
}

/** Like the server's `getIntField`: a number truncated to an integer, anything else INT_MIN. */
function intFieldValue(value: unknown): number {
  if (typeof value === "number") return Math.trunc(value);
  if (typeof value === "bigint") return Number(value);
  if (value instanceof Int32 || value instanceof Double) return Math.trunc(value.value);
  if (value instanceof Long) return value.toNumber();
  if (value instanceof Decimal128) return Math.trunc(Number(value.toString()));
  return -(2 ** 31);
}
