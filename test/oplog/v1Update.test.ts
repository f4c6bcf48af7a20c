/**
 * `$v:1` modifier updates ($set/$unset with dotted paths): the 99 cases of
 * test/fixtures/update-diff/cases.json that carry a `$v:1` form (`oV1`), each applied through the
 * oplog applier as an update entry over the pre-image, must give the case's post-image; plus the
 * rules the file comment of `src/oplog/apply/v1Update.ts` lists, checked one by one.
 */
import { readFileSync } from "node:fs";
import { deserialize, Int32, serialize, type Document } from "bson";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { compareBsonValues } from "../../src/bson/compare.js";
import { encodeIdKey } from "../../src/bson/keyEncoding.js";
import { OplogApplier } from "../../src/oplog/apply/applier.js";
import { applyV1Update, V1UpdateError } from "../../src/oplog/apply/v1Update.js";
import { tempHead, type TempHead } from "../headdb/helpers.js";
import { entry, uuidA } from "./entries.js";

interface UpdateDiffCase {
  id: string;
  preImageBson: string;
  oV1Bson?: string;
  postImageBson?: string;
  expectError?: number;
  checks: { postImageComparison: "binary" | "logical-ordered" };
}

const fixture = JSON.parse(
  readFileSync(new URL("../fixtures/update-diff/cases.json", import.meta.url), "utf8"),
) as { cases: UpdateDiffCase[] };
const withV1 = fixture.cases.filter((c) => c.oV1Bson !== undefined && c.postImageBson !== undefined);
const bytes = (base64: string) => Buffer.from(base64, "base64");
const exact = (raw: Uint8Array) => deserialize(raw, { promoteValues: false, bsonRegExp: true });

/** Field names in document order, at every depth (to check order, not only values). */
function shape(value: unknown, path = ""): string[] {
  if (Array.isArray(value)) return value.flatMap((v, i) => shape(v, `${path}.${i}`));
  if (value && typeof value === "object" && !("_bsontype" in value) && !(value instanceof Date))
    return Object.entries(value).flatMap(([k, v]) => [`${path}.${k}`, ...shape(v, `${path}.${k}`)]);
  return [];
}

describe("$v:1 cases from MongoDB's update tests, through the applier", () => {
  let temp: TempHead;
  let applier: OplogApplier;
  let second = 1;
  beforeAll(() => {
    temp = tempHead();
    applier = new OplogApplier(temp.head, { include: () => true });
  });
  afterAll(async () => {
    await temp.dispose();
  });

  it("has the cases", () => {
    expect(withV1.length).toBe(99);
  });

  it.each(withV1.map((c) => [c.id, c] as const))("%s", (_id, c) => {
    // Unit-test documents often have no _id; one in front changes nothing else.
    const pre = withId(bytes(c.preImageBson));
    const id = exact(pre)._id;
    const ns = `v1.case${second}`;
    applier.applyBatch([
      entry({ op: "i", ns, ui: uuidA, o: exact(pre), ts: second++ }),
      entry({ op: "u", ns, ui: uuidA, o: exact(bytes(c.oV1Bson!)), o2: { _id: id }, ts: second++ }),
    ]);
    const stored = temp.head.documents.get(uuidA, encodeIdKey(id))!;
    const expected = withId(bytes(c.postImageBson!));
    if (c.checks.postImageComparison === "binary")
      expect(stored.toString("hex")).toBe(expected.toString("hex"));
    else {
      expect(compareBsonValues(exact(stored), exact(expected))).toBe(0);
      expect(shape(exact(stored))).toEqual(shape(exact(expected)));
    }
    temp.head.write(() => temp.head.dropCollection(uuidA));
  });
});

/** `doc` with `_id: "case"` in front, unless it has an _id. */
function withId(doc: Buffer): Buffer {
  if (exact(doc)._id !== undefined) return doc;
  const id = Buffer.from(serialize({ _id: "case" }));
  const body = Buffer.concat([id.subarray(4, id.length - 1), doc.subarray(4)]);
  const out = Buffer.alloc(4 + body.length);
  out.writeInt32LE(out.length, 0);
  body.copy(out, 4);
  return out;
}

describe("applyV1Update", () => {
  const apply = (doc: Document, o: Document) => applyV1Update(doc, o);

  it("appends new fields in cmpPathsAndArrayIndexes order and changes existing ones in place", () => {
    const result = apply({ _id: 1, z: 1, a: 1 }, { $v: 1, $set: { "10": 1, "2": 2, b: 3, z: 9 } });
    expect(result).toEqual({ kind: "updated", doc: { "2": 2, "10": 1, _id: 1, z: 9, a: 1, b: 3 } });
    // (A JS object lists integer-like names first; the server's BSON order is _id, z, a, 2, 10, b.)
    const ordered = apply({ _id: 1, z: 1 }, { $set: { y: 1, x: 2 } });
    expect(ordered.kind === "updated" && Object.keys(ordered.doc)).toEqual(["_id", "z", "x", "y"]);
  });

  it("creates missing parents as documents, even for numeric parts", () => {
    expect(apply({ _id: 1 }, { $set: { "a.b.c": 1, "d.0": 2 } })).toEqual({
      kind: "updated",
      doc: { _id: 1, a: { b: { c: 1 } }, d: { "0": 2 } },
    });
  });

  it("indexes arrays with numeric parts, padding with null", () => {
    expect(apply({ _id: 1, a: [1] }, { $set: { "a.3": 4, "a.0": 0 } })).toEqual({
      kind: "updated",
      doc: { _id: 1, a: [0, null, null, 4] },
    });
    expect(apply({ _id: 1, a: [{ x: 1 }] }, { $set: { "a.0.y": 2, "a.2.z": 3 } })).toEqual({
      kind: "updated",
      doc: { _id: 1, a: [{ x: 1, y: 2 }, null, { z: 3 }] },
    });
  });

  it("$unset removes fields, nulls array elements, and ignores missing paths", () => {
    expect(
      apply(
        { _id: 1, a: 1, b: [1, 2, 3], c: { d: 1 } },
        { $unset: { a: true, "b.1": true, "c.d": 1, "x.y": 1, "b.7": 1 } },
      ),
    ).toEqual({
      kind: "updated",
      doc: { _id: 1, b: [1, null, 3], c: {} },
    });
  });

  it("keeps BSON types of untouched values and of the values it sets", () => {
    const result = apply({ _id: new Int32(1), n: new Int32(5) }, { $set: { m: new Int32(7) } });
    expect(result.kind === "updated" && serialize(result.doc)).toEqual(
      serialize({ _id: new Int32(1), n: new Int32(5), m: new Int32(7) }),
    );
  });

  it("reports a path through a scalar, or a field name in an array, as a conflict", () => {
    expect(apply({ _id: 1, a: 5 }, { $set: { "a.b": 1 } }).kind).toBe("conflict");
    expect(apply({ _id: 1, a: [1] }, { $set: { "a.b": 1 } }).kind).toBe("conflict");
    expect(apply({ _id: 1, a: [null] }, { $set: { "a.0.b": 1 } }).kind).toBe("conflict");
    // Unsetting through a scalar removes nothing and is no conflict.
    expect(apply({ _id: 1, a: 5 }, { $unset: { "a.b": 1 } })).toEqual({
      kind: "updated",
      doc: { _id: 1, a: 5 },
    });
  });

  it("rejects other modifiers and conflicting paths", () => {
    expect(() => apply({ _id: 1 }, { $inc: { a: 1 } })).toThrow(V1UpdateError);
    expect(() => apply({ _id: 1 }, { $set: { a: 1, "a.b": 2 } })).toThrow(V1UpdateError);
    expect(() => apply({ _id: 1 }, { $set: { "a..b": 1 } })).toThrow(V1UpdateError);
  });
});
