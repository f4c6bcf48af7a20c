import { deserialize, EJSON, type Document } from "bson";
import { elements } from "../bson/elements.js";
import type { OpTimeJson } from "../protocol/agentProtocol.js";

const BSON_TIMESTAMP = 0x11;

/** Keeps every BSON type as it is (Int32, Double and Long stay distinct), for exact round trips. */
const EXACT = { promoteValues: false, promoteLongs: false, promoteBuffers: false, bsonRegExp: true } as const;

/** The `ts` of a raw oplog entry, read without deserializing the entry. */
export function readOpTime(entry: Uint8Array, field = "ts"): OpTimeJson | undefined {
  for (const element of elements(entry)) {
    if (element.name !== field) continue;
    if (element.type !== BSON_TIMESTAMP) return undefined;
    const view = Buffer.from(entry.buffer, entry.byteOffset, entry.byteLength);
    return { i: view.readUInt32LE(element.valueStart), t: view.readUInt32LE(element.valueStart + 4) };
  }
  return undefined;
}

/** `{_id: <value>}` of a raw document, with the exact BSON type of the value. */
export function readIdDocument(doc: Uint8Array): Document {
  for (const element of elements(doc)) {
    if (element.name !== "_id") continue;
    // A one-element document around the raw element: length, element, terminator.
    const elementStart = element.valueStart - 5; // type byte + "_id\0"
    const size = 4 + (element.valueEnd - elementStart) + 1;
    const wrapped = Buffer.alloc(size);
    wrapped.writeInt32LE(size, 0);
    wrapped.set(doc.subarray(elementStart, element.valueEnd), 4);
    return deserialize(wrapped, EXACT);
  }
  throw new Error("document has no _id field");
}

/** Parses canonical Extended JSON, keeping exact BSON types. */
export function parseExtendedJson(text: string): Document {
  return EJSON.parse(text, { relaxed: false }) as Document;
}
