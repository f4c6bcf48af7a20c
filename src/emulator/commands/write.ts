import { deserialize, serialize, type Document } from "bson";
import { CommandError, ErrorCode } from "../errors.js";
import {
  applyReplacement,
  applyUpdate,
  isModifierUpdate,
  type UpdatedDocument,
} from "../crud/applyUpdate.js";
import { withIdFirst } from "../crud/documentId.js";
import { upsertDocument } from "../crud/upsert.js";
import { compileFilter } from "../query/matcher.js";
import { findDocuments } from "../query/findSource.js";
import { projectDocument } from "../query/sortAndProject.js";
import { idKeyOf, type Collection } from "../storage/collection.js";
import type { Writer } from "../writer.js";
import type { CommandContext, CommandDefinition } from "./context.js";
import { collectionForWrite } from "./namespaces.js";

interface WriteError {
  index: number;
  code: number;
  errmsg: string;
  [extra: string]: unknown;
}

function writeErrorOf(index: number, error: unknown): WriteError {
  if (error instanceof CommandError)
    return { index, code: error.code, errmsg: error.message, ...error.extra };
  throw error;
}

function writeReply(n: number, writeErrors: WriteError[], extra: Document = {}): Document {
  const reply: Document = { n, ...extra };
  if (writeErrors.length > 0) reply.writeErrors = writeErrors;
  return reply;
}

/** Checks a collection's validator (validationAction error, the default). */
function validate(collection: Collection, raw: Buffer, bypass: boolean): void {
  const validator = collection.options.validator as Document | undefined;
  if (!validator || bypass || collection.options.validationAction === "warn") return;
  const predicate = compileFilter(validator);
  if (predicate && !predicate(deserialize(raw))) {
    throw new CommandError(ErrorCode.DocumentValidationFailure, "Document failed validation", {
      errInfo: { failingDocumentId: deserialize(raw)._id, details: {} },
    });
  }
}

function insert(ctx: CommandContext): Document {
  const documents = ctx.rawArray("documents");
  const ordered = ctx.command.ordered !== false;
  const bypass = ctx.command.bypassDocumentValidation === true;
  const writer = ctx.writer();
  const collection = collectionForWrite(ctx.deployment, ctx.db, ctx.collectionName, writer);
  const writeErrors: WriteError[] = [];
  let n = 0;
  for (const [index, original] of documents.entries()) {
    try {
      const raw = withIdFirst(original);
      validate(collection, raw, bypass);
      writer.atStatement(index).insert(collection, raw);
      n++;
    } catch (error) {
      writeErrors.push(writeErrorOf(index, error));
      if (ordered) break;
    }
  }
  return writeReply(n, writeErrors);
}

interface UpdateStatement {
  q: Document;
  u: Document | Document[];
  upsert?: boolean;
  multi?: boolean;
  arrayFilters?: Document[];
  sort?: Document;
  /** `u` deserialized without promoting numbers, so stored values keep their BSON types. */
  exactU?: Document | Document[];
}

export interface UpdateOutcome {
  matched: number;
  modified: number;
  upsertedId?: unknown;
  /** The document before / after the (first) change, for findAndModify. */
  before?: Buffer;
  after?: Buffer;
}

/** Runs one update statement against a collection through `writer`. */
export function runUpdateStatement(
  collection: Collection,
  statement: UpdateStatement,
  replacementRaw: Buffer | undefined,
  writer: Writer,
  bypassValidation = false,
): UpdateOutcome {
  const { q, u, multi, upsert, arrayFilters, sort, exactU } = statement;
  if (multi && !isModifierUpdate(u) && !Array.isArray(u)) {
    throw new CommandError(
      ErrorCode.InvalidOptions,
      "multi update is not supported for replacement-style update",
    );
  }
  const matches = [...findDocuments(collection, { filter: q, sort, limit: multi ? 0 : 1 })];
  const outcome: UpdateOutcome = { matched: 0, modified: 0 };
  for (const pre of matches) {
    outcome.matched++;
    outcome.before ??= pre;
    const replacement = replacementRaw ? deserialize(replacementRaw, { promoteValues: false }) : undefined;
    const updated: UpdatedDocument | undefined = replacement
      ? applyReplacement(pre, replacement)
      : applyUpdate(pre, u, arrayFilters, false, exactU);
    outcome.after ??= updated?.raw ?? pre;
    if (!updated) continue;
    validate(collection, updated.raw, bypassValidation);
    writer.replace(collection, idKeyOf(pre), updated.raw, updated.o);
    outcome.modified++;
  }
  if (outcome.matched === 0 && upsert) {
    const raw = upsertDocument(q, u, replacementRaw, arrayFilters, exactU);
    validate(collection, raw, bypassValidation);
    writer.insert(collection, raw);
    outcome.upsertedId = deserialize(raw, { promoteValues: false })._id;
    outcome.after = raw;
  }
  return outcome;
}

function update(ctx: CommandContext): Document {
  const statementsRaw = ctx.rawArray("updates");
  const ordered = ctx.command.ordered !== false;
  const bypass = ctx.command.bypassDocumentValidation === true;
  const writer = ctx.writer();
  const collection = collectionForWrite(ctx.deployment, ctx.db, ctx.collectionName, writer);
  const writeErrors: WriteError[] = [];
  const upserted: Document[] = [];
  let n = 0;
  let nModified = 0;
  for (const [index, raw] of statementsRaw.entries()) {
    try {
      const statement = deserialize(raw) as UpdateStatement;
      statement.exactU = deserialize(raw, { promoteValues: false }).u as Document | Document[];
      if (statement.u === undefined || statement.q === undefined) {
        throw new CommandError(ErrorCode.FailedToParse, "update statement must have 'q' and 'u'");
      }
      // Replacement documents are taken from the raw statement, so their BSON types survive.
      const replacementRaw =
        !isModifierUpdate(statement.u) && !Array.isArray(statement.u)
          ? Buffer.from(serialize(deserialize(raw, { promoteValues: false }).u as Document))
          : undefined;
      const outcome = runUpdateStatement(
        collection,
        statement,
        replacementRaw,
        writer.atStatement(index),
        bypass,
      );
      n += outcome.matched;
      nModified += outcome.modified;
      if (outcome.upsertedId !== undefined) {
        n++;
        upserted.push({ index, _id: outcome.upsertedId });
      }
    } catch (error) {
      writeErrors.push(writeErrorOf(index, error));
      if (ordered) break;
    }
  }
  return writeReply(n, writeErrors, { nModified, ...(upserted.length > 0 ? { upserted } : {}) });
}

function remove(ctx: CommandContext): Document {
  const statements = ctx.documentArray("deletes");
  const ordered = ctx.command.ordered !== false;
  const collection = ctx.deployment.catalog.getCollection(ctx.db, ctx.collectionName);
  const writer = ctx.writer();
  const writeErrors: WriteError[] = [];
  let n = 0;
  for (const [index, statement] of statements.entries()) {
    try {
      if (!collection) continue;
      const limit = Number(statement.limit ?? 0);
      const matches = [
        ...findDocuments(collection, { filter: statement.q as Document, limit: limit === 1 ? 1 : 0 }),
      ];
      writer.atStatement(index);
      for (const raw of matches) if (writer.remove(collection, idKeyOf(raw))) n++;
    } catch (error) {
      writeErrors.push(writeErrorOf(index, error));
      if (ordered) break;
    }
  }
  return writeReply(n, writeErrors);
}

function findAndModify(ctx: CommandContext): Document {
  const { command } = ctx;
  const query = (command.query as Document | undefined) ?? {};
  const sort = command.sort as Document | undefined;
  const fields = command.fields as Document | undefined;
  const returnNew = command.new === true;
  const writer = ctx.writer();
  const collection = collectionForWrite(ctx.deployment, ctx.db, ctx.collectionName, writer);
  const shape = (raw: Buffer | undefined) => {
    if (!raw) return null;
    const doc = deserialize(raw);
    if (!fields || Object.keys(fields).length === 0) return doc;
    return deserialize(projectDocument(doc, fields));
  };
  if (command.remove === true) {
    const [raw] = [...findDocuments(collection, { filter: query, sort, limit: 1 })];
    if (raw) writer.remove(collection, idKeyOf(raw));
    return { lastErrorObject: { n: raw ? 1 : 0 }, value: shape(raw) };
  }
  if (command.update === undefined) {
    throw new CommandError(ErrorCode.FailedToParse, "Either an update or remove=true must be specified");
  }
  const u = command.update as Document | Document[];
  const replacementRaw =
    !isModifierUpdate(u) && !Array.isArray(u)
      ? Buffer.from(serialize(deserialize(ctx.rawBody, { promoteValues: false }).update as Document))
      : undefined;
  const outcome = runUpdateStatement(
    collection,
    {
      q: query,
      u,
      exactU: deserialize(ctx.rawBody, { promoteValues: false }).update as Document | Document[],
      upsert: command.upsert === true,
      sort,
      arrayFilters: command.arrayFilters as Document[] | undefined,
    },
    replacementRaw,
    writer,
    command.bypassDocumentValidation === true,
  );
  const lastErrorObject: Document = {
    n: outcome.matched > 0 || outcome.upsertedId !== undefined ? 1 : 0,
    updatedExisting: outcome.matched > 0,
  };
  if (outcome.upsertedId !== undefined) lastErrorObject.upserted = outcome.upsertedId;
  const value = returnNew ? outcome.after : outcome.upsertedId !== undefined ? undefined : outcome.before;
  return { lastErrorObject, value: shape(value) };
}

export const writeCommands: CommandDefinition[] = [
  { names: ["insert"], handler: insert, write: true },
  { names: ["update"], handler: update, write: true },
  { names: ["delete"], handler: remove, write: true },
  { names: ["findAndModify", "findandmodify"], handler: findAndModify, write: true },
];
