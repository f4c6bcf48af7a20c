import type { Document } from "bson";
import { CommandError, ErrorCode } from "../errors.js";
import { Collection, type CollectionOptions } from "./collection.js";
import { View } from "./view.js";

export type Namespace = Collection | View;

/** Databases and their collections and views. A database exists while it has a collection. */
export class Catalog {
  private readonly databases = new Map<string, Map<string, Namespace>>();

  databaseNames(): string[] {
    return [...this.databases.keys()].filter((db) => this.databases.get(db)!.size > 0).sort();
  }

  namespaces(db: string): Namespace[] {
    return [...(this.databases.get(db)?.values() ?? [])];
  }

  get(db: string, name: string): Namespace | undefined {
    return this.databases.get(db)?.get(name);
  }

  getCollection(db: string, name: string): Collection | undefined {
    const ns = this.get(db, name);
    return ns instanceof Collection ? ns : undefined;
  }

  createCollection(db: string, name: string, init: CollectionOptions): Collection {
    this.assertFree(db, name);
    const collection = new Collection(db, name, init);
    this.put(db, name, collection);
    return collection;
  }

  createView(db: string, name: string, options: Document): View {
    this.assertFree(db, name);
    const view = new View(db, name, options);
    this.put(db, name, view);
    return view;
  }

  remove(db: string, name: string): Namespace | undefined {
    const names = this.databases.get(db);
    const ns = names?.get(name);
    names?.delete(name);
    if (names && names.size === 0) this.databases.delete(db);
    return ns;
  }

  /** Moves a namespace under a new name, keeping its UUID, records and indexes. */
  rename(from: Namespace, toDb: string, toName: string): void {
    this.remove(from.db, from.name);
    from.db = toDb;
    from.name = toName;
    this.put(toDb, toName, from);
  }

  private put(db: string, name: string, ns: Namespace): void {
    let names = this.databases.get(db);
    if (!names) this.databases.set(db, (names = new Map()));
    names.set(name, ns);
  }

  private assertFree(db: string, name: string): void {
    if (this.get(db, name))
      throw new CommandError(ErrorCode.NamespaceExists, `Collection ${db}.${name} already exists.`);
  }
}
