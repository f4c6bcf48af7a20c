import { calculateObjectSize, deserialize, Double, Int32, Long, serialize, type Document } from "bson";
import { describe, expect, it } from "vitest";
import { applyDiff } from "../../src/oplog/diff/apply.js";
import { computeDiff, updateOplogObject } from "../../src/oplog/diff/compute.js";

const bson = (doc: Document) => Buffer.from(serialize(doc));
const hex = (doc: Document) => bson(doc).toString("hex");
const raw = (doc: Document) => deserialize(serialize(doc), { promoteValues: false });

describe("computeDiff", () => {
  it("returns undefined for equal documents", () => {
    expect(computeDiff({}, {})).toBeUndefined();
    expect(computeDiff(raw({ a: [1, { b: 2 }] }), raw({ a: [1, { b: 2 }] }))).toBeUndefined();
  });

  it("compares values byte for byte: number types and -0 count as changes", () => {
    expect(hex(computeDiff(raw({ a: new Int32(1) }), raw({ a: new Double(1) })) as Document)).toBe(
      hex({ u: { a: new Double(1) } }),
    );
    expect(computeDiff({ a: 0 }, { a: -0 })).toBeDefined();
    expect(computeDiff(raw({ a: Long.fromNumber(1) }), raw({ a: Long.fromNumber(1) }))).toBeUndefined();
  });

  it("writes sections in the order d, u, i, then sub-diffs", () => {
    const pre = { s: { x: 1, y: "a long enough value" }, del: 1, up: 1 };
    const post = { s: { x: 2, y: "a long enough value" }, up: 2, ins: 1 };
    expect(Object.keys(computeDiff(pre, post) as Document)).toEqual(["d", "u", "i", "ss"]);
  });

  it("writes an array resize as an int32 l", () => {
    const pre = { a: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10] };
    const diff = computeDiff(pre, { a: [1, 2, 3, 4, 5, 6, 7, 8, 9] }) as Document;
    expect(hex(diff)).toBe(hex({ sa: { a: true, l: new Int32(9) } }));
  });

  it("sorts array entries by number, not as strings", () => {
    const pre = { a: Array.from({ length: 12 }, (_, i) => `value ${i}`) };
    const post = { a: pre.a.map((v, i) => (i === 2 || i === 10 ? "changed" : v)) };
    expect(Object.keys((computeDiff(pre, post) as Document).sa)).toEqual(["a", "u2", "u10"]);
  });
});

describe("updateOplogObject", () => {
  it("returns {$v: 2, diff} with $v as an int32 when the diff is smaller", () => {
    const pre = { _id: 1, name: "a fairly long name", n: 1 };
    const o = updateOplogObject(pre, { _id: 1, name: "a fairly long name", n: 2 }) as Document;
    expect(o.$v).toBeInstanceOf(Int32);
    expect(hex(o)).toBe(hex({ $v: new Int32(2), diff: { u: { n: 2 } } }));
  });

  it("returns the post-image when the diff would not be smaller (server calculator tests)", () => {
    const replaceAll = { A: 1, B: 2, C: 3 };
    expect(updateOplogObject({ a: 1, b: 2, c: 3 }, replaceAll)).toBe(replaceAll);
    const insertFront = { a: 1, b: 1, c: 1, d: 1 };
    expect(updateOplogObject({ b: 1, c: 1, d: 1 }, insertFront)).toBe(insertFront);
    const empty = {};
    expect(updateOplogObject({ b: [1, 2, 3] }, empty)).toBe(empty);
    const fromEmpty = { a: { b: 1 } };
    expect(updateOplogObject({}, fromEmpty)).toBe(fromEmpty);
  });

  it("returns undefined when nothing changed", () => {
    expect(updateOplogObject({ a: 1 }, { a: 1 })).toBeUndefined();
    expect(updateOplogObject({}, {})).toBeUndefined();
  });
});

/** mulberry32: a small deterministic PRNG, so failures reproduce. */
function prng(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function documentGenerator(random: () => number) {
  const int = (max: number) => Math.floor(random() * max);
  const pick = <T>(items: readonly T[]): T => items[int(items.length)];
  // No integer-like names: a JS object would move them to the front (see apply.ts).
  const names = ["a", "b", "c", "d", "e", "f", "long_field_name", "x"];

  const scalar = (): unknown =>
    pick<() => unknown>([
      () => new Int32(int(5)),
      () => new Double(int(5)),
      () => Long.fromNumber(int(5)),
      () => pick(["", "s", "some longer string value"]),
      () => random() < 0.5,
      () => null,
    ])();

  const value = (depth: number): unknown => {
    if (depth <= 0 || random() < 0.5) return scalar();
    if (random() < 0.5) return Array.from({ length: int(5) }, () => value(depth - 1));
    return document(depth - 1);
  };

  const document = (depth: number): Document => {
    const doc: Document = {};
    for (let n = int(6); n > 0; n--) doc[pick(names)] = value(depth);
    return doc;
  };

  const mutateArray = (array: unknown[], depth: number): unknown[] => {
    const copy = [...array];
    switch (int(4)) {
      case 0:
        copy.push(value(depth));
        break;
      case 1:
        copy.pop();
        break;
      default:
        if (copy.length > 0) {
          const i = int(copy.length);
          copy[i] = mutateValue(copy[i], depth);
        }
    }
    return copy;
  };

  const mutateValue = (v: unknown, depth: number): unknown => {
    if (Array.isArray(v) && random() < 0.7) return mutateArray(v, depth);
    if (v !== null && typeof v === "object" && !("_bsontype" in v) && random() < 0.7)
      return mutate(v as Document, depth);
    return value(depth);
  };

  const mutate = (doc: Document, depth: number): Document => {
    const entries = Object.entries(doc);
    for (let n = 1 + int(3); n > 0; n--) {
      const i = int(entries.length + 1);
      switch (int(5)) {
        case 0:
          entries.splice(i, 1);
          break;
        case 1:
          entries.splice(i, 0, [pick(names), value(depth)]);
          break;
        case 2:
          // Move a field to the end.
          entries.push(...entries.splice(i, 1));
          break;
        default:
          if (entries[i]) entries[i] = [entries[i][0], mutateValue(entries[i][1], depth)];
      }
    }
    const result: Document = {};
    for (const [name, v] of entries) if (!(name in result)) result[name] = v;
    return result;
  };

  return { document, mutate };
}

describe("randomized: computed diffs reproduce the post-image", () => {
  it.each([1, 2, 3, 4, 5, 6, 7, 8])("seed %i", (seed) => {
    const { document, mutate } = documentGenerator(prng(seed));
    const seen = { deltas: 0, replacements: 0, subDiffs: 0 };
    for (let round = 0; round < 300; round++) {
      const pre = raw(document(3));
      const post = raw(mutate(pre, 2));
      const diff = computeDiff(pre, post);
      if (bson(pre).equals(bson(post))) {
        expect(diff).toBeUndefined();
        expect(updateOplogObject(pre, post)).toBeUndefined();
        continue;
      }
      expect(diff).toBeDefined();
      if (Object.keys(diff as Document).some((key) => key.startsWith("s"))) seen.subDiffs++;
      const applied = applyDiff(pre, diff as Document);
      expect(hex(applied)).toBe(hex(post));
      expect(hex(applyDiff(applied, diff as Document)), "idempotent").toBe(hex(post));

      const o = updateOplogObject(pre, post) as Document;
      if (o === post) {
        seen.replacements++;
        continue;
      }
      seen.deltas++;
      expect(o.$v).toEqual(new Int32(2));
      expect(calculateObjectSize(o.diff as Document)).toBeLessThan(calculateObjectSize(post));
      expect(hex(applyDiff(pre, o.diff as Document))).toBe(hex(post));
    }
    // The generator must reach every path, or this test proves little.
    expect(seen.deltas).toBeGreaterThan(30);
    expect(seen.replacements).toBeGreaterThan(30);
    expect(seen.subDiffs).toBeGreaterThan(10);
  });
});
