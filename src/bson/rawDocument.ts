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
function elementsOf(doc: Document): Buffer {
  const bytes = serialize(doc);
  return Buffer.from(bytes.buffer, bytes.byteOffset + 4, bytes.length - 5);
}

function wrap(elements: Buffer[]): Buffer {
  const body = Buffer.concat(elements);
  const out = Buffer.allocUnsafe(body.length + 5);
  out.writeInt32LE(out.length, 0);
  body.copy(out, 4);
  out[out.length - 1] = 0;
  return out;
}

function fieldName(name: string): Buffer {
  return Buffer.from(`${name}\0`, "utf8");
}

function element(name: string, value: unknown): Buffer[] {
  if (value instanceof RawDocument)
    return [Buffer.from([EMBEDDED_DOCUMENT]), fieldName(name), Buffer.from(value.bytes)];
  if (Array.isArray(value) && holdsRaw(value)) {
    return [Buffer.from([ARRAY]), fieldName(name), buildDocument(value.map((item, i) => [String(i), item]))];
  }
  if (isPlainObject(value) && holdsRaw(value)) {
    return [Buffer.from([EMBEDDED_DOCUMENT]), fieldName(name), buildDocument(Object.entries(value))];
  }
  return [];
}

/**
 * Serializes `fields` in order, embedding RawDocument values (at any depth, in arrays too) byte
 * for byte. Oplog entries and cursor batches carry stored documents this way, so their exact
 * BSON (types, field order) survives. Undefined values are left out, as the driver does.
 */
export function buildDocument(fields: Array<[string, unknown]>): Buffer {
  const parts: Buffer[] = [];
  let pending: Document = {};
  let pendingCount = 0;
  const flush = () => {
    if (pendingCount > 0) parts.push(elementsOf(pending));
    pending = {};
    pendingCount = 0;
  };
  for (const [name, value] of fields) {
    if (value === undefined) continue;
    const raw = element(name, value);
    if (raw.length > 0) {
      flush();
      parts.push(...raw);
    } else if (/^\d+$/.test(name)) {
      // JS objects list integer-like keys first, so these cannot share `pending` with others.
      flush();
      parts.push(elementsOf({ [name]: value }));
    } else {
      pending[name] = value;
      pendingCount++;
    }
  }
  flush();
  return wrap(parts);
}

/** Serializes a document that may hold RawDocument values anywhere. */
export function serializeWithRaw(doc: Document): Buffer {
  return holdsRaw(doc) ? buildDocument(Object.entries(doc)) : Buffer.from(serialize(doc));
}
