import type { Document } from "bson";
import { CommandError, ErrorCode, namespaceNotFound } from "../errors.js";
import { Collection } from "../storage/collection.js";
import { collectionHash, databaseHash } from "../storage/dbHash.js";
import { View } from "../storage/view.js";
import type { CommandContext, CommandDefinition } from "./context.js";

function scaleOf(command: Document): number {
  const scale = command.scale === undefined ? 1 : Number(command.scale);
  if (!(scale >= 1)) throw new CommandError(ErrorCode.BadValue, "scale has to be >= 1");
  return scale;
}

/** Index sizes are estimates: the emulator keeps no index pages, so ~ 40 bytes a key. */
function indexSize(collection: Collection): number {
  return collection.count * 40;
}

function collStats(ctx: CommandContext): Document {
  const ns = ctx.deployment.catalog.get(ctx.db, ctx.collectionName);
  if (!ns) throw namespaceNotFound(ctx.ns);
  if (ns instanceof View)
    throw new CommandError(
      ErrorCode.CommandNotSupportedOnView,
      `Namespace ${ctx.ns} is a view, not a collection`,
    );
  const scale = scaleOf(ctx.command);
  const indexes = ns.indexes.list();
  const perIndex = indexes.length === 0 ? 0 : indexSize(ns) / scale;
  const reply: Document = {
    ns: ctx.ns,
    size: Math.floor(ns.dataSize / scale),
    count: ns.count,
    avgObjSize: ns.count === 0 ? 0 : Math.floor(ns.dataSize / ns.count),
    storageSize: Math.floor(ns.dataSize / scale),
    freeStorageSize: 0,
    capped: ns.capped,
    nindexes: indexes.length,
    indexBuilds: [],
    totalIndexSize: Math.floor(perIndex * indexes.length),
    totalSize: Math.floor((ns.dataSize + indexSize(ns) * indexes.length) / scale),
    indexSizes: Object.fromEntries(indexes.map((spec) => [spec.name, Math.floor(perIndex)])),
    scaleFactor: scale,
  };
  if (ns.capped) {
    reply.max = Number(ns.options.max ?? 0);
    reply.maxSize = Math.floor(Number(ns.options.size) / scale);
  }
  return reply;
}

function dbStats(ctx: CommandContext): Document {
  const scale = scaleOf(ctx.command);
  const namespaces = ctx.deployment.catalog.namespaces(ctx.db);
  const collections = namespaces.filter((ns): ns is Collection => ns instanceof Collection);
  const objects = collections.reduce((n, c) => n + c.count, 0);
  const dataSize = collections.reduce((n, c) => n + c.dataSize, 0);
  const indexes = collections.reduce((n, c) => n + c.indexes.list().length, 0);
  const indexBytes = collections.reduce((n, c) => n + indexSize(c) * c.indexes.list().length, 0);
  return {
    db: ctx.db,
    collections: collections.length,
    views: namespaces.length - collections.length,
    objects,
    avgObjSize: objects === 0 ? 0 : dataSize / objects,
    dataSize: Math.floor(dataSize / scale),
    storageSize: Math.floor(dataSize / scale),
    indexes,
    indexSize: Math.floor(indexBytes / scale),
    totalSize: Math.floor((dataSize + indexBytes) / scale),
    scaleFactor: scale,
    fsUsedSize: 0,
    fsTotalSize: 0,
  };
}

function dbHash(ctx: CommandContext): Document {
  const started = Date.now();
  const wanted = ctx.command.collections as string[] | undefined;
  const collections = ctx.deployment.catalog
    .namespaces(ctx.db)
    .filter((ns): ns is Collection => ns instanceof Collection)
    .filter((c) => !wanted || wanted.includes(c.name))
    .filter((c) => !(ctx.db === "local" && c.name === "oplog.rs"))
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const hashes: Array<[string, string]> = collections.map((c) => [c.name, collectionHash(c)]);
  return {
    host: ctx.deployment.hostAndPort,
    collections: Object.fromEntries(hashes),
    capped: collections.filter((c) => c.capped).map((c) => c.name),
    uuids: Object.fromEntries(collections.map((c) => [c.name, c.uuid])),
    md5: databaseHash(hashes),
    timeMillis: Date.now() - started,
    fromCache: [],
  };
}

export const statsCommands: CommandDefinition[] = [
  { names: ["collStats"], handler: collStats },
  { names: ["dbStats"], handler: dbStats },
  { names: ["dbHash", "dbhash"], handler: dbHash },
];
