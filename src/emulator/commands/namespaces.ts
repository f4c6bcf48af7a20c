import type { Document } from "bson";
import type { Deployment } from "../deployment.js";
import { CommandError, ErrorCode } from "../errors.js";
import { ID_INDEX } from "../storage/indexes.js";
import { Collection } from "../storage/collection.js";
import { View } from "../storage/view.js";
import { Writer } from "../writer.js";

const INVALID_DB_CHARS = /[/\\. "$\0]/;

export function assertValidNamespace(db: string, name: string): void {
  if (db.length === 0 || INVALID_DB_CHARS.test(db) || db.length > 63) {
    throw new CommandError(ErrorCode.InvalidNamespace, `Invalid database name: '${db}'`);
  }
  if (name.length === 0 || name.includes("\0") || (name.includes("$") && !name.startsWith("oplog.$"))) {
    throw new CommandError(ErrorCode.InvalidNamespace, `Invalid collection name: ${db}.${name}`);
  }
}

/**
 * Creates a collection and logs the create entry, as an implicit or explicit create does. With
 * the writer of a transaction, the create joins the transaction's applyOps (4.4+) and an abort
 * removes the collection again.
 */
export function createCollection(
  deployment: Deployment,
  db: string,
  name: string,
  options: Document,
  writer: Writer = new Writer(deployment.oplog),
): Collection {
  assertValidNamespace(db, name);
  const collection = deployment.catalog.createCollection(db, name, { options });
  if (db !== "local") {
    writer.command(db, { create: name, ...options, idIndex: { ...ID_INDEX } }, { ui: collection.uuid }, () =>
      deployment.catalog.remove(db, name),
    );
  }
  return collection;
}

/** The collection a write targets, created on first write as MongoDB does. */
export function collectionForWrite(
  deployment: Deployment,
  db: string,
  name: string,
  writer?: Writer,
): Collection {
  const ns = deployment.catalog.get(db, name);
  if (ns instanceof View) {
    throw new CommandError(
      ErrorCode.CommandNotSupportedOnView,
      `Namespace ${db}.${name} is a view, not a collection`,
    );
  }
  if (ns) return ns;
  return createCollection(deployment, db, name, {}, writer);
}
