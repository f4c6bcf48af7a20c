import { randomInt } from "node:crypto";
import { deserialize, Long, serialize, UUID, type Document } from "bson";
import { RawDocument } from "../../bson/rawDocument.js";
import { CommandError, ErrorCode, namespaceNotFound } from "../errors.js";
import { compileFilter } from "../query/matcher.js";
import { Collection, idKeyOf } from "../storage/collection.js";
import { ID_INDEX, type IndexSpec } from "../storage/indexes.js";
import { View } from "../storage/view.js";
import { Writer } from "../writer.js";
import type { CommandContext, CommandDefinition } from "./context.js";
import { assertValidNamespace, createCollection } from "./namespaces.js";

/** Fields every command may carry that are not options of the command itself. */
const GENERIC_FIELDS = new Set([
  "$db",
  "lsid",
  "txnNumber",
  "autocommit",
  "startTransaction",
  "$clusterTime",
  "$readPreference",
  "writeConcern",
  "readConcern",
  "comment",
  "apiVersion",
  "apiStrict",
  "apiDeprecationErrors",
  "maxTimeMS",
]);

function commandOptions(command: Document, name: string): Document {
  const options: Document = {};
  for (const [key, value] of Object.entries(command))
    if (key !== name && !GENERIC_FIELDS.has(key)) options[key] = value;
  return options;
}

function listDatabases(ctx: CommandContext): Document {
  const { catalog } = ctx.deployment;
  const filter = compileFilter(ctx.command.filter as Document | undefined);
  const databases = catalog
    .databaseNames()
    .map((name) => {
      const sizeOnDisk = catalog
        .namespaces(name)
        .reduce((sum, ns) => sum + (ns instanceof Collection ? ns.dataSize : 0), 0);
      return { name, sizeOnDisk, empty: sizeOnDisk === 0 };
    })
    .filter((db) => !filter || filter(db));
  if (ctx.command.nameOnly === true) return { databases: databases.map(({ name }) => ({ name })) };
  const totalSize = databases.reduce((sum, db) => sum + db.sizeOnDisk, 0);
  return { databases, totalSize, totalSizeMb: Math.floor(totalSize / 1024 / 1024) };
}

export function collectionInfo(ns: Collection | View): Document {
  if (ns instanceof View) {
    return { name: ns.name, type: "view", options: { ...ns.options }, info: { readOnly: true } };
  }
  const info: Document = {
    name: ns.name,
    type: "collection",
    options: { ...ns.options },
    info: { readOnly: false, uuid: ns.uuid },
  };
  if (ns.indexes.find(ID_INDEX.name)) info.idIndex = { ...ID_INDEX };
  return info;
}

function listCollections(ctx: CommandContext): Document {
  const filter = compileFilter(ctx.command.filter as Document | undefined);
  const nameOnly = ctx.command.nameOnly === true;
  const infos = ctx.deployment.catalog
    .namespaces(ctx.db)
    .map(collectionInfo)
    .filter((info) => !filter || filter(info))
    .map((info) => (nameOnly ? { name: info.name, type: info.type } : info));
  const docs = infos.map((info) => Buffer.from(serialize(info)));
  return {
    cursor: {
      firstBatch: docs.map((doc) => new RawDocument(doc)),
      id: Long.fromNumber(0),
      ns: `${ctx.db}.$cmd.listCollections`,
    },
  };
}

function requireCollection(ctx: CommandContext, name = ctx.collectionName): Collection {
  const ns = ctx.deployment.catalog.get(ctx.db, name);
  if (ns instanceof View) {
    throw new CommandError(
      ErrorCode.CommandNotSupportedOnView,
      `Namespace ${ctx.db}.${name} is a view, not a collection`,
    );
  }
  if (!ns) throw namespaceNotFound(`${ctx.db}.${name}`);
  return ns;
}

function listIndexes(ctx: CommandContext): Document {
  const collection = requireCollection(ctx);
  return {
    cursor: {
      firstBatch: collection.indexes.list(),
      id: Long.fromNumber(0),
      ns: ctx.ns,
    },
  };
}

function create(ctx: CommandContext): Document {
  const { deployment, command } = ctx;
  const name = ctx.collectionName;
  assertValidNamespace(ctx.db, name);
  const options = commandOptions(command, "create");
  if (options.viewOn !== undefined) {
    if (typeof options.viewOn !== "string")
      throw new CommandError(ErrorCode.TypeMismatch, "'viewOn' must be a string");
    if (options.pipeline !== undefined && !Array.isArray(options.pipeline)) {
      throw new CommandError(ErrorCode.TypeMismatch, "'pipeline' must be an array");
    }
    if (deployment.catalog.get(ctx.db, name))
      throw new CommandError(ErrorCode.NamespaceExists, `Collection ${ctx.ns} already exists.`);
    const view = deployment.catalog.createView(ctx.db, name, {
      viewOn: options.viewOn,
      pipeline: options.pipeline ?? [],
      ...options,
    });
    // mongod keeps view definitions as documents of <db>.system.views: the oplog shows the
    // collection's create (with the first view) and an insert, not a create command.
    const writer = new Writer(deployment.oplog);
    writer.insert(systemViews(ctx, writer), viewDefinition(view));
    return {};
  }
  if (options.capped === true && (typeof options.size !== "number" || options.size <= 0)) {
    throw new CommandError(ErrorCode.InvalidOptions, "the 'size' field is required when 'capped' is true");
  }
  if (deployment.catalog.get(ctx.db, name))
    throw new CommandError(ErrorCode.NamespaceExists, `Collection ${ctx.ns} already exists.`);
  createCollection(deployment, ctx.db, name, options, ctx.writer());
  return {};
}

const SYSTEM_VIEWS = "system.views";

/** `<db>.system.views`, created (and logged) along with the database's first view. */
function systemViews(ctx: CommandContext, writer: Writer): Collection {
  const existing = ctx.deployment.catalog.getCollection(ctx.db, SYSTEM_VIEWS);
  return existing ?? createCollection(ctx.deployment, ctx.db, SYSTEM_VIEWS, {}, writer);
}

/** A view's document in system.views: `{_id: "<db>.<view>", viewOn, pipeline, collation?}`. */
function viewDefinition(view: View): Buffer {
  const definition: Document = {
    _id: `${view.db}.${view.name}`,
    viewOn: view.viewOn,
    pipeline: view.pipeline,
  };
  if (view.options.collation !== undefined) definition.collation = view.options.collation;
  return Buffer.from(serialize(definition));
}

function drop(ctx: CommandContext): Document {
  const { deployment } = ctx;
  const ns = deployment.catalog.get(ctx.db, ctx.collectionName);
  if (!ns) throw namespaceNotFound(ctx.ns);
  deployment.catalog.remove(ctx.db, ctx.collectionName);
  const writer = new Writer(deployment.oplog);
  if (ns instanceof View) {
    // Dropping a view deletes its definition from system.views; no drop command is logged.
    const views = deployment.catalog.getCollection(ctx.db, SYSTEM_VIEWS);
    if (views) writer.remove(views, idKeyOf(viewDefinition(ns)));
  } else {
    writer.command(ctx.db, { drop: ctx.collectionName }, { ui: ns.uuid, o2: { numRecords: ns.count } });
  }
  return { nIndexesWas: ns instanceof Collection ? ns.indexes.list().length : 0, ns: ctx.ns };
}

function dropDatabase(ctx: CommandContext): Document {
  const { deployment } = ctx;
  const writer = new Writer(deployment.oplog);
  const namespaces = deployment.catalog.namespaces(ctx.db);
  if (namespaces.length === 0) return {};
  // MongoDB drops each collection (logging each drop, system.views included, which takes the
  // views with it) and then logs dropDatabase.
  for (const ns of namespaces) {
    deployment.catalog.remove(ctx.db, ns.name);
    if (ns instanceof Collection)
      writer.command(ctx.db, { drop: ns.name }, { ui: ns.uuid, o2: { numRecords: ns.count } });
  }
  writer.command(ctx.db, { dropDatabase: 1 });
  return { dropped: ctx.db };
}

function splitNamespace(ns: unknown, what: string): [string, string] {
  if (typeof ns !== "string" || !ns.includes("."))
    throw new CommandError(ErrorCode.InvalidNamespace, `Invalid ${what} namespace: ${String(ns)}`);
  const at = ns.indexOf(".");
  return [ns.slice(0, at), ns.slice(at + 1)];
}

function renameCollection(ctx: CommandContext): Document {
  const { deployment, command } = ctx;
  if (ctx.db !== "admin")
    throw new CommandError(
      ErrorCode.Unauthorized,
      "renameCollection may only be run against the admin database.",
    );
  const [fromDb, fromName] = splitNamespace(command.renameCollection, "source");
  const [toDb, toName] = splitNamespace(command.to, "target");
  assertValidNamespace(toDb, toName);
  const source = deployment.catalog.get(fromDb, fromName);
  if (!source) throw namespaceNotFound(`${fromDb}.${fromName}`);
  if (source instanceof View)
    throw new CommandError(ErrorCode.CommandNotSupportedOnView, "cannot rename a view");
  const target = deployment.catalog.get(toDb, toName);
  if (target && command.dropTarget !== true)
    throw new CommandError(ErrorCode.NamespaceExists, "target namespace exists");
  const stayTemp = command.stayTemp === true;
  const writer = new Writer(deployment.oplog);
  if (fromDb === toDb) {
    renameWithinDb(ctx, source, toName, target, stayTemp, writer);
    return {};
  }
  // Across databases mongod copies (renameBetweenDBs in rename_collection.cpp): a temporary
  // collection in the target database with the source's options and a new UUID, its indexes,
  // every document, then a rename of the temporary collection within the target database and a
  // drop of the source. Each step is an ordinary oplog entry.
  const tmpName = temporaryRenameName(ctx, toDb);
  const tmp = createCollection(deployment, toDb, tmpName, { ...source.options }, writer);
  for (const spec of source.indexes.list()) {
    if (spec.name === ID_INDEX.name) continue;
    tmp.addIndex(spec);
    writer.command(toDb, { createIndexes: tmpName, ...spec }, { ui: tmp.uuid });
  }
  for (const [, raw] of source.scanNatural()) writer.insert(tmp, raw);
  renameWithinDb(ctx, tmp, toName, deployment.catalog.get(toDb, toName), stayTemp, writer);
  deployment.catalog.remove(fromDb, fromName);
  writer.command(fromDb, { drop: fromName }, { ui: source.uuid, o2: { numRecords: source.count } });
  return {};
}

/**
 * One renameCollection entry on the database's `$cmd`, with `ui` = the renamed collection's UUID;
 * a dropped target is named by `dropTarget: <UUID>` and counted in `o2: {numRecords}`.
 */
function renameWithinDb(
  ctx: CommandContext,
  source: Collection,
  toName: string,
  target: Collection | View | undefined,
  stayTemp: boolean,
  writer: Writer,
): void {
  const { catalog } = ctx.deployment;
  const db = source.db;
  const o: Document = { renameCollection: source.ns, to: `${db}.${toName}`, stayTemp };
  const extra: { ui: UUID; o2?: Document } = { ui: source.uuid };
  if (target) {
    catalog.remove(db, toName);
    if (target instanceof Collection) {
      o.dropTarget = target.uuid;
      extra.o2 = { numRecords: target.count };
    }
  }
  catalog.rename(source, db, toName);
  writer.command(db, o, extra);
}

/** `tmpXXXXX.renameCollection`, as mongod's makeUniqueCollectionNamespace names it. */
function temporaryRenameName(ctx: CommandContext, db: string): string {
  const chars = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
  for (;;) {
    const random = Array.from({ length: 5 }, () => chars[randomInt(chars.length)]).join("");
    const name = `tmp${random}.renameCollection`;
    if (!ctx.deployment.catalog.get(db, name)) return name;
  }
}

/** Index options collMod can change, in the order mongod's makeCollModCmdObj writes them. */
const COLLMOD_INDEX_OPTIONS = ["expireAfterSeconds", "hidden", "unique", "prepareUnique"];

/**
 * collMod, logged as mongod's onCollMod does: `o` is the command with the index change resolved to
 * `{name, <option>: value}` (expireAfterSeconds as a long), `o2` holds `collectionOptions_old`
 * (the whole old options, uuid first) and, for an index change, `indexOptions_old`. A view's new
 * definition is a replacement of its system.views document instead.
 */
function collMod(ctx: CommandContext): Document {
  const { deployment, command } = ctx;
  const ns = deployment.catalog.get(ctx.db, ctx.collectionName);
  if (!ns) throw namespaceNotFound(ctx.ns);
  const changes = commandOptions(command, "collMod");
  const writer = new Writer(deployment.oplog);
  if (ns instanceof View) {
    for (const [key, value] of Object.entries(changes)) ns.options[key] = value;
    const views = deployment.catalog.getCollection(ctx.db, SYSTEM_VIEWS);
    const definition = viewDefinition(ns);
    const key = idKeyOf(definition);
    if (views?.getById(key)) writer.replace(views, key, definition, new RawDocument(definition));
    return {};
  }
  const o: Document = { collMod: ctx.collectionName };
  const o2: Document = { collectionOptions_old: { uuid: ns.uuid, ...ns.options } };
  if (changes.index) {
    const change = changes.index as Document;
    const spec = change.name
      ? ns.indexes.find(String(change.name))
      : ns.indexes.findByKey(change.keyPattern as Document);
    if (!spec)
      throw new CommandError(
        ErrorCode.IndexNotFound,
        `cannot find index ${JSON.stringify(change)} for ns ${ctx.ns}`,
      );
    const result: Document = {};
    const index: Document = { name: spec.name };
    const indexOptionsOld: Document = {};
    for (const key of COLLMOD_INDEX_OPTIONS) {
      if (change[key] === undefined) continue;
      const asLogged = (value: unknown) =>
        key === "expireAfterSeconds" ? Long.fromNumber(Number(value)) : value;
      const old = spec[key] ?? (key === "expireAfterSeconds" ? undefined : false);
      result[`${key}_old`] = spec[key];
      result[`${key}_new`] = change[key];
      if (old !== undefined) indexOptionsOld[key] = asLogged(old);
      index[key] = asLogged(change[key]);
      // mongod's catalog entry removes the option and appends it at the end, and keeps hidden,
      // unique and prepareUnique only when true (IndexMetaData::update*Setting,
      // bson_collection_catalog_entry.cpp), so listIndexes shows no `hidden: false`.
      delete spec[key];
      if (key === "expireAfterSeconds" || change[key] === true) spec[key] = asLogged(change[key]);
    }
    o.index = index;
    o2.indexOptions_old = indexOptionsOld;
    writer.command(ctx.db, o, { ui: ns.uuid, o2 });
    return result;
  }
  for (const [key, value] of Object.entries(changes)) {
    ns.options[key] = value;
    o[key] = value;
  }
  writer.command(ctx.db, o, { ui: ns.uuid, o2 });
  return {};
}

function createIndexes(ctx: CommandContext): Document {
  const { deployment, command } = ctx;
  const specs = command.indexes as Document[] | undefined;
  if (!Array.isArray(specs) || specs.length === 0)
    throw new CommandError(ErrorCode.BadValue, "Must specify at least one index to create");
  const existing = deployment.catalog.get(ctx.db, ctx.collectionName);
  if (existing instanceof View)
    throw new CommandError(ErrorCode.CommandNotSupportedOnView, "Cannot create indexes on a view");
  const createdCollectionAutomatically = !existing;
  const writer = ctx.writer();
  const collection = existing ?? createCollection(deployment, ctx.db, ctx.collectionName, {}, writer);
  const numIndexesBefore = collection.indexes.list().length;
  // An empty collection gets its indexes at once, one createIndexes entry each; otherwise mongod
  // runs a two-phase build, logged as startIndexBuild and commitIndexBuild over all the new specs.
  const empty = collection.count === 0;
  const built: IndexSpec[] = [];
  // The specs with their BSON number types ({f: 1.0} stays a double), as mongod stores and logs them.
  const typedSpecs = deserialize(ctx.rawBody, { promoteValues: false }).indexes as Document[] | undefined;
  for (const [position, raw] of specs.entries()) {
    const typed = typedSpecs?.[position] ?? raw;
    if (!raw.key || typeof raw.key !== "object" || Object.keys(raw.key).length === 0) {
      throw new CommandError(ErrorCode.CannotCreateIndex, "Index spec must have a non-empty 'key' document");
    }
    if (typeof raw.name !== "string" || raw.name.length === 0) {
      throw new CommandError(ErrorCode.CannotCreateIndex, "Index spec must have a 'name'");
    }
    const spec: IndexSpec = {
      v: 2,
      key: typed.key as Document,
      name: raw.name,
      ...omit(typed, ["v", "key", "name", "ns"]),
    };
    const sameName = collection.indexes.find(spec.name);
    const sameKey = collection.indexes.findByKey(spec.key);
    if (sameName && JSON.stringify(sameName.key) !== JSON.stringify(spec.key)) {
      throw new CommandError(
        ErrorCode.IndexKeySpecsConflict,
        `An existing index has the same name as the requested index. Requested index: ${JSON.stringify(spec)}, existing index: ${JSON.stringify(sameName)}`,
      );
    }
    if (sameName || sameKey) {
      const other = (sameName ?? sameKey)!;
      if (JSON.stringify(omit(other, ["v"])) !== JSON.stringify(omit(spec, ["v"]))) {
        throw new CommandError(
          ErrorCode.IndexOptionsConflict,
          `An equivalent index already exists with a different name or options. Requested index: ${JSON.stringify(spec)}, existing index: ${JSON.stringify(other)}`,
        );
      }
      continue;
    }
    collection.addIndex(spec);
    built.push(spec);
    if (empty) {
      writer.command(ctx.db, { createIndexes: ctx.collectionName, ...spec }, { ui: collection.uuid }, () =>
        collection.indexes.remove(spec.name),
      );
    }
  }
  if (!empty && built.length > 0) {
    const indexBuildUUID = new UUID();
    for (const verb of ["startIndexBuild", "commitIndexBuild"]) {
      writer.command(
        ctx.db,
        { [verb]: ctx.collectionName, indexBuildUUID, indexes: built.map((spec) => ({ ...spec })) },
        { ui: collection.uuid },
      );
    }
  }
  const numIndexesAfter = collection.indexes.list().length;
  const reply: Document = { numIndexesBefore, numIndexesAfter, createdCollectionAutomatically };
  if (numIndexesAfter === numIndexesBefore) reply.note = "all indexes already exist";
  return reply;
}

function omit(doc: Document, keys: string[]): Document {
  return Object.fromEntries(Object.entries(doc).filter(([key]) => !keys.includes(key)));
}

function dropIndexes(ctx: CommandContext): Document {
  const { deployment, command } = ctx;
  const collection = requireCollection(ctx);
  const nIndexesWas = collection.indexes.list().length;
  const target = command.index as unknown;
  const writer = new Writer(deployment.oplog);
  let names: string[];
  if (target === "*")
    names = collection.indexes
      .list()
      .map((s) => s.name)
      .filter((n) => n !== ID_INDEX.name);
  else if (typeof target === "string") names = [target];
  else if (Array.isArray(target)) names = target.map(String);
  else if (target && typeof target === "object") {
    const spec = collection.indexes.findByKey(target as Document);
    if (!spec)
      throw new CommandError(ErrorCode.IndexNotFound, `can't find index with key: ${JSON.stringify(target)}`);
    names = [spec.name];
  } else
    throw new CommandError(
      ErrorCode.BadValue,
      "'index' must be a string, an array of strings or a key pattern",
    );
  for (const name of names) {
    if (name === ID_INDEX.name) throw new CommandError(ErrorCode.InvalidOptions, "cannot drop _id index");
    if (!collection.indexes.find(name))
      throw new CommandError(ErrorCode.IndexNotFound, `index not found with name [${name}]`);
  }
  for (const name of names) {
    const spec = collection.indexes.remove(name)!;
    writer.command(
      ctx.db,
      { dropIndexes: ctx.collectionName, index: name },
      { ui: collection.uuid, o2: spec },
    );
  }
  return { nIndexesWas };
}

export const ddlCommands: CommandDefinition[] = [
  { names: ["listDatabases"], handler: listDatabases },
  { names: ["listCollections"], handler: listCollections },
  { names: ["listIndexes"], handler: listIndexes },
  { names: ["create"], handler: create },
  { names: ["drop"], handler: drop },
  { names: ["dropDatabase"], handler: dropDatabase },
  { names: ["renameCollection"], handler: renameCollection },
  { names: ["collMod"], handler: collMod },
  { names: ["createIndexes"], handler: createIndexes },
  { names: ["dropIndexes", "deleteIndexes"], handler: dropIndexes },
];
