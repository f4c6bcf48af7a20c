/**
 * The differential test's random workload, run through the official driver against the
 * emulator: CRUD with nested and array updates, replacements, upserts, deletes, index and
 * collMod changes, views, renames within and across databases, drops, dropDatabase and
 * multi-document transactions (withTransaction). Server errors (duplicate keys, conflicting
 * update paths...) are expected and counted; they write nothing.
 *
 * While the clone runs, every name given to a collection or view is fresh (never used before),
 * so a name read from the catalog keeps meaning the same collection while the clone reads it, as
 * an agent cloning by UUID would guarantee; before and after the clone, names are reused.
 */
import { Binary, Decimal128, Double, Int32, Long, ObjectId, type Document, type MongoClient } from "mongodb";
import type { Random } from "./random.js";

export const DATABASES = ["alpha", "beta", "gamma"];

const FIELDS = ["a", "b", "n", "s", "obj", "arr", "tags", "x"];

type Operation =
  | "insert"
  | "insertMany"
  | "update"
  | "updateMany"
  | "pipelineUpdate"
  | "replace"
  | "delete"
  | "deleteMany"
  | "createIndex"
  | "dropIndex"
  | "collMod"
  | "create"
  | "renameWithinDb"
  | "renameAcrossDbs"
  | "drop"
  | "dropDatabase"
  | "createView"
  | "dropView"
  | "modifyView"
  | "transaction";

const WEIGHTS: Record<Operation, number> = {
  insert: 30,
  insertMany: 5,
  update: 28,
  updateMany: 3,
  pipelineUpdate: 2,
  replace: 7,
  delete: 6,
  deleteMany: 1,
  createIndex: 3,
  dropIndex: 2,
  collMod: 2,
  create: 1.5,
  renameWithinDb: 1.5,
  renameAcrossDbs: 1,
  drop: 0.7,
  dropDatabase: 0.15,
  createView: 1,
  dropView: 0.5,
  modifyView: 0.5,
  transaction: 5,
};

/** An operation that needs something (a collection, a view) there is none of. */
class NothingToDo extends Error {}

interface Namespace {
  db: string;
  name: string;
  type: "collection" | "view";
}

export class Workload {
  /** Set while the clone runs: names given to collections and views must be fresh. */
  freshNamesOnly = false;
  readonly counts = { ok: 0, failed: 0 };
  readonly byOperation = new Map<string, { ok: number; failed: number }>();
  private namespaces: Namespace[] = [];
  private readonly usedNames = new Set<string>();
  private nameCounter = 0;

  constructor(
    private readonly client: MongoClient,
    private readonly rng: Random,
  ) {}

  async refresh(): Promise<void> {
    const found: Namespace[] = [];
    for (const db of DATABASES) {
      for (const info of await this.client.db(db).listCollections().toArray()) {
        if (info.name.startsWith("system.")) continue;
        found.push({ db, name: info.name, type: info.type === "view" ? "view" : "collection" });
        this.usedNames.add(`${db}.${info.name}`);
      }
    }
    this.namespaces = found;
  }

  async run(steps: number, between?: () => Promise<void>): Promise<void> {
    for (let i = 0; i < steps; i++) {
      await this.step();
      if (between) await between();
    }
  }

  async step(): Promise<void> {
    const operation = this.rng.weighted(WEIGHTS);
    const stats = this.byOperation.get(operation) ?? { ok: 0, failed: 0 };
    this.byOperation.set(operation, stats);
    try {
      await this.perform(operation);
      this.counts.ok++;
      stats.ok++;
    } catch (error) {
      const expected =
        error instanceof NothingToDo || (error instanceof Error && error.name.startsWith("Mongo"));
      if (!expected) throw error;
      this.counts.failed++;
      stats.failed++;
    }
    if (
      [
        "create",
        "renameWithinDb",
        "renameAcrossDbs",
        "drop",
        "dropDatabase",
        "createView",
        "dropView",
        "insert",
        "insertMany",
        "transaction",
      ].includes(operation)
    )
      await this.refresh();
  }

  private collections(): Namespace[] {
    return this.namespaces.filter((ns) => ns.type === "collection");
  }

  /** Throws a skip (counted as failed) when there is no collection yet. */
  private someCollection(): Namespace {
    const existing = this.collections();
    if (existing.length === 0) throw new NothingToDo();
    return this.rng.pick(existing);
  }

  /** A name for a new collection or view: fresh, or (outside the clone) sometimes one used before. */
  private newName(db: string, prefix = "c"): string {
    const reusable = [...this.usedNames].filter(
      (ns) => ns.startsWith(`${db}.${prefix}`) && !this.namespaces.some((n) => `${n.db}.${n.name}` === ns),
    );
    if (!this.freshNamesOnly && reusable.length > 0 && this.rng.chance(0.5))
      return this.rng.pick(reusable).slice(db.length + 1);
    const name = `${prefix}${this.nameCounter++}`;
    this.usedNames.add(`${db}.${name}`);
    return name;
  }

  /** A collection to write to: an existing one, or a new one (created implicitly by the write). */
  private target(): { db: string; name: string } {
    const existing = this.collections();
    if (existing.length > 0 && this.rng.chance(0.97)) return this.rng.pick(existing);
    const db = this.rng.pick(DATABASES);
    return { db, name: this.newName(db) };
  }

  private collection(ns: { db: string; name: string }) {
    return this.client.db(ns.db).collection<Document>(ns.name);
  }

  // Any BSON value can be an _id; the driver types filters for ObjectId only.
  private id(): Document["_id"] {
    // A small id space, so updates and deletes mostly find their document; equal numbers of
    // different types are the same _id.
    const roll = this.rng.next();
    if (roll < 0.5) return this.rng.int(16);
    if (roll < 0.58) return new Double(this.rng.int(16));
    if (roll < 0.63) return Long.fromNumber(this.rng.int(16));
    if (roll < 0.85) return `k${this.rng.int(8)}`;
    return { k: this.rng.int(4), z: this.rng.pick(["p", "q"]) };
  }

  private scalar(): unknown {
    switch (this.rng.int(11)) {
      case 0:
        return this.rng.int(100);
      case 1:
        return new Double(this.rng.int(1000) / 8);
      case 2:
        return Long.fromNumber(this.rng.int(1_000_000) * 1000);
      case 3:
        return Decimal128.fromString(`${this.rng.int(1000)}.${this.rng.int(100)}`);
      case 4:
        return `text-${this.rng.int(50)}`;
      case 5:
        return this.rng.chance(0.5);
      case 6:
        return null;
      case 7:
        return new Date(1_700_000_000_000 + this.rng.int(1_000_000) * 1000);
      case 8:
        return new ObjectId();
      case 9:
        return new Binary(Buffer.from([this.rng.int(256), this.rng.int(256), 7]), this.rng.pick([0, 4, 128]));
      default:
        return new Int32(this.rng.int(10) - 5);
    }
  }

  private value(depth = 0): unknown {
    const roll = this.rng.next();
    if (depth < 3 && roll < 0.15) return this.subdocument(depth + 1);
    if (depth < 3 && roll < 0.3) return Array.from({ length: this.rng.int(5) }, () => this.value(depth + 1));
    return this.scalar();
  }

  private subdocument(depth: number): Document {
    const doc: Document = {};
    for (let i = this.rng.int(4); i > 0; i--) doc[this.rng.pick(FIELDS)] = this.value(depth);
    return doc;
  }

  private document(): Document {
    const doc: Document = { _id: this.id() };
    for (const field of FIELDS) if (this.rng.chance(0.55)) doc[field] = this.value();
    if (this.rng.chance(0.6)) doc.arr = Array.from({ length: this.rng.int(6) }, () => this.rng.int(8));
    if (this.rng.chance(0.5)) doc.obj = { x: this.rng.int(5), y: { z: this.scalar() } };
    return doc;
  }

  private modifier(): Document {
    const update: Document = {};
    const used = new Set<string>();
    const add = (op: string, path: string, value: unknown) => {
      const root = path.split(".")[0];
      if (used.has(root)) return;
      used.add(root);
      update[op] = { ...(update[op] as Document | undefined), [path]: value };
    };
    for (let i = 1 + this.rng.int(3); i > 0; i--) {
      switch (this.rng.int(12)) {
        case 0:
          add("$set", this.rng.pick(["a", "obj.x", "obj.y.z", "deep.er.field", "s"]), this.value(1));
          break;
        case 1:
          add("$set", this.rng.pick(["arr.0", "arr.2", "arr.7", "tags.1.k"]), this.scalar());
          break;
        case 2:
          add(
            "$inc",
            this.rng.pick(["n", "obj.x", "counter"]),
            this.rng.pick([1, -2, 2.5, Long.fromNumber(3)]),
          );
          break;
        case 3:
          add(
            "$push",
            "arr",
            this.rng.chance(0.5)
              ? this.rng.int(8)
              : { $each: [this.rng.int(8), this.rng.int(8)], $slice: -6 },
          );
          break;
        case 4:
          add("$pull", "arr", this.rng.chance(0.7) ? this.rng.int(8) : { $gte: 5 });
          break;
        case 5:
          add("$unset", this.rng.pick(["a", "b", "obj.y", "arr.1", "s"]), "");
          break;
        case 6:
          add("$addToSet", "tags", this.rng.pick(["red", "green", { k: 1 }]));
          break;
        case 7:
          add("$pop", "arr", this.rng.pick([1, -1]));
          break;
        case 8:
          add("$max", "n", this.rng.int(50));
          break;
        case 9:
          add("$mul", "n", this.rng.pick([2, 0.5]));
          break;
        case 10:
          add("$rename", this.rng.pick(["a", "b"]), this.rng.pick(["renamedA", "renamedB"]));
          break;
        default:
          add("$set", "obj", this.subdocument(1));
      }
    }
    return update;
  }

  private async perform(operation: Operation): Promise<void> {
    const rng = this.rng;
    switch (operation) {
      case "insert":
        await this.collection(this.target()).insertOne(this.document());
        return;
      case "insertMany":
        await this.collection(this.target()).insertMany(
          Array.from({ length: 2 + rng.int(6) }, () => this.document()),
          { ordered: false },
        );
        return;
      case "update":
        await this.collection(this.target()).updateOne({ _id: this.id() }, this.modifier(), {
          upsert: rng.chance(0.15),
        });
        return;
      case "updateMany":
        await this.collection(this.target()).updateMany({ n: { $gte: rng.int(50) } }, this.modifier());
        return;
      case "pipelineUpdate":
        await this.collection(this.target()).updateOne({ _id: this.id() }, [
          { $set: { p: { $concat: ["p-", { $toString: rng.int(100) }] }, pipelined: true } },
        ]);
        return;
      case "replace": {
        const { _id: _ignored, ...fields } = this.document();
        await this.collection(this.target()).replaceOne({ _id: this.id() }, fields, {
          upsert: rng.chance(0.2),
        });
        return;
      }
      case "delete":
        await this.collection(this.target()).deleteOne({ _id: this.id() });
        return;
      case "deleteMany":
        await this.collection(this.target()).deleteMany({ n: { $lt: rng.int(20) } });
        return;
      case "createIndex": {
        const field = rng.pick(["n", "s", "obj.x", "a"]);
        const options: Document = rng.chance(0.3) ? { expireAfterSeconds: 100_000 + rng.int(1000) } : {};
        if (rng.chance(0.2)) options.sparse = true;
        await this.collection(this.target()).createIndex({ [field]: rng.pick([1, -1]) }, options);
        return;
      }
      case "dropIndex": {
        const ns = this.someCollection();
        const indexes = (await this.collection(ns).indexes()).filter((i) => i.name !== "_id_");
        if (indexes.length === 0) return;
        await this.collection(ns).dropIndex(rng.pick(indexes).name!);
        return;
      }
      case "collMod": {
        const ns = this.someCollection();
        const indexes = (await this.collection(ns).indexes()).filter((i) => i.name !== "_id_");
        const command: Document = { collMod: ns.name };
        if (indexes.length > 0 && rng.chance(0.6)) {
          const index = rng.pick(indexes);
          command.index =
            index.expireAfterSeconds !== undefined && rng.chance(0.5)
              ? { name: index.name, expireAfterSeconds: 200_000 + rng.int(1000) }
              : { name: index.name, hidden: rng.chance(0.7) };
        } else if (rng.chance(0.5)) {
          command.validator = { $or: [{ n: { $exists: true } }, { n: { $exists: false } }] };
          command.validationLevel = rng.pick(["strict", "moderate"]);
        } else {
          command.validationAction = rng.pick(["warn", "error"]);
        }
        await this.client.db(ns.db).command(command);
        return;
      }
      case "create": {
        const db = rng.pick(DATABASES);
        const options: Document = rng.chance(0.5)
          ? {
              validator: { $or: [{ n: { $exists: true } }, { n: { $exists: false } }] },
              validationAction: "warn",
            }
          : {};
        await this.client.db(db).createCollection(this.newName(db), options);
        return;
      }
      case "renameWithinDb": {
        const ns = this.someCollection();
        const others = this.collections().filter((c) => c.db === ns.db && c.name !== ns.name);
        const overwrite = !this.freshNamesOnly && others.length > 0 && rng.chance(0.3);
        const to = overwrite ? rng.pick(others).name : this.newName(ns.db);
        await this.client
          .db("admin")
          .command({ renameCollection: `${ns.db}.${ns.name}`, to: `${ns.db}.${to}`, dropTarget: overwrite });
        return;
      }
      case "renameAcrossDbs": {
        const ns = this.someCollection();
        const db = rng.pick(DATABASES.filter((d) => d !== ns.db));
        const others = this.collections().filter((c) => c.db === db);
        const overwrite = !this.freshNamesOnly && others.length > 0 && rng.chance(0.3);
        const to = overwrite ? rng.pick(others).name : this.newName(db);
        await this.client
          .db("admin")
          .command({ renameCollection: `${ns.db}.${ns.name}`, to: `${db}.${to}`, dropTarget: overwrite });
        return;
      }
      case "drop": {
        const ns = this.someCollection();
        await this.collection(ns).drop();
        return;
      }
      case "dropDatabase":
        await this.client.db(rng.pick(DATABASES)).dropDatabase();
        return;
      case "createView": {
        const source = this.someCollection();
        await this.client.db(source.db).createCollection(this.newName(source.db, "v"), {
          viewOn: source.name,
          pipeline: [{ $match: { n: { $gte: rng.int(10) } } }],
        });
        return;
      }
      case "dropView": {
        const views = this.namespaces.filter((ns) => ns.type === "view");
        if (views.length === 0) return;
        await this.collection(rng.pick(views)).drop();
        return;
      }
      case "modifyView": {
        const views = this.namespaces.filter((ns) => ns.type === "view");
        if (views.length === 0) return;
        const view = rng.pick(views);
        const source = this.collections().find((c) => c.db === view.db);
        if (!source) return;
        await this.client
          .db(view.db)
          .command({ collMod: view.name, viewOn: source.name, pipeline: [{ $project: { n: 1 } }] });
        return;
      }
      case "transaction":
        await this.transaction();
        return;
    }
  }

  private async transaction(): Promise<void> {
    const session = this.client.startSession();
    try {
      await session.withTransaction(async () => {
        for (let i = 2 + this.rng.int(3); i > 0; i--) {
          const existing = this.collections();
          const ns =
            existing.length > 0 && (this.freshNamesOnly || this.rng.chance(0.9))
              ? this.rng.pick(existing)
              : this.target();
          const collection = this.collection(ns);
          switch (this.rng.int(4)) {
            case 0:
              await collection.insertOne(this.document(), { session });
              break;
            case 1:
              await collection.updateOne({ _id: this.id() }, this.modifier(), { session });
              break;
            case 2:
              await collection.deleteOne({ _id: this.id() }, { session });
              break;
            default: {
              const { _id: _ignored, ...fields } = this.document();
              await collection.replaceOne({ _id: this.id() }, fields, { session, upsert: true });
            }
          }
        }
      });
    } finally {
      await session.endSession();
    }
  }
}
