import type { Document } from "bson";

/** Reads a dotted path ("address.city") from a deserialized document; undefined when absent. */
export function getPath(doc: Document, path: string): unknown {
  let value: unknown = doc;
  for (const part of path.split(".")) {
    if (value === null || typeof value !== "object") return undefined;
    value = (value as Document)[part];
  }
  return value;
}
