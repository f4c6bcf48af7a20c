/**
 * Command entries (`op: "c"`, `ns: "<db>.$cmd"`), applied to the catalog and documents the way
 * the server's `applyCommand_inlock` does in initial sync, where the copy may be ahead of the
 * entry: dropping what is not there, or creating what is there already, is not an error.
 *
 * The command is the first field of `o`. Collections are found by the entry's `ui` when it has
 * one: a collection keeps its UUID across renames, and a re-created collection gets a new one.
 */
import { Binary, Long, UUID, type Document } from "bson";
import { compareBsonValues } from "../../bson/compare.js";
import type { CollectionRecord, IndexBuild } from "../../headdb/catalog.js";
import { DEFAULT_ID_INDEX } from "../../headdb/headDatabase.js";
import {
  applyError,
  collectionForWrite,
  knownCollection,
  splitNamespace,
  type ApplyContext,
} from "./context.js";
import type { OplogEntry } from "./entry.js";
import { applyApplyOps, commitTransaction, abortTransaction } from "./transactions.js";

type CommandHandler = (ctx: ApplyContext, entry: OplogEntry, db: string, o: Document) => void;

const HANDLERS: Record<string, CommandHandler> = {
  create,
  drop,
  dropDatabase,
  renameCollection,
  collMod,
  createIndexes,
  dropIndexes,
  deleteIndexes: dropIndexes,
  startIndexBuild,
  commitIndexBuild,
  abortIndexBuild,
  applyOps: (ctx, entry) => applyApplyOps(ctx, entry),
  commitTransaction: (ctx, entry) => commitTransaction(ctx, entry),
  abortTransaction: (ctx, entry) => abortTransaction(ctx, entry),
  // A consistency check's start/stop markers: nothing to apply (`dbcheck.cpp`).
  dbCheck: () => {},
  emptycapped,
};

export function applyCommand(ctx: ApplyContext, entry: OplogEntry): void {
  const ns = entry.ns;
  if (typeof ns !== "string" || !ns.endsWith(".$cmd"))
    throw applyError(entry, "MALFORMED_ENTRY", "a command entry's namespace is <db>.$cmd");
  const db = ns.slice(0, -".$cmd".length);
  const o = entry.o;
  if (!o) throw applyError(entry, "MALFORMED_ENTRY", "a command entry needs a document 'o'");
  const name = Object.keys(o)[0];
  const handler = name === undefined ? undefined : Object.hasOwn(HANDLERS, name) ? HANDLERS[name] : undefined;
  if (!handler)
    throw applyError(entry, "UNKNOWN_COMMAND", `command '${name ?? ""}' is not one the applier knows`);
  handler(ctx, entry, db, o);
}

function stringField(entry: OplogEntry, o: Document, field: string): string {
  const value = o[field];
  if (typeof value !== "string" || value.length === 0)
    throw applyError(entry, "MALFORMED_ENTRY", `'${field}' must be a collection name`);
  return value;
}

/** False (and counted) when the filter leaves the collection out. */
function included(ctx: ApplyContext, db: string, name?: string): boolean {
  if (ctx.include(db, name)) return true;
  ctx.stats.filtered++;
  return false;
}

function without(o: Document, ...names: string[]): Document {
  return Object.fromEntries(Object.entries(o).filter(([key]) => !names.includes(key)));
}

/**
 * `{create: name, idIndex?, ...options}`. A view (`viewOn`) goes to the view catalog; servers log
 * views as writes to system.views instead, which `crud.ts` mirrors, so both forms work. A
 * collection is created empty, or emptied if the UUID is known (see `HeadDatabase.createCollection`).
 */
function create(ctx: ApplyContext, entry: OplogEntry, db: string, o: Document): void {
  const name = stringField(entry, o, "create");
  if (!included(ctx, db, name)) return;
  const options = without(o, "create", "idIndex");
  if (options.viewOn !== undefined) {
    ctx.head.putView(db, name, { ...options, pipeline: options.pipeline ?? [] });
    return;
  }
  const noIdIndex = options.clusteredIndex !== undefined || options.autoIndexId === false;
  const indexes = o.idIndex ? [o.idIndex as Document] : noIdIndex ? [] : [DEFAULT_ID_INDEX];
  const uuid = entry.ui ?? ctx.head.catalog.collectionByName(db, name)?.uuid ?? new UUID();
  ctx.head.createCollection({ uuid, db, name, options, indexes });
}

/** `{drop: name}`: the collection goes with its documents; an unknown one is already gone. */
function drop(ctx: ApplyContext, entry: OplogEntry, db: string, o: Document): void {
  const name = stringField(entry, o, "drop");
  if (!included(ctx, db, name)) return;
  const target = knownCollection(ctx, entry, db, name);
  if (target) ctx.head.dropCollection(target.uuid);
  else if (!entry.ui) ctx.head.catalog.removeView(db, name);
}

/** `{dropDatabase: 1}`: 7.0 logs each collection's drop first; whatever is left goes now. */
function dropDatabase(ctx: ApplyContext, _entry: OplogEntry, db: string): void {
  if (!included(ctx, db)) return;
  ctx.head.dropDatabase(db);
}

/**
 * `{renameCollection: "db.from", to: "db.to", stayTemp, dropTarget?}` with `ui` = the source.
 * The source keeps its UUID, also across databases (applyOps can carry such a rename; the
 * server's own cross-database rename is logged as create, inserts, rename and drop, which need
 * nothing special). `dropTarget` is the UUID of the collection the rename replaced (`true` in
 * servers before 4.2: whatever held the target name).
 */
function renameCollection(ctx: ApplyContext, entry: OplogEntry, _db: string, o: Document): void {
  const from = splitNamespace(entry, o.renameCollection);
  const to = splitNamespace(entry, o.to);
  const { head } = ctx;
  if (!ctx.include(from.db, from.collection) && !ctx.include(to.db, to.collection)) {
    ctx.stats.filtered++;
    return;
  }
  const source = knownCollection(ctx, entry, from.db, from.collection);
  const dropTarget = o.dropTarget;
  if (dropTarget instanceof Binary) {
    if (!source || !source.uuid.equals(dropTarget.buffer.subarray(0, dropTarget.position)))
      head.dropCollection(dropTarget);
  } else if (dropTarget === true) {
    const holder = head.catalog.lookup(to.db, to.collection);
    if (holder?.type === "view") head.catalog.removeView(to.db, to.collection);
    else if (holder && !(source && holder.collection.uuid.equals(source.uuid)))
      head.dropCollection(holder.collection.uuid);
  }
  if (!ctx.include(to.db, to.collection)) {
    // Renamed out of what the head database keeps (into a system namespace): gone from here.
    if (source) head.dropCollection(source.uuid);
    return;
  }
  if (!source) {
    head.createCollection({ uuid: entry.ui ?? new UUID(), db: to.db, name: to.collection });
    return;
  }
  head.renameCollection(source.uuid, to.db, to.collection);
}

/** Collection options collMod names differently from listCollections. */
const COLLMOD_OPTION_NAMES: Record<string, string> = { cappedSize: "size", cappedMax: "max" };

/**
 * `{collMod: name, <option>: value..., index?: {name | keyPattern, <index option>: value}}`, as the
 * server's `onCollMod` logs it (the resolved changes; `o2` holds the old values, not needed here).
 */
function collMod(ctx: ApplyContext, entry: OplogEntry, db: string, o: Document): void {
  const name = stringField(entry, o, "collMod");
  if (!included(ctx, db, name)) return;
  const { head } = ctx;
  if (!entry.ui) {
    const holder = head.catalog.lookup(db, name);
    if (holder?.type === "view") {
      head.putView(db, name, { ...holder.view.options, ...without(o, "collMod") });
      return;
    }
  }
  const target = knownCollection(ctx, entry, db, name);
  if (!target) return;
  const record: CollectionRecord = {
    ...target,
    options: { ...target.options },
    indexes: [...target.indexes],
  };
  for (const [option, value] of Object.entries(without(o, "collMod", "index"))) {
    const key = COLLMOD_OPTION_NAMES[option] ?? option;
    if (key === "expireAfterSeconds" && value === "off") delete record.options[key];
    else if (key === "timeseries" && isDocument(value) && isDocument(record.options.timeseries))
      record.options.timeseries = { ...record.options.timeseries, ...value };
    else record.options[key] = value;
  }
  if (isDocument(o.index)) modifyIndex(record, o.index);
  head.catalog.putCollection(record);
}

/**
 * An index option change, as the server's catalog entry makes it (`IndexMetaData::update*Setting`
 * in `bson_collection_catalog_entry.cpp`): the option is removed from the spec and appended at its
 * end; `expireAfterSeconds` is stored as a long; `hidden`, `unique` and `prepareUnique` are only
 * kept when true; converting to unique ends `prepareUnique` (`coll_mod_index.cpp`), and
 * `forceNonUnique` removes `unique`. An index the head database does not have is left alone: it
 * was dropped later in the oplog, or will be rebuilt.
 */
function modifyIndex(record: CollectionRecord, change: Document): void {
  const position = record.indexes.findIndex((spec) =>
    typeof change.name === "string"
      ? spec.name === change.name
      : isDocument(change.keyPattern) && compareBsonValues(spec.key, change.keyPattern) === 0,
  );
  if (position < 0) return;
  const spec: Document = { ...record.indexes[position] };
  for (const [option, value] of Object.entries(without(change, "name", "keyPattern"))) {
    switch (option) {
      case "expireAfterSeconds":
        delete spec[option];
        spec[option] = value instanceof Long ? value : Long.fromNumber(Number(value));
        break;
      case "hidden":
      case "unique":
      case "prepareUnique":
        delete spec[option];
        if (value === true) spec[option] = true;
        if (option === "unique" && value === true) delete spec.prepareUnique;
        break;
      case "forceNonUnique":
        if (value === true) delete spec.unique;
        break;
      default:
        delete spec[option];
        spec[option] = value;
    }
  }
  record.indexes[position] = spec;
}

/** Adds or replaces (by name) index specs, keeping the order in which they were created. */
function withIndexes(indexes: Document[], specs: Document[]): Document[] {
  const result = [...indexes];
  for (const spec of specs) {
    const at = result.findIndex((existing) => existing.name === spec.name);
    if (at >= 0) result[at] = spec;
    else result.push(spec);
  }
  return result;
}

function indexSpecs(entry: OplogEntry, o: Document): Document[] {
  const specs = o.indexes;
  if (!Array.isArray(specs) || !specs.every((spec) => isDocument(spec) && typeof spec.name === "string"))
    throw applyError(entry, "MALFORMED_ENTRY", "'indexes' must be an array of index specs");
  return specs as Document[];
}

/** `{createIndexes: name, v, key, name, ...}`: one index, built at once (empty collection). */
function createIndexes(ctx: ApplyContext, entry: OplogEntry, db: string, o: Document): void {
  const name = stringField(entry, o, "createIndexes");
  if (!included(ctx, db, name)) return;
  const spec = without(o, "createIndexes");
  if (typeof spec.name !== "string")
    throw applyError(entry, "MALFORMED_ENTRY", "the index spec needs a name");
  const target = collectionForWrite(ctx, entry, db, name);
  ctx.head.catalog.putCollection({ ...target, indexes: withIndexes(target.indexes, [spec]) });
}

function buildId(entry: OplogEntry, o: Document): Binary {
  const id = o.indexBuildUUID;
  if (!(id instanceof Binary)) throw applyError(entry, "MALFORMED_ENTRY", "'indexBuildUUID' must be a UUID");
  return id;
}

function otherBuilds(builds: IndexBuild[], id: Binary): IndexBuild[] {
  return builds.filter((build) => !Buffer.from(build.buildUUID.buffer).equals(Buffer.from(id.buffer)));
}

/** Two-phase build started: the indexes are not ready yet (listIndexes would not show them). */
function startIndexBuild(ctx: ApplyContext, entry: OplogEntry, db: string, o: Document): void {
  const name = stringField(entry, o, "startIndexBuild");
  if (!included(ctx, db, name)) return;
  const id = buildId(entry, o);
  const target = collectionForWrite(ctx, entry, db, name);
  const indexBuilds = [
    ...otherBuilds(target.indexBuilds, id),
    { buildUUID: id, indexes: indexSpecs(entry, o) },
  ];
  ctx.head.catalog.putCollection({ ...target, indexBuilds });
}

/** The build's indexes are ready: commitIndexBuild names them all, start or not. */
function commitIndexBuild(ctx: ApplyContext, entry: OplogEntry, db: string, o: Document): void {
  const name = stringField(entry, o, "commitIndexBuild");
  if (!included(ctx, db, name)) return;
  const id = buildId(entry, o);
  const target = collectionForWrite(ctx, entry, db, name);
  ctx.head.catalog.putCollection({
    ...target,
    indexes: withIndexes(target.indexes, indexSpecs(entry, o)),
    indexBuilds: otherBuilds(target.indexBuilds, id),
  });
}

/** The build failed: its indexes never became ready. */
function abortIndexBuild(ctx: ApplyContext, entry: OplogEntry, db: string, o: Document): void {
  const name = stringField(entry, o, "abortIndexBuild");
  if (!included(ctx, db, name)) return;
  const id = buildId(entry, o);
  const target = knownCollection(ctx, entry, db, name);
  if (!target) return;
  const aborted = new Set(indexSpecs(entry, o).map((spec) => spec.name as string));
  ctx.head.catalog.putCollection({
    ...target,
    indexes: target.indexes.filter((spec) => !aborted.has(spec.name as string)),
    indexBuilds: otherBuilds(target.indexBuilds, id),
  });
}

/** `{dropIndexes: name, index: <name> | [names] | <key pattern> | "*"}`; `o2` is the dropped spec. */
function dropIndexes(ctx: ApplyContext, entry: OplogEntry, db: string, o: Document): void {
  const command = Object.keys(o)[0];
  const name = stringField(entry, o, command);
  if (!included(ctx, db, name)) return;
  const target = knownCollection(ctx, entry, db, name);
  if (!target) return;
  const index = o.index;
  const drops = (spec: Document): boolean => {
    if (index === "*") return spec.name !== "_id_";
    if (typeof index === "string") return spec.name === index;
    if (Array.isArray(index)) return index.includes(spec.name);
    if (isDocument(index)) return compareBsonValues(spec.key, index) === 0;
    throw applyError(entry, "MALFORMED_ENTRY", "'index' must be a name, names or a key pattern");
  };
  ctx.head.catalog.putCollection({ ...target, indexes: target.indexes.filter((spec) => !drops(spec)) });
}

/** `{emptycapped: name}` (servers before 7.0): the collection loses its documents. */
function emptycapped(ctx: ApplyContext, entry: OplogEntry, db: string, o: Document): void {
  const name = stringField(entry, o, "emptycapped");
  if (!included(ctx, db, name)) return;
  const target = knownCollection(ctx, entry, db, name);
  if (target) ctx.head.emptyCollection(target.uuid);
}

function isDocument(value: unknown): value is Document {
  return typeof value === "object" && value !== null && !Array.isArray(value) && !("_bsontype" in value);
}
