import { UUID } from "bson";
import type { CollectionRecord } from "../../headdb/catalog.js";
import type { HeadDatabase } from "../../headdb/headDatabase.js";
import { isBackedUp } from "../../protocol/namespaces.js";
import type { OplogEntry } from "./entry.js";
import { entryText, OplogApplyError, type ApplyErrorCode } from "./errors.js";

/** Which namespaces the head database keeps; `collection` is undefined for a whole database. */
export type NamespaceFilter = (db: string, collection?: string) => boolean;

/** The default filter: what the agent backs up (`src/protocol/namespaces.ts`). */
export const defaultNamespaceFilter: NamespaceFilter = isBackedUp;

export interface ApplyStats {
  /** Entries (top-level) applied in this batch. */
  applied: number;
  /** Entries at or before the applied optime, left alone (already in the head database). */
  skipped: number;
  /** Operations on namespaces the filter leaves out. */
  filtered: number;
  /** `_id`s added to the missing set. */
  missingRecorded: number;
  /** Transaction entries held for later (partialTxn, prepare). */
  held: number;
  /** Transactions applied (committed chains, prepared and committed, single applyOps with lsid). */
  transactionsApplied: number;
  /** Held transactions dropped by abortTransaction. */
  transactionsAborted: number;
}

export function emptyStats(): ApplyStats {
  return {
    applied: 0,
    skipped: 0,
    filtered: 0,
    missingRecorded: 0,
    held: 0,
    transactionsApplied: 0,
    transactionsAborted: 0,
  };
}

export interface ApplyContext {
  head: HeadDatabase;
  include: NamespaceFilter;
  stats: ApplyStats;
}

/** An error about `entry` (an operation inside applyOps shows itself; the ts is its holder's). */
export function applyError(
  entry: OplogEntry,
  code: ApplyErrorCode,
  reason: string,
  options: { cause?: unknown; namespace?: string } = {},
): OplogApplyError {
  const ns = options.namespace ?? (typeof entry.ns === "string" ? entry.ns : undefined);
  return new OplogApplyError(
    code,
    reason,
    { namespace: ns, ts: entry.ts, entry: entryText(entry.raw) },
    { cause: options.cause },
  );
}

/** `db.collection` split at the first dot (collection names may hold dots, database names not). */
export function splitNamespace(
  entry: OplogEntry,
  ns: unknown = entry.ns,
): { db: string; collection: string } {
  if (typeof ns !== "string") throw applyError(entry, "MALFORMED_ENTRY", "the namespace is not a string");
  const dot = ns.indexOf(".");
  if (dot <= 0 || dot === ns.length - 1)
    throw applyError(entry, "MALFORMED_ENTRY", `'${ns}' is not a <db>.<collection> namespace`);
  return { db: ns.slice(0, dot), collection: ns.slice(dot + 1) };
}

/**
 * The collection a CRUD operation writes to: by `ui` when the entry has one (names change with
 * renames, UUIDs do not), else by name. A collection the head database does not know yet is
 * created empty under the entry's name: its create came before the oplog window (or after the
 * catalog was read), and its later drop, if any, is in the oplog to come.
 */
export function collectionForWrite(
  ctx: ApplyContext,
  entry: OplogEntry,
  db: string,
  name: string,
): CollectionRecord {
  const ui = entry.ui;
  const known = ui ? ctx.head.catalog.collection(ui) : ctx.head.catalog.collectionByName(db, name);
  return known ?? ctx.head.createCollection({ uuid: ui ?? new UUID(), db, name });
}

/**
 * The collection a command names: by `ui` when present, else by name; undefined when the head
 * database does not know it.
 */
export function knownCollection(
  ctx: ApplyContext,
  entry: OplogEntry,
  db: string,
  name: string,
): CollectionRecord | undefined {
  const ui = entry.ui;
  return ui ? ctx.head.catalog.collection(ui) : ctx.head.catalog.collectionByName(db, name);
}
