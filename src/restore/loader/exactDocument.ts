/**
 * Documents go to the target through the driver, which serializes JS objects: each raw document
 * is deserialized with the project's exact options (src/headdb/exactBson.ts) and serialized back
 * here with the options the driver's insert uses; only documents that come back byte for byte are
 * sent, so the target stores the snapshot's bytes and its dbHash can equal the manifest's MD5.
 * Where the dbHash is compared afterwards, a plain document (plainDocument.ts) skips the compare.
 * What JS objects cannot carry (DBPointer, BSON Undefined, repeated or out-of-order integer-like
 * field names) is an UnrepresentableDocumentError naming the collection and `_id`.
 */
import { deserialize, EJSON, serialize, type Document } from "bson";
import { elements } from "../../bson/elements.js";
import { deserializeExact, EXACT_BSON } from "../../headdb/exactBson.js";
import { UnrepresentableDocumentError } from "./errors.js";
import { isPlainDocument } from "./plainDocument.js";

/** The options the driver serializes insert documents with (no key checks, undefined kept). */
export const DRIVER_SERIALIZE = {
  checkKeys: false,
  ignoreUndefined: false,
  serializeFunctions: false,
} as const;

/** Exact reading of a plain document, whose strings isPlainDocument has already found valid UTF-8. */
const PLAIN_READ = { ...EXACT_BSON, validation: { utf8: false } } as const;

const DOCUMENT = 0x03;
const ARRAY = 0x04;
const UNDEFINED = 0x06;
const DBPOINTER = 0x0c;
const CODE_W_SCOPE = 0x0f;
const INTEGER_NAME = /^(0|[1-9][0-9]{0,9})$/;

function isArrayIndexName(name: string): boolean {
  return INTEGER_NAME.test(name) && Number(name) <= 4294967294;
}

/** Why `bytes` (a document starting at `start`) does not survive a JS object, if we can tell. */
export function unrepresentableReason(
  bytes: Uint8Array,
  start = 0,
  path = "",
  isArray = false,
): string | undefined {
  const names = new Set<string>();
  let sawNonInteger = false;
  let lastInteger = -1;
  for (const element of elements(bytes, start)) {
    const field = path === "" ? element.name : `${path}.${element.name}`;
    if (element.type === DBPOINTER)
      return `field '${field}' is a DBPointer, which the driver turns into a DBRef`;
    if (element.type === UNDEFINED)
      return `field '${field}' is BSON Undefined, which the driver writes as null`;
    if (names.has(element.name)) return `field name '${field}' appears twice`;
    names.add(element.name);
    if (!isArray && isArrayIndexName(element.name)) {
      const value = Number(element.name);
      if (sawNonInteger || value < lastInteger) {
        return `integer-like field name '${field}' follows other fields, and a JS object moves it first`;
      }
      lastInteger = value;
    } else {
      sawNonInteger = true;
    }
    if (element.type === DOCUMENT || element.type === ARRAY) {
      const inner = unrepresentableReason(bytes, element.valueStart, field, element.type === ARRAY);
      if (inner) return inner;
    } else if (element.type === CODE_W_SCOPE) {
      // int32 total, string (int32 length + bytes), then the scope document.
      const view = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      const scopeStart = element.valueStart + 4 + 4 + view.readInt32LE(element.valueStart + 4);
      const inner = unrepresentableReason(bytes, scopeStart, `${field}.$scope`);
      if (inner) return inner;
    }
  }
  return undefined;
}

function describeId(doc: Document | undefined, bytes: Uint8Array): string {
  try {
    if (doc && "_id" in doc) return EJSON.stringify(doc._id, { relaxed: false });
  } catch {
    // fall through to the byte offset-free description
  }
  return `(no readable _id, ${bytes.byteLength} bytes)`;
}

export interface ExactDocumentOptions {
  /**
   * Serialize every document back and compare, plain ones included. Default true; a loader turns
   * it off for collections whose dbHash it compares afterwards, where a plain document's bytes
   * are certain (plainDocument.ts) and anything unforeseen still shows as a mismatch.
   */
  roundTrip?: boolean;
}

/**
 * The document as the object to hand to insertMany, certain to serialize back to exactly
 * `bytes`; otherwise an UnrepresentableDocumentError for `namespace`.
 */
export function exactDocument(
  bytes: Uint8Array,
  namespace: string,
  { roundTrip = true }: ExactDocumentOptions = {},
): Document {
  if (!roundTrip && isPlainDocument(bytes)) {
    try {
      return deserialize(bytes, PLAIN_READ);
    } catch {
      // Unreadable after all: the full path below says why.
    }
  }
  let doc: Document | undefined;
  let reason: string | undefined;
  try {
    doc = deserializeExact(bytes);
    const again = serialize(doc, DRIVER_SERIALIZE);
    if (again.byteLength === bytes.byteLength && Buffer.compare(again, bytes) === 0) return doc;
    reason = unrepresentableReason(bytes) ?? "its BSON does not serialize back to the same bytes";
  } catch (error) {
    reason = `its BSON cannot be read: ${(error as Error).message}`;
  }
  throw new UnrepresentableDocumentError(namespace, describeId(doc, bytes), reason);
}
