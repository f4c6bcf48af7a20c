/**
 * Views. MongoDB keeps a database's view definitions as documents of `<db>.system.views`
 * (`{_id: "<db>.<view>", viewOn, pipeline, collation?}`), and replicates a view's create, collMod
 * and drop as inserts, updates and deletes of those documents. The head database stores
 * system.views like any collection (its documents are part of the database and of its dbHash)
 * and mirrors each definition into the catalog's name index, where listCollections-style readers
 * and restores find the views.
 */
import type { Document } from "bson";
import type { Catalog } from "./catalog.js";
import { deserializeExact } from "./exactBson.js";

export const SYSTEM_VIEWS = "system.views";

/** The catalog options of a view from its system.views document: `{viewOn, pipeline, collation?}`. */
export function viewOptions(definition: Document): Document {
  const options: Document = { viewOn: definition.viewOn, pipeline: definition.pipeline ?? [] };
  if (definition.collation !== undefined) options.collation = definition.collation;
  return options;
}

/** The system.views document MongoDB writes for a view (`durable_view_catalog.cpp`). */
export function viewDefinition(db: string, name: string, options: Document): Document {
  const definition: Document = {
    _id: `${db}.${name}`,
    viewOn: options.viewOn,
    pipeline: options.pipeline ?? [],
  };
  if (options.collation !== undefined) definition.collation = options.collation;
  return definition;
}

/**
 * Brings the catalog's view `viewNs` ("<db>.<view>") in line with its system.views document
 * (`raw`, or undefined when there is none any more).
 */
export function syncView(catalog: Catalog, db: string, viewNs: string, raw: Buffer | undefined): void {
  if (!viewNs.startsWith(`${db}.`)) return;
  const name = viewNs.slice(db.length + 1);
  if (raw === undefined) {
    catalog.removeView(db, name);
    return;
  }
  const definition = deserializeExact(raw);
  if (typeof definition.viewOn !== "string") return;
  catalog.putView({ db, name, options: viewOptions(definition) });
}

/** Removes every view of `db` from the catalog (its system.views was dropped or emptied). */
export function removeViews(catalog: Catalog, db: string): number {
  let removed = 0;
  for (const entry of catalog.namespaces(db))
    if (entry.type === "view" && catalog.removeView(db, entry.name)) removed++;
  return removed;
}
