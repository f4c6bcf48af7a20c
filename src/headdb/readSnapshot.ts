/**
 * A consistent view of the head database: every read goes through one LMDB read transaction, so
 * the documents, catalog, applied optime and change tracking it shows are those of one committed
 * write transaction, however many the applier commits while the view is open (LMDB keeps the
 * pages the view sees; see `HeadEnvironment.readView`). What a snapshot at applied optime T is
 * read from (DESIGN.md "Snapshots").
 *
 * A view only reads, only until `HeadDatabase.readSnapshot`'s callback returns or its promise
 * settles, and never inside `HeadDatabase.write` (such reads throw).
 */
import { Catalog } from "./catalog.js";
import { Changes } from "./changes.js";
import { databaseHash, type DatabaseHash } from "./dbHash.js";
import { Documents } from "./documents.js";
import type { HeadEnvironment, ReadOptions } from "./environment.js";
import { PendingTransactions } from "./pendingTransactions.js";
import { ResumeState, type OpTime } from "./resumeState.js";

export type SnapshotCatalog = Pick<
  Catalog,
  "collection" | "lookup" | "collectionByName" | "databases" | "namespaces" | "collections" | "detached"
>;
export type SnapshotDocuments = Pick<Documents, "get" | "scan" | "count">;
export type SnapshotChanges = Pick<
  Changes,
  "current" | "since" | "collectionChange" | "collectionsChangedSince" | "prunedThrough"
>;

export class HeadSnapshot {
  readonly catalog: SnapshotCatalog;
  readonly documents: SnapshotDocuments;
  readonly changes: SnapshotChanges;
  private readonly state: ResumeState;
  private readonly pending: PendingTransactions;
  private readonly fullCatalog: Catalog;
  private readonly fullDocuments: Documents;

  /** `read`: the options of an open `HeadEnvironment.readView`. */
  constructor(env: HeadEnvironment, read: ReadOptions) {
    const changes = new Changes(env, read);
    this.changes = changes;
    this.fullCatalog = new Catalog(env, read);
    this.catalog = this.fullCatalog;
    this.fullDocuments = new Documents(env, changes, read);
    this.documents = this.fullDocuments;
    this.state = new ResumeState(env, read);
    this.pending = new PendingTransactions(env, read);
  }

  /** The ts of the oldest entry held for an unfinished transaction, if any (see `PendingTransactions`). */
  heldFrom(): { t: number; i: number } | undefined {
    return this.pending.oldestHeld();
  }

  /** The applied optime T of this view. */
  appliedOptime(): OpTime | undefined {
    return this.state.appliedOptime();
  }

  /** The head database's identity (`ResumeState.identity`). */
  identity(): string {
    return this.state.identity() ?? "";
  }

  /** The change number of this view: it holds every change numbered up to it, none after. */
  changeNumber(): number {
    return this.changes.current();
  }

  /** dbHash of one database as of this view. */
  dbHash(db: string, only?: string[]): DatabaseHash {
    return databaseHash(this.fullCatalog, this.fullDocuments, db, only);
  }
}
