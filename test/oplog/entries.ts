import { Long, serialize, Timestamp, UUID, type Document } from "bson";

/** Fixed collection UUIDs for hand-made entries. */
export const uuidA = new UUID("0a0a0a0a-0a0a-4a0a-8a0a-0a0a0a0a0a0a");
export const uuidB = new UUID("0b0b0b0b-0b0b-4b0b-8b0b-0b0b0b0b0b0b");
export const uuidC = new UUID("0c0c0c0c-0c0c-4c0c-8c0c-0c0c0c0c0c0c");

/** An entry's fields but its ts; any other field (lsid, b, fromMigrate...) goes in as given. */
export interface EntryWithoutTs {
  op: string;
  ns: string;
  ui?: UUID;
  o: Document;
  o2?: Document;
  [field: string]: unknown;
}

/** `ts` is the seconds of the entry's Timestamp (increment 1). */
export type EntryFields = EntryWithoutTs & { ts: number };

/** A raw oplog entry in MongoDB 7.0's field order, with `t: 1`, `v: 2`. */
export function entry(fields: EntryFields): Buffer {
  const { op, ns, ui, o, o2, ts, ...rest } = fields;
  const doc: Document = { op, ns };
  if (ui) doc.ui = ui;
  doc.o = o;
  if (o2) doc.o2 = o2;
  Object.assign(doc, rest);
  doc.ts = new Timestamp({ t: ts, i: 1 });
  doc.t = Long.fromNumber(1);
  doc.v = Long.fromNumber(2);
  doc.wall = new Date(ts * 1000);
  return Buffer.from(serialize(doc));
}
