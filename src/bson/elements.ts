/** One element of a raw BSON document: its type byte, name, and where its value lies. */
export interface RawElement {
  type: number;
  name: string;
  valueStart: number;
  valueEnd: number;
}

function int32(bytes: Uint8Array, pos: number): number {
  return bytes[pos] | (bytes[pos + 1] << 8) | (bytes[pos + 2] << 16) | (bytes[pos + 3] << 24);
}

function cstringEnd(bytes: Uint8Array, pos: number, end: number): number {
  const zero = bytes.indexOf(0, pos);
  if (zero < 0 || zero >= end) throw new Error(`malformed BSON: unterminated name at offset ${pos}`);
  return zero;
}

/** Length of a value of BSON `type` starting at `pos` (BSON specification, element grammar). */
export function valueLength(bytes: Uint8Array, type: number, pos: number, end: number): number {
  switch (type) {
    case 0x01: // double
    case 0x09: // UTC datetime
    case 0x11: // timestamp
    case 0x12: // int64
      return 8;
    case 0x13: // decimal128
      return 16;
    case 0x10: // int32
      return 4;
    case 0x07: // ObjectId
      return 12;
    case 0x08: // boolean
      return 1;
    case 0x06: // undefined
    case 0x0a: // null
    case 0xff: // MinKey
    case 0x7f: // MaxKey
      return 0;
    case 0x02: // string
    case 0x0d: // JavaScript code
    case 0x0e: // symbol
      return 4 + int32(bytes, pos);
    case 0x03: // document
    case 0x04: // array
    case 0x0f: // code with scope
      return int32(bytes, pos);
    case 0x05: // binary: length, subtype, bytes
      return 5 + int32(bytes, pos);
    case 0x0b: {
      // regex: two C strings
      const patternEnd = cstringEnd(bytes, pos, end);
      return cstringEnd(bytes, patternEnd + 1, end) + 1 - pos;
    }
    case 0x0c: // DBPointer: string then ObjectId
      return 4 + int32(bytes, pos) + 12;
    default:
      throw new Error(`malformed BSON: unknown element type 0x${type.toString(16)} at offset ${pos - 1}`);
  }
}

/** The elements of the document (or array) that starts at `start`, without deserializing values. */
export function* elements(bytes: Uint8Array, start = 0): Generator<RawElement> {
  const end = start + int32(bytes, start);
  if (end > bytes.length) throw new Error("malformed BSON: document overruns its buffer");
  let pos = start + 4;
  while (pos < end - 1) {
    const type = bytes[pos];
    const nameEnd = cstringEnd(bytes, pos + 1, end);
    const name = Buffer.from(bytes.buffer, bytes.byteOffset + pos + 1, nameEnd - pos - 1).toString("utf8");
    const valueStart = nameEnd + 1;
    const valueEnd = valueStart + valueLength(bytes, type, valueStart, end);
    if (valueEnd > end) throw new Error(`malformed BSON: element '${name}' overruns its document`);
    yield { type, name, valueStart, valueEnd };
    pos = valueEnd;
  }
}

/**
 * The documents of an array field of `doc`, as views into `doc` (no copies), so a stored
 * document keeps exactly the bytes the client sent.
 */
export function rawArrayField(doc: Buffer, field: string): Buffer[] | undefined {
  for (const element of elements(doc)) {
    if (element.name !== field) continue;
    if (element.type !== 0x04) return undefined;
    const items: Buffer[] = [];
    for (const item of elements(doc, element.valueStart)) {
      if (item.type !== 0x03) throw new Error(`'${field}.${item.name}' is not a document`);
      items.push(doc.subarray(item.valueStart, item.valueEnd));
    }
    return items;
  }
  return undefined;
}
