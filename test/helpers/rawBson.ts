/**
 * Documents built byte by byte, for what `bson` cannot or will not write: Undefined, DBPointer,
 * repeated names, array indexes out of sequence, odd regex options, NaN payloads.
 */

/** A document (or array) of the given elements. */
export function rawDocument(...elements: Buffer[]): Buffer {
  const body = Buffer.concat([...elements, Buffer.from([0])]);
  const size = Buffer.alloc(4);
  size.writeInt32LE(body.length + 4);
  return Buffer.concat([size, body]);
}

/** One element: its type byte, its name, then `value`'s bytes as they are. */
export function rawElement(type: number, name: string, value: Buffer = Buffer.alloc(0)): Buffer {
  return Buffer.concat([Buffer.from([type]), Buffer.from(`${name}\0`, "utf8"), value]);
}

/** A BSON string value: int32 length, the UTF-8 bytes, a zero. */
export function rawString(text: string): Buffer {
  const bytes = Buffer.from(`${text}\0`, "utf8");
  const length = Buffer.alloc(4);
  length.writeInt32LE(bytes.length);
  return Buffer.concat([length, bytes]);
}

/** A little-endian int32 value. */
export function rawInt32(value: number): Buffer {
  const bytes = Buffer.alloc(4);
  bytes.writeInt32LE(value);
  return bytes;
}
