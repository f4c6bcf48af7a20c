import { EJSON, type Document } from "bson";

/** A collection's kind, as mongodump's metadata `type` field names it. */
export type FsCollectionType = "collection" | "view" | "timeseries";

/** What `<coll>.metadata.json` holds. */
export interface MongodumpMetadata {
  /** `listCollections` options; an empty object is left out of the file, as mongodump does. */
  options: Document;
  /** `listIndexes` specs in server order (empty for a view). */
  indexes: Document[];
  /** The collection UUID as 32 lower-case hex digits, if known. */
  uuid?: string;
  collectionName: string;
  type: FsCollectionType;
}

const TYPES: ReadonlySet<string> = new Set<FsCollectionType>(["collection", "view", "timeseries"]);

/** True for a collection UUID as mongodump writes it: 32 lower-case hex digits. */
export function isMetadataUuid(uuid: string): boolean {
  return /^[0-9a-f]{32}$/.test(uuid);
}

/**
 * The metadata file's text, as `mongodump` (mongo-tools `mongodump/metadata_dump.go`) writes it:
 * canonical Extended JSON (`bson.MarshalExtJSON(meta, true, false)`), one line, fields in the
 * order options (omitted when empty), indexes (always an array), uuid (omitted when unknown),
 * collectionName, type. Field order inside options and index specs is kept as given, so pass
 * them as the server returned them (with Int32/Double/Long values where the server had them).
 */
export function metadataJson(meta: MongodumpMetadata): string {
  const doc: Document = {};
  if (Object.keys(meta.options).length > 0) doc.options = meta.options;
  doc.indexes = meta.indexes;
  if (meta.uuid !== undefined && meta.uuid !== "") {
    if (!isMetadataUuid(meta.uuid))
      throw new TypeError(`uuid must be 32 lower-case hex digits, not ${JSON.stringify(meta.uuid)}`);
    doc.uuid = meta.uuid;
  }
  doc.collectionName = meta.collectionName;
  doc.type = meta.type;
  return EJSON.stringify(doc, { relaxed: false });
}

/**
 * Reads a metadata file written by mongodump (any version: canonical or legacy relaxed JSON,
 * with or without uuid, collectionName and type) or by `metadataJson`. A missing collectionName
 * is `fallbackName` (the unescaped file name); a missing type is "collection", or "view" when
 * options name `viewOn`.
 */
export function parseMetadataJson(text: string, fallbackName?: string): MongodumpMetadata {
  const parsed: unknown = EJSON.parse(text, { relaxed: false });
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new Error("metadata is not a JSON object");
  }
  const doc = parsed as Document;
  const options: Document = doc.options ?? {};
  if (typeof options !== "object" || options === null || Array.isArray(options)) {
    throw new Error("metadata options is not an object");
  }
  const indexes: unknown = doc.indexes ?? [];
  if (!Array.isArray(indexes) || indexes.some((index) => typeof index !== "object" || index === null)) {
    throw new Error("metadata indexes is not an array of objects");
  }
  const collectionName: unknown = doc.collectionName ?? fallbackName;
  if (typeof collectionName !== "string") throw new Error("metadata has no collectionName");
  const type: unknown = doc.type ?? ("viewOn" in options ? "view" : "collection");
  if (typeof type !== "string" || !TYPES.has(type))
    throw new Error(`metadata type ${JSON.stringify(type)} is unknown`);
  const meta: MongodumpMetadata = {
    options,
    indexes: indexes as Document[],
    collectionName,
    type: type as FsCollectionType,
  };
  if (doc.uuid !== undefined) {
    if (typeof doc.uuid !== "string") throw new Error("metadata uuid is not a string");
    meta.uuid = doc.uuid;
  }
  return meta;
}
