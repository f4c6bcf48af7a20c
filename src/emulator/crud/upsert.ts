import { deserialize, ObjectId, serialize, type Document } from "bson";
import { Aggregator, update as mingoUpdate } from "mingo";
import { withIdFirst } from "./documentId.js";
import { isModifierUpdate } from "./applyUpdate.js";
import { withExactOperands } from "./exactOperands.js";

function isOperatorObject(value: unknown): boolean {
  return (
    typeof value === "object" &&
    value !== null &&
    !Array.isArray(value) &&
    !("_bsontype" in value) &&
    Object.keys(value).some((key) => key.startsWith("$"))
  );
}

function setPath(doc: Document, path: string, value: unknown): void {
  const parts = path.split(".");
  let target = doc;
  for (const part of parts.slice(0, -1)) {
    if (typeof target[part] !== "object" || target[part] === null) target[part] = {};
    target = target[part] as Document;
  }
  target[parts[parts.length - 1]] = value;
}

/** The equality fields of a filter, which an upsert copies into the new document. */
function seedFromFilter(filter: Document): Document {
  const seed: Document = {};
  for (const [field, value] of Object.entries(filter)) {
    if (field === "$and" && Array.isArray(value))
      Object.assign(seed, ...value.map((f) => seedFromFilter(f as Document)));
    else if (field.startsWith("$")) continue;
    else if (isOperatorObject(value)) {
      const eq = (value as Document).$eq;
      if (eq !== undefined) setPath(seed, field, eq);
    } else setPath(seed, field, value);
  }
  return seed;
}

/** Builds the document an upsert inserts when nothing matched. */
export function upsertDocument(
  filter: Document,
  update: Document | Document[],
  replacementRaw: Buffer | undefined,
  arrayFilters?: Document[],
  exactUpdate?: Document | Document[],
): Buffer {
  const seed = seedFromFilter(filter);
  if (replacementRaw) {
    const replacement = deserialize(replacementRaw, { promoteValues: false });
    const id = replacement._id ?? seed._id ?? new ObjectId();
    const { _id: _ignored, ...fields } = replacement;
    return Buffer.from(serialize({ _id: id, ...fields }));
  }
  let doc: Document;
  if (Array.isArray(update)) {
    [doc] = new Aggregator(update).run([seed]) as Document[];
  } else if (isModifierUpdate(update)) {
    const typed =
      exactUpdate && !Array.isArray(exactUpdate) ? withExactOperands(update, exactUpdate) : update;
    const { $setOnInsert, ...rest } = typed;
    const modifier = {
      ...rest,
      $set: { ...(rest.$set as Document | undefined), ...($setOnInsert as Document | undefined) },
    };
    doc = seed;
    mingoUpdate(doc, modifier, arrayFilters);
  } else doc = seed;
  return withIdFirst(Buffer.from(serialize(doc)));
}
