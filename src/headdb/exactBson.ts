import { deserialize, type Document } from "bson";

/**
 * Deserialization that keeps every BSON type as it is stored: Int32/Double/Long/Decimal128 stay
 * wrapped, regular expressions stay BSONRegExp (a JS RegExp would drop flags like `x`), binary
 * stays Binary. Serializing the result gives back the same bytes, except for the limits of JS
 * objects that `src/oplog/diff/apply.ts` describes (integer-like field names move first, BSON
 * Undefined is dropped).
 */
export const EXACT_BSON = {
  promoteValues: false,
  promoteLongs: false,
  promoteBuffers: false,
  bsonRegExp: true,
} as const;

export function deserializeExact(bytes: Uint8Array): Document {
  return deserialize(bytes, EXACT_BSON);
}
