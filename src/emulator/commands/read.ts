import { Long, serialize, type Document } from "bson";
import { encodeIdKeyFromDocument } from "../../bson/keyEncoding.js";
import { RawDocument } from "../../bson/rawDocument.js";
import {
  DEFAULT_FIRST_BATCH,
  GeneratorSource,
  isExhausted,
  takeBatch,
  type DocumentSource,
  type OpenCursor,
} from "../cursors.js";
import { CommandError, ErrorCode } from "../errors.js";
import { namespaceDocuments, runPipeline } from "../query/aggregate.js";
import { findSource } from "../query/findSource.js";
import { Collection } from "../storage/collection.js";
import { View } from "../storage/view.js";
import type { CommandContext, CommandDefinition } from "./context.js";

/** getMore waits this long for new data on an awaitData cursor when maxTimeMS is not given. */
const DEFAULT_AWAIT_MS = 1000;

function batchSizeOf(value: unknown, fallback: number): number {
  if (value === undefined) return fallback;
  const size = Number(value);
  if (!Number.isInteger(size) || size < 0)
    throw new CommandError(ErrorCode.BadValue, "batchSize must be a non-negative integer");
  return size === 0 && fallback !== DEFAULT_FIRST_BATCH ? Infinity : size;
}

function arraySource(docs: Document[]): DocumentSource {
  return new GeneratorSource(docs.map((doc) => Buffer.from(serialize(doc)))[Symbol.iterator]());
}

/** Replies with a first batch, keeping a cursor open if more may come. */
function cursorReply(
  ctx: CommandContext,
  ns: string,
  source: DocumentSource,
  batchSize: number,
  options: { awaitData?: boolean; singleBatch?: boolean; maxAwaitTimeMS?: number } = {},
): Document {
  const batch = takeBatch(source, batchSize);
  let id = Long.fromNumber(0);
  if (!options.singleBatch && (source.tailable || !isExhausted(source))) {
    const cursor = ctx.deployment.cursors.open(ns, source, {
      awaitData: options.awaitData === true,
      maxAwaitTimeMS: options.maxAwaitTimeMS,
      sessionKey: ctx.session.sessionKey,
    });
    id = cursor.id;
  } else source.close?.();
  return { cursor: { firstBatch: batch.map((doc) => new RawDocument(doc)), id, ns } };
}

function find(ctx: CommandContext): Document {
  const { command, deployment } = ctx;
  const name = ctx.collectionName;
  const ns = deployment.catalog.get(ctx.db, name);
  const limit = command.limit === undefined ? 0 : Number(command.limit);
  const batchSize = batchSizeOf(command.batchSize, DEFAULT_FIRST_BATCH);
  const singleBatch = command.singleBatch === true || limit < 0;
  if (command.tailable === true && !(ns instanceof Collection && ns.capped)) {
    throw new CommandError(
      ErrorCode.BadValue,
      `error processing query: ${ctx.ns} tailable cursor requested on non capped collection`,
    );
  }
  let source: DocumentSource;
  if (ns instanceof View) {
    const pipeline: Document[] = [];
    if (command.filter) pipeline.push({ $match: command.filter });
    if (command.sort) pipeline.push({ $sort: command.sort });
    if (command.skip) pipeline.push({ $skip: command.skip });
    if (limit) pipeline.push({ $limit: Math.abs(limit) });
    if (command.projection && Object.keys(command.projection).length > 0)
      pipeline.push({ $project: command.projection });
    source = arraySource(runPipeline(namespaceDocuments(deployment, ctx.db, name), pipeline));
  } else if (ns instanceof Collection) {
    assertHintExists(ns, command.hint);
    source = findSource(deployment, ns, {
      filter: command.filter as Document | undefined,
      sort: command.sort as Document | undefined,
      projection: command.projection as Document | undefined,
      skip: command.skip === undefined ? 0 : Number(command.skip),
      limit,
      tailable: command.tailable === true,
    });
    const hidden = deployment.faults.hiddenFromFind(ctx.ns);
    if (hidden && !source.tailable) source = withoutHidden(source, hidden);
  } else {
    source = arraySource([]);
  }
  return cursorReply(ctx, ctx.ns, source, Math.min(batchSize, limit > 0 ? limit : Infinity), {
    singleBatch,
    awaitData: command.awaitData === true,
  });
}

/** `source` without the documents whose `_id` key is in `hidden` (the hideFromFind fault). */
function withoutHidden(source: DocumentSource, hidden: ReadonlySet<string>): DocumentSource {
  function* visible(): Generator<Buffer> {
    try {
      for (let doc = source.next(); doc !== undefined; doc = source.next())
        if (!hidden.has(encodeIdKeyFromDocument(doc).toString("hex"))) yield doc;
    } finally {
      source.close?.();
    }
  }
  return new GeneratorSource(visible());
}

/** A hint must name an existing index (by name or key pattern) or be $natural, as on the server. */
function assertHintExists(collection: Collection, hint: unknown): void {
  if (hint === undefined || hint === null) return;
  if (typeof hint === "object" && Object.keys(hint as Document).length === 0) return;
  const found =
    typeof hint === "string"
      ? collection.indexes.find(hint)
      : "$natural" in (hint as Document) || collection.indexes.findByKey(hint as Document);
  if (!found) {
    throw new CommandError(
      ErrorCode.BadValue,
      `error processing query: ns=${collection.ns} planner returned error :: caused by :: hint provided does not correspond to an existing index`,
    );
  }
}

async function getMore(ctx: CommandContext): Promise<Document> {
  const { command, deployment } = ctx;
  const id = Long.isLong(command.getMore) ? command.getMore : Long.fromNumber(Number(command.getMore));
  const ns = `${ctx.db}.${String(command.collection)}`;
  const cursor: OpenCursor = deployment.cursors.get(id, ns);
  const batchSize = batchSizeOf(command.batchSize, Infinity);
  let batch: Buffer[];
  try {
    batch = takeBatch(cursor.source, batchSize);
    if (batch.length === 0 && cursor.awaitData && cursor.source.waitForMore) {
      const wait =
        command.maxTimeMS !== undefined
          ? Number(command.maxTimeMS)
          : (cursor.maxAwaitTimeMS ?? DEFAULT_AWAIT_MS);
      await cursor.source.waitForMore(Math.min(wait, 60_000));
      batch = takeBatch(cursor.source, batchSize);
    }
  } catch (error) {
    deployment.cursors.kill(id);
    throw error;
  }
  let nextId = cursor.id;
  if (!cursor.source.tailable && isExhausted(cursor.source)) {
    deployment.cursors.kill(id);
    nextId = Long.fromNumber(0);
  }
  return { cursor: { nextBatch: batch.map((doc) => new RawDocument(doc)), id: nextId, ns } };
}

function killCursors(ctx: CommandContext): Document {
  const ids = (ctx.command.cursors as unknown[] | undefined) ?? [];
  const cursorsKilled: Long[] = [];
  const cursorsNotFound: Long[] = [];
  for (const raw of ids) {
    const id = Long.isLong(raw) ? raw : Long.fromNumber(Number(raw));
    (ctx.deployment.cursors.kill(id) ? cursorsKilled : cursorsNotFound).push(id);
  }
  return { cursorsKilled, cursorsNotFound, cursorsAlive: [], cursorsUnknown: [] };
}

function aggregate(ctx: CommandContext): Document {
  const { command, deployment } = ctx;
  const pipeline = (command.pipeline as Document[] | undefined) ?? [];
  if (!Array.isArray(pipeline))
    throw new CommandError(ErrorCode.TypeMismatch, "'pipeline' option must be specified as an array");
  const cursorOptions = command.cursor as Document | undefined;
  if (!cursorOptions && command.explain !== true) {
    throw new CommandError(
      ErrorCode.FailedToParse,
      "The 'cursor' option is required, except for aggregate with the explain argument",
    );
  }
  const target = command.aggregate;
  const input = target === 1 ? [] : namespaceDocuments(deployment, ctx.db, String(target));
  const results = runPipeline(input, pipeline);
  const ns = target === 1 ? `${ctx.db}.$cmd.aggregate` : ctx.ns;
  return cursorReply(
    ctx,
    ns,
    arraySource(results),
    batchSizeOf(cursorOptions?.batchSize, DEFAULT_FIRST_BATCH),
  );
}

function count(ctx: CommandContext): Document {
  const { command } = ctx;
  const pipeline: Document[] = [];
  if (command.query && Object.keys(command.query).length > 0) pipeline.push({ $match: command.query });
  if (command.skip) pipeline.push({ $skip: Number(command.skip) });
  if (command.limit) pipeline.push({ $limit: Math.abs(Number(command.limit)) });
  const ns = ctx.deployment.catalog.get(ctx.db, ctx.collectionName);
  if (pipeline.length === 0 && ns instanceof Collection) return { n: ns.count };
  return { n: runPipeline(namespaceDocuments(ctx.deployment, ctx.db, ctx.collectionName), pipeline).length };
}

function distinct(ctx: CommandContext): Document {
  const { command } = ctx;
  const key = String(command.key);
  const pipeline: Document[] = [];
  if (command.query) pipeline.push({ $match: command.query });
  pipeline.push({ $unwind: { path: `$${key}`, preserveNullAndEmptyArrays: false } });
  pipeline.push({ $group: { _id: `$${key}` } });
  const values = runPipeline(namespaceDocuments(ctx.deployment, ctx.db, ctx.collectionName), pipeline).map(
    (d) => d._id,
  );
  return { values: values.filter((v) => v !== undefined) };
}

export const readCommands: CommandDefinition[] = [
  { names: ["find"], handler: find },
  { names: ["getMore"], handler: getMore },
  { names: ["killCursors"], handler: killCursors },
  { names: ["aggregate"], handler: aggregate },
  { names: ["count"], handler: count },
  { names: ["distinct"], handler: distinct },
];
