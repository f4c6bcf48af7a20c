import { deserialize, type Document } from "bson";
import { Query } from "mingo";
import { CommandError, ErrorCode } from "../errors.js";

export type Predicate = (doc: Document) => boolean;

/** Compiles a query filter with mingo; undefined for an empty filter (matches everything). */
export function compileFilter(filter: Document | undefined): Predicate | undefined {
  if (!filter || Object.keys(filter).length === 0) return undefined;
  let query: Query;
  try {
    query = new Query(filter);
  } catch (error) {
    throw new CommandError(ErrorCode.BadValue, `invalid query filter: ${(error as Error).message}`);
  }
  return (doc) => query.test(doc);
}

export function matchesRaw(predicate: Predicate | undefined, raw: Buffer): boolean {
  return predicate === undefined || predicate(deserialize(raw));
}
