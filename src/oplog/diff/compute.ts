// TEMPORARY STUB written by the lead so the emulator compiles; helper-1 replaces this file whole.
import { serialize, type Document } from "bson";
export function computeDiff(_pre: Document, _post: Document): Document | undefined {
  return undefined;
}
export function updateOplogObject(pre: Document, post: Document): Document | undefined {
  return Buffer.from(serialize(pre)).equals(Buffer.from(serialize(post))) ? undefined : post;
}
