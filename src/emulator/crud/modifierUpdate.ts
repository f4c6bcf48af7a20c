import { deserialize, Int32, type Document } from "bson";
import { update as mingoUpdate } from "mingo";
import { asEmbeddedDocument, compareBsonValues } from "../../bson/compare.js";
import { applyDiff } from "../../oplog/diff/apply.js";
import { computeDiff } from "../../oplog/diff/compute.js";
import { diffFromUpdate, updateLeaves, type UpdateLeaf } from "../../oplog/diff/fromUpdate.js";
import { CommandError, ErrorCode } from "../errors.js";
import { restoreArithmeticTypes, withExactOperands } from "./exactOperands.js";
import { restoreMovedTypes } from "./exactValues.js";

export interface ModifierOptions {
  arrayFilters?: Document[];
  /** An upsert's insert: `$setOnInsert` applies. */
  inserting?: boolean;
  /** The update deserialized without promoting numbers, to keep the BSON types it stores. */
  exactUpdate?: Document | Document[];
}

export interface ModifierResult {
  /** The updated document, with the BSON types MongoDB would store where the update wrote. */
  post: Document;
  /** The update's leaves in the server's order; undefined for positional / filtered paths. */
  leaves: UpdateLeaf[] | undefined;
}

/** Runs a modifier update with mingo on a promoted copy, then restores the BSON types it lost. */
export function runModifierUpdate(
  preRaw: Buffer,
  update: Document,
  options: ModifierOptions = {},
): ModifierResult {
  const exact = options.exactUpdate && !Array.isArray(options.exactUpdate) ? options.exactUpdate : undefined;
  const leaves = updateLeaves(exact ?? update, { inserting: options.inserting });
  // With static paths the array operands' types can be restored afterwards, so mingo may compare
  // them as plain numbers; otherwise they go in exactly typed.
  const modifier = exact
    ? withExactOperands(update, exact, { promoteArrayOperands: leaves !== undefined })
    : update;
  const post = runMingo(deserialize(preRaw), modifier, options.arrayFilters, options.inserting ?? false);
  const preExact = deserialize(preRaw, { promoteValues: false });
  if (exact) restoreArithmeticTypes(post, preExact, exact);
  if (leaves) restoreMovedTypes(post, preExact, leaves);
  return { post, leaves };
}

function runMingo(doc: Document, update: Document, arrayFilters: Document[] | undefined, inserting: boolean) {
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
 * The `$v: 2` diff a server logs for this modifier update and the document it stores (the diff
 * applied to the exact pre-image, so untouched fields keep their types), or undefined for a no-op.
 *
 * The diff is built from the update's paths like the server's update nodes do (`fromUpdate.ts`).
 * When the paths are dynamic, or the built diff would not reproduce mingo's result (a mingo
 * quirk the rules do not cover), the pre/post diff calculator is the fallback: the stored
 * document must always be the update's result.
 */
export function modifierUpdateDiff(
  preRaw: Buffer,
  post: Document,
  leaves: UpdateLeaf[] | undefined,
): { diff: Document; doc: Document } | undefined {
  const preExact = deserialize(preRaw, { promoteValues: false });
  if (leaves) {
    const built = diffFromUpdate(preExact, post, leaves);
    if (built.kind === "noop" && sameContent(preExact, post)) return undefined;
    if (built.kind === "diff") {
      const doc = applyDiff(preExact, built.diff);
      if (sameContent(doc, post)) return { diff: built.diff, doc };
    }
  }
  const diff = computeDiff(deserialize(preRaw), post);
  return diff && { diff, doc: applyDiff(preExact, diff) };
}

/** The modifier update's oplog `o`. */
export function deltaObject(diff: Document): Document {
  return { $v: new Int32(2), diff };
}

/**
 * Same fields and values, field order aside (the server appends created fields in its own order,
 * mingo in the update's) and numbers compared by value (the post-image is partly promoted).
 */
export function sameContent(a: unknown, b: unknown): boolean {
  if (Array.isArray(a) || Array.isArray(b)) {
    return (
      Array.isArray(a) && Array.isArray(b) && a.length === b.length && a.every((x, i) => sameContent(x, b[i]))
    );
  }
  const docA = asEmbeddedDocument(a);
  const docB = asEmbeddedDocument(b);
  if (docA || docB) {
    if (!docA || !docB) return false;
    const names = (doc: Document) => Object.keys(doc).filter((name) => doc[name] !== undefined);
    const namesA = names(docA);
    return (
      namesA.length === names(docB).length &&
      namesA.every((name) => Object.hasOwn(docB, name) && sameContent(docA[name], docB[name]))
    );
  }
  // mingo leaves holes where it pads arrays; BSON writes them as null.
  try {
    return compareBsonValues(a ?? null, b ?? null) === 0;
  } catch {
    return false; // a value BSON cannot hold
  }
}
