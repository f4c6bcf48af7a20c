/**
 * Inserts, updates and deletes, applied as MongoDB applies them when replaying the oplog over a
 * copy that may be ahead of or behind the entry (initial sync's idempotent mode):
 *
 * - insert: the document is stored as logged; an existing document with the same `_id` is
 *   replaced (the clone may already hold a later version; the oplog brings it back in line);
 * - update with a `$v:2` diff or `$v:1` $set/$unset: applied to the stored document; if there is
 *   none, the `_id` goes to the missing set (an upsert, `b: true`, instead starts from `o2`);
 * - replacement: the logged document is stored, whether or not one existed (it is complete);
 * - delete: removes the document if present.
 *
 * Inserts, replacements and deletes settle a missing `_id` (they carry the whole outcome);
 * modifier updates do not. Writes to `<db>.system.views` also refresh the view catalog.
 */
import { serialize, type Document } from "bson";
import type { CollectionRecord } from "../../headdb/catalog.js";
import { deserializeExact } from "../../headdb/exactBson.js";
import { idKeyOf } from "../../headdb/keys.js";
import { SYSTEM_VIEWS } from "../../headdb/views.js";
import { applyDiff, DiffApplyError } from "../diff/apply.js";
import { applyError, collectionForWrite, splitNamespace, type ApplyContext } from "./context.js";
import type { OplogEntry } from "./entry.js";
import { applyV1Update, V1UpdateError } from "./v1Update.js";

type UpdateKind = "diff" | "v1" | "replacement";

export function applyCrud(ctx: ApplyContext, entry: OplogEntry, op: "i" | "u" | "d"): void {
  const { db, collection: name } = splitNamespace(entry);
  if (!ctx.include(db, name)) {
    ctx.stats.filtered++;
    return;
  }
  const o = entry.oBytes;
  if (!o) throw applyError(entry, "MALFORMED_ENTRY", `an '${op}' entry needs a document 'o'`);
  const collection = collectionForWrite(ctx, entry, db, name);
  if (op === "i") insert(ctx, entry, collection, o);
  else if (op === "u") update(ctx, entry, collection);
  else remove(ctx, entry, collection, o);
}

function insert(ctx: ApplyContext, entry: OplogEntry, collection: CollectionRecord, o: Buffer): void {
  const { head } = ctx;
  const idKey = keyOf(entry, o, "o");
  head.documents.putWithKey(collection.uuid, idKey, o);
  head.missing.remove(collection.uuid, idKey);
  if (collection.name === SYSTEM_VIEWS) head.refreshView(collection, deserializeExact(o)._id);
}

function remove(ctx: ApplyContext, entry: OplogEntry, collection: CollectionRecord, o: Buffer): void {
  const { head } = ctx;
  const idKey = keyOf(entry, o, "o");
  head.documents.delete(collection.uuid, idKey);
  head.missing.remove(collection.uuid, idKey);
  if (collection.name === SYSTEM_VIEWS) head.refreshView(collection, deserializeExact(o)._id);
}

function update(ctx: ApplyContext, entry: OplogEntry, collection: CollectionRecord): void {
  const { head } = ctx;
  const o2 = entry.o2Bytes;
  if (!o2) throw applyError(entry, "MALFORMED_ENTRY", "an update entry needs 'o2' with the document's _id");
  const idKey = keyOf(entry, o2, "o2");
  const query = deserializeExact(o2);
  const o = entry.o!;
  const kind = updateKind(entry, o);
  const { uuid } = collection;
  if (kind === "replacement") {
    // The whole new document; servers log it with its _id, older ones may not.
    const raw = o._id === undefined ? Buffer.from(serialize({ _id: query._id, ...o })) : entry.oBytes!;
    head.documents.putWithKey(uuid, idKey, raw);
    head.missing.remove(uuid, idKey);
  } else {
    const stored = head.documents.get(uuid, idKey);
    if (stored === undefined && !entry.upsert) {
      recordMissing(ctx, collection, idKey, query);
    } else {
      // An upsert's insert starts from the query's equality fields, as the server's does.
      const pre = stored === undefined ? query : deserializeExact(stored);
      const post = modify(entry, kind, pre, o);
      // A modifier update does not settle a missing _id: if the stored document is one an
      // earlier update could not fit, it stays stale until the fetch replaces it.
      if (post === undefined) recordMissing(ctx, collection, idKey, query);
      else head.documents.putWithKey(uuid, idKey, serialize(post));
    }
  }
  if (collection.name === SYSTEM_VIEWS) head.refreshView(collection, query._id);
}

/** The updated document, or undefined when the update does not fit it (see `v1Update.ts`). */
function modify(entry: OplogEntry, kind: "diff" | "v1", pre: Document, o: Document): Document | undefined {
  if (kind === "diff") {
    try {
      return applyDiff(pre, o.diff as Document);
    } catch (error) {
      if (error instanceof DiffApplyError || error instanceof TypeError)
        throw applyError(entry, "MALFORMED_DIFF", `cannot apply the $v:2 diff: ${error.message}`, {
          cause: error,
        });
      throw error;
    }
  }
  try {
    const result = applyV1Update(pre, o);
    return result.kind === "updated" ? result.doc : undefined;
  } catch (error) {
    if (error instanceof V1UpdateError)
      throw applyError(entry, "UNSUPPORTED_UPDATE", error.message, { cause: error });
    throw error;
  }
}

function recordMissing(
  ctx: ApplyContext,
  collection: CollectionRecord,
  idKey: Buffer,
  query: Document,
): void {
  ctx.head.missing.add(collection.uuid, idKey, serialize({ _id: query._id }));
  ctx.stats.missingRecorded++;
}

/**
 * `{$v: 2, diff}` is a delta; `$v: 1`, or (before 3.6) no `$v` with `$`-operators, is a modifier
 * update; anything else is the whole new document.
 */
function updateKind(entry: OplogEntry, o: Document): UpdateKind {
  if (o.$v !== undefined) {
    const version = Number(o.$v);
    if (version === 2 && o.diff !== undefined) return "diff";
    if (version === 1) return "v1";
    throw applyError(entry, "UNSUPPORTED_UPDATE", `update format $v: ${String(o.$v)} is not known`);
  }
  if (Object.keys(o).some((key) => key.startsWith("$"))) return "v1";
  return "replacement";
}

function keyOf(entry: OplogEntry, doc: Buffer, field: string): Buffer {
  try {
    return idKeyOf(doc);
  } catch (error) {
    throw applyError(entry, "MALFORMED_ENTRY", `'${field}' has no usable _id: ${(error as Error).message}`, {
      cause: error,
    });
  }
}
