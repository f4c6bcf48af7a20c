import { serialize, type Document } from "bson";

/** Marks a BSON document that is already serialized, to be embedded without re-encoding. */
export class RawDocument {
  constructor(readonly bytes: Uint8Array) {}
}

const EMBEDDED_DOCUMENT = 0x03;
const ARRAY = 0x04;

function isPlainObject(value: unknown): value is Document {
  return typeof value === "object" && value !== null && Object.getPrototypeOf(value) === Object.prototype;
}

function holdsRaw(value: unknown): boolean {
  if (value instanceof RawDocument) return true;
  if (Array.isArray(value)) return value.some(holdsRaw);
  if (isPlainObject(value)) return Object.values(value).some(holdsRaw);
  return false;
}

/** The elements of a serialized document, without its length prefix and terminator. */
function elementsOf(doc: Document): Uint8Array {
  const bytes = serialize(doc);
  return bytes.subarray(4, bytes.length - 1);
}

const TERMINATOR = new Uint8Array([0]);

function fieldHeader(type: number, name: string): Buffer {
  const header = Buffer.allocUnsafe(Buffer.byteLength(name, "utf8") + 2);
  header[0] = type;
  header.write(name, 1, "utf8");
  header[header.length - 1] = 0;
  return header;
}

/**
 * Appends the parts of a document (length prefix, elements, terminator) to `parts`, returning
 * its length. Parts are collected and copied once at the end, so a 16 MB cursor batch is not
 * copied once per nesting level.
 */
function collectDocument(fields: Array<[string, unknown]>, parts: Uint8Array[]): number {
  const lengthPrefix = Buffer.allocUnsafe(4);
  parts.push(lengthPrefix);
  let length = 5;
  let pending: Document = {};
  let pendingCount = 0;
  const push = (part: Uint8Array) => {
    parts.push(part);
    length += part.length;
  };
  const flush = () => {
    if (pendingCount > 0) push(elementsOf(pending));
    pending = {};
    pendingCount = 0;
  };
  for (const [name, value] of fields) {
    if (value === undefined) continue;
    if (value instanceof RawDocument) {
      flush();
      push(fieldHeader(EMBEDDED_DOCUMENT, name));
      push(value.bytes);
    } else if ((Array.isArray(value) || isPlainObject(value)) && holdsRaw(value)) {
      flush();
      const isArray = Array.isArray(value);
      push(fieldHeader(isArray ? ARRAY : EMBEDDED_DOCUMENT, name));
      const entries: Array<[string, unknown]> = isArray
        ? value.map((item, i) => [String(i), item])
        : Object.entries(value);
      length += collectDocument(entries, parts);
    } else if (/^\d+$/.test(name)) {
      // JS objects list integer-like keys first, so these cannot share `pending` with others.
      flush();
      push(elementsOf({ [name]: value }));
    } else {
      pending[name] = value;
      pendingCount++;
    }
  }
  flush();
  parts.push(TERMINATOR);
  lengthPrefix.writeInt32LE(length, 0);
  return length;
}

/**
 * Serializes `fields` in order, embedding RawDocument values (at any depth, in arrays too) byte
 * for byte. Oplog entries and cursor batches carry stored documents this way, so their exact
 * BSON (types, field order) survives. Undefined values are left out, as the driver does.
 */
export function buildDocument(fields: Array<[string, unknown]>): Buffer {
  const parts: Uint8Array[] = [];
  const length = collectDocument(fields, parts);
  return Buffer.concat(parts, length);
}

/** Serializes a document that may hold RawDocument values anywhere. */
export function serializeWithRaw(doc: Document): Buffer {
  return holdsRaw(doc) ? buildDocument(Object.entries(doc)) : Buffer.from(serialize(doc));
}
