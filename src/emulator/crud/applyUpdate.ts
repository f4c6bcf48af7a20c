import { deserialize, serialize, type Document } from "bson";
import { Aggregator } from "mingo";
import { encodeIdKey } from "../../bson/keyEncoding.js";
import { RawDocument } from "../../bson/rawDocument.js";
import { applyDiff } from "../../oplog/diff/apply.js";
import { updateOplogObject } from "../../oplog/diff/compute.js";
import { CommandError, ErrorCode } from "../errors.js";
import { withIdFirst } from "./documentId.js";
import { deltaObject, modifierUpdateDiff, runModifierUpdate } from "./modifierUpdate.js";

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

/**
 * Applies a modifier or pipeline update to a stored document; returns undefined when nothing
 * changed (no write, no oplog entry).
 *
 * A modifier update logs the `$v: 2` diff its update nodes build (`modifierUpdate.ts`), whatever
 * its size; a pipeline update logs the diff calculator's result, or a replacement when the diff
 * would not be smaller (as the server decides). Either way the stored document is the diff applied
 * to the exact pre-image, so fields the update did not touch keep their BSON types.
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
  if (!Array.isArray(update)) {
    const { post, leaves } = runModifierUpdate(preRaw, update, { arrayFilters, inserting, exactUpdate });
    assertSameId(pre, post);
    const logged = modifierUpdateDiff(preRaw, post, leaves);
    if (!logged) return undefined;
    return { raw: Buffer.from(serialize(logged.doc)), o: deltaObject(logged.diff) };
  }
  const [post] = new Aggregator(update).run([deserialize(preRaw)]) as Document[];
  assertSameId(pre, post);
  const o = updateOplogObject(pre, post);
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
