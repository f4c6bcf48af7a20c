import { deserialize, Int32, serialize, type Document } from "bson";
import { Aggregator, update as mingoUpdate } from "mingo";
import { encodeIdKey } from "../../bson/keyEncoding.js";
import { RawDocument } from "../../bson/rawDocument.js";
import { applyDiff } from "../../oplog/diff/apply.js";
import { computeDiff, updateOplogObject } from "../../oplog/diff/compute.js";
import { CommandError, ErrorCode } from "../errors.js";
import { withIdFirst } from "./documentId.js";
import { restoreArithmeticTypes, withExactOperands } from "./exactOperands.js";

export interface UpdatedDocument {
  raw: Buffer;
  /** The oplog `o` of this update: `{$v: 2, diff}` or the whole new document. */
  o: Document | RawDocument;
}

export function isModifierUpdate(update: Document | Document[]): update is Document {
  return !Array.isArray(update) && Object.keys(update).some((key) => key.startsWith("$"));
}

function assertSameId(pre: Document, post: Document): void {
  if (!encodeIdKey(pre._id).equals(encodeIdKey(post._id ?? pre._id))) {
    throw new CommandError(
      ErrorCode.ImmutableField,
      "Performing an update on the path '_id' would modify the immutable field '_id'",
    );
  }
}

/** Runs a modifier or pipeline update on a deserialized copy of the document. */
function runUpdate(
  doc: Document,
  update: Document | Document[],
  arrayFilters: Document[] | undefined,
  inserting: boolean,
): Document {
  if (Array.isArray(update)) {
    const [result] = new Aggregator(update).run([doc]) as Document[];
    return result;
  }
  const { $setOnInsert, ...rest } = update;
  const modifier =
    inserting && $setOnInsert
      ? { ...rest, $set: { ...(rest.$set as Document), ...($setOnInsert as Document) } }
      : rest;
  if (Object.keys(modifier).length === 0) return doc;
  try {
    mingoUpdate(doc, modifier, arrayFilters);
  } catch (error) {
    const message = (error as Error).message;
    if (message.includes("immutable field '_id'")) throw new CommandError(ErrorCode.ImmutableField, message);
    throw new CommandError(ErrorCode.BadValue, `invalid update: ${message}`);
  }
  return doc;
}

/**
 * Applies a modifier or pipeline update to a stored document. The new document is the diff
 * applied to the exact pre-image, so fields the update did not touch keep their BSON types;
 * returns undefined when nothing changed (no write, no oplog entry).
 */
export function applyUpdate(
  preRaw: Buffer,
  update: Document | Document[],
  arrayFilters?: Document[],
  inserting = false,
  /** The update deserialized without promoting numbers, to keep the BSON types it stores. */
  exactUpdate?: Document | Document[],
): UpdatedDocument | undefined {
  const pre = deserialize(preRaw);
  const modifier =
    exactUpdate && !Array.isArray(update) && !Array.isArray(exactUpdate)
      ? withExactOperands(update, exactUpdate)
      : update;
  const post = runUpdate(deserialize(preRaw), modifier, arrayFilters, inserting);
  if (exactUpdate && !Array.isArray(exactUpdate)) {
    restoreArithmeticTypes(post, deserialize(preRaw, { promoteValues: false }), exactUpdate);
  }
  assertSameId(pre, post);
  // Modifier updates always log a $v:2 diff, whatever its size; pipeline updates log a
  // replacement when the diff would not be smaller (as the server's diff calculator decides).
  let o: Document | undefined;
  if (Array.isArray(update)) o = updateOplogObject(pre, post);
  else {
    const diff = computeDiff(pre, post);
    o = diff && { $v: new Int32(2), diff };
  }
  if (!o) return undefined;
  if (o.$v !== undefined && o.diff) {
    const exact = applyDiff(deserialize(preRaw, { promoteValues: false }), o.diff as Document);
    return { raw: Buffer.from(serialize(exact)), o };
  }
  const raw = withIdFirst(Buffer.from(serialize({ _id: pre._id, ...post })));
  return { raw, o: new RawDocument(raw) };
}

/** A replacement: the new document keeps the old `_id` (which it may repeat, not change). */
export function applyReplacement(preRaw: Buffer, replacement: Document): UpdatedDocument | undefined {
  const pre = deserialize(preRaw, { promoteValues: false });
  if (replacement._id !== undefined) assertSameId(deserialize(preRaw), { _id: replacement._id });
  const { _id: _ignored, ...fields } = replacement;
  const raw = Buffer.from(serialize({ _id: pre._id, ...fields }));
  if (raw.equals(preRaw)) return undefined;
  return { raw, o: new RawDocument(raw) };
}
