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

/** Sets an existing dotted path's value in place; does nothing if a parent is missing. */
export function replaceAtPath(doc: Document, path: string, value: unknown): void {
  const parts = path.split(".");
  let parent: unknown = doc;
  for (const part of parts.slice(0, -1)) {
    if (parent === null || typeof parent !== "object") return;
    parent = (parent as Document)[part];
  }
  if (parent !== null && typeof parent === "object") (parent as Document)[parts[parts.length - 1]] = value;
}
