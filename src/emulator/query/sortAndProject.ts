import { serialize, type Document } from "bson";
import { find } from "mingo";
import { compareBsonValues } from "../../bson/compare.js";
import { getPath } from "../storage/documentPath.js";

/** Orders documents by a sort specification, comparing values in BSON order; missing is null. */
export function sortDocuments<T extends { doc: Document }>(items: T[], sort: Document): T[] {
  const fields = Object.entries(sort).map(([path, direction]) => ({
    path,
    direction: Number(direction) < 0 ? -1 : 1,
  }));
  return items.sort((a, b) => {
    for (const { path, direction } of fields) {
      const order = compareBsonValues(getPath(a.doc, path) ?? null, getPath(b.doc, path) ?? null);
      if (order !== 0) return order * direction;
    }
    return 0;
  });
}

/** Applies a find projection with mingo, returning the projected document as BSON. */
export function projectDocument(doc: Document, projection: Document): Buffer {
  const projected = find([doc], {}, projection).next() as Document | undefined;
  return Buffer.from(serialize(projected ?? {}));
}

export function isEmpty(doc: Document | undefined): boolean {
  return !doc || Object.keys(doc).length === 0;
}
