import { Binary, DBRef, deserialize, Double, Int32, Long, ObjectId, serialize, type Document } from "bson";
import { describe, expect, it } from "vitest";
import { applyDiff, DiffApplyError, DiffErrorCode } from "../../src/oplog/diff/apply.js";

const hex = (doc: Document) => Buffer.from(serialize(doc)).toString("hex");
const raw = (doc: Document) => deserialize(serialize(doc), { promoteValues: false });

function errorCode(pre: Document, diff: Document): number | undefined {
  try {
    applyDiff(pre, diff);
  } catch (error) {
    if (error instanceof DiffApplyError) return error.code;
    throw error;
  }
  return undefined;
}

describe("applyDiff: object diffs", () => {
  it("deletes, updates in place, and appends updates of missing fields then inserts", () => {
    const pre = { a: 1, b: 2, c: 3, d: 4 };
    const post = applyDiff(pre, { d: { b: false, zz: false }, u: { c: 30, x: 1 }, i: { a: 10, y: 2 } });
    expect(Object.keys(post)).toEqual(["c", "d", "x", "a", "y"]);
    expect(hex(post)).toBe(hex({ c: 30, d: 4, x: 1, a: 10, y: 2 }));
  });

  it("recurses into sub-documents and ignores sub-diffs for missing fields", () => {
    const pre = { a: { b: { c: 1 } }, other: 1 };
    const post = applyDiff(pre, { sa: { sb: { u: { c: 2 } } }, smissing: { u: { x: 1 } } });
    expect(hex(post)).toBe(hex({ a: { b: { c: 2 } }, other: 1 }));
  });

  it("sets a field to null in place when a sub-diff meets another type", () => {
    const pre = raw({ a: 1, obj: "scalar", arr: { x: 1 }, n: new Int32(5), z: 2 });
    const post = applyDiff(pre, { sobj: { u: { x: 1 } }, sarr: { a: true, u0: 1 }, sn: { u: { x: 1 } } });
    expect(hex(post)).toBe(hex({ a: 1, obj: null, arr: null, n: null, z: 2 }));
  });

  it("treats Int32/Double/Long wrappers as opaque values and keeps their types", () => {
    const pre = raw({ i: new Int32(1), d: new Double(1), l: Long.fromNumber(1), s: "x" });
    const post = applyDiff(pre, { u: { s: "y" } });
    expect(hex(post)).toBe(hex({ i: new Int32(1), d: new Double(1), l: Long.fromNumber(1), s: "y" }));
  });

  it("treats a DBRef, an embedded document on the wire, as a document", () => {
    const id = new ObjectId();
    const pre = deserialize(serialize({ ref: new DBRef("coll", id), x: 1 }));
    expect(pre.ref).toBeInstanceOf(DBRef);
    const post = applyDiff(pre, { sref: { u: { $id: 2 } } });
    expect(hex(post)).toBe(hex({ ref: { $ref: "coll", $id: 2 }, x: 1 }));
  });

  it("does not modify the pre-image or the diff", () => {
    const pre = raw({ a: { b: [1, { c: 2 }] }, d: 1 });
    const diff = { d: { d: false }, sa: { sb: { a: true, s1: { u: { c: 3 } }, u2: 4 } } };
    const preBefore = hex(pre);
    const diffBefore = hex(diff);
    const post = applyDiff(pre, diff);
    expect(hex(pre)).toBe(preBefore);
    expect(hex(diff)).toBe(diffBefore);
    expect(hex(post)).toBe(hex({ a: { b: [1, { c: 3 }, 4] } }));
  });

  it("keeps a field named __proto__ as an ordinary field", () => {
    // {"__proto__": 1, a: 2} built by hand: a JS literal would set the prototype instead.
    const body = Buffer.from(
      "10" + Buffer.from("__proto__").toString("hex") + "0001000000" + "1061000200000000",
      "hex",
    );
    const size = Buffer.alloc(4);
    size.writeInt32LE(body.length + 4);
    const pre = deserialize(Buffer.concat([size, body]));
    expect(Object.keys(pre)).toEqual(["__proto__", "a"]);
    const post = applyDiff(pre, { u: { a: 3 } });
    expect(Object.keys(post)).toEqual(["__proto__", "a"]);
    expect(Object.getPrototypeOf(post)).toBe(Object.prototype);
  });
});

describe("applyDiff: array diffs", () => {
  it("updates, recurses, resizes and pads with null", () => {
    const pre = { arr: [0, { x: 1 }, 2, 3] };
    expect(hex(applyDiff(pre, { sarr: { a: true, u0: 9, s1: { u: { x: 2 } } } }))).toBe(
      hex({ arr: [9, { x: 2 }, 2, 3] }),
    );
    expect(hex(applyDiff(pre, { sarr: { a: true, l: new Int32(2) } }))).toBe(hex({ arr: [0, { x: 1 }] }));
    expect(hex(applyDiff(pre, { sarr: { a: true, u6: 6 } }))).toBe(
      hex({ arr: [0, { x: 1 }, 2, 3, null, null, 6] }),
    );
    expect(hex(applyDiff(pre, { sarr: { a: true, l: new Int32(6) } }))).toBe(
      hex({ arr: [0, { x: 1 }, 2, 3, null, null] }),
    );
  });

  it("gives null for a sub-diff past the end of the array", () => {
    expect(hex(applyDiff({ arr: [] }, { sarr: { a: true, s1: { u: { x: 1 } } } }))).toBe(
      hex({ arr: [null, null] }),
    );
  });

  it("accepts l as a promoted number", () => {
    const diff = deserialize(serialize({ sarr: { a: true, l: new Int32(1) } }));
    expect(diff.sarr.l).toBe(1);
    expect(hex(applyDiff({ arr: [1, 2] }, diff))).toBe(hex({ arr: [1] }));
  });
});

describe("applyDiff: binary patches", () => {
  const pre = { b1: new Binary(Buffer.from("abc"), 7) };

  it("truncates at the offset, appends, and keeps the subtype", () => {
    const post = applyDiff(pre, { b: { b1: { o: 2, d: new Binary(Buffer.from("def")) } } });
    expect(hex(post)).toBe(hex({ b1: new Binary(Buffer.from("abdef"), 7) }));
  });

  it("does nothing when the offset is past the end", () => {
    const post = applyDiff(pre, { b: { b1: { o: 4, d: new Binary(Buffer.from("def")) } } });
    expect(hex(post)).toBe(hex(pre));
  });

  it("works on promoted buffers, and ignores patches for missing fields", () => {
    const post = applyDiff(
      { b1: Buffer.from("abc") },
      { b: { b1: { o: new Int32(3), d: Buffer.from("d") }, gone: { o: 0 } } },
    );
    expect(hex(post)).toBe(hex({ b1: Buffer.from("abcd") }));
  });

  it("sets a value that is not BinData to null (the server asserts)", () => {
    expect(hex(applyDiff({ b1: "text" }, { b: { b1: { o: 0, d: new Binary(Buffer.from("x")) } } }))).toBe(
      hex({ b1: null }),
    );
  });

  it("rejects malformed patches with the server's codes", () => {
    expect(errorCode(pre, { b: { b1: "not an object" } })).toBe(10065);
    expect(errorCode(pre, { b: { b1: { o: -1, d: new Binary(Buffer.from("x")) } } })).toBe(12262901);
    expect(errorCode(pre, { b: { b1: { d: new Binary(Buffer.from("x")) } } })).toBe(12262901);
    expect(errorCode(pre, { b: { b1: { o: 0, d: "x" } } })).toBe(12262900);
  });
});

describe("applyDiff: malformed diffs", () => {
  const pre = { a: { b: 1 }, arr: [1, 2], x: 1 };
  const cases: [string, Document, number][] = [
    ["empty diff", {}, DiffErrorCode.emptyDiff],
    ["empty sub-diff", { sa: {} }, DiffErrorCode.emptyDiff],
    ["unknown section", { x: { a: 1 } }, DiffErrorCode.unexpectedSection],
    ["sections out of order", { u: { x: 2 }, d: { a: false } }, DiffErrorCode.unexpectedSection],
    ["array diff at the top", { a: true, u0: 1 }, DiffErrorCode.unexpectedSection],
    ["empty section name", { "": { a: 1 } }, DiffErrorCode.emptySectionName],
    ["section not an object", { u: 5 }, DiffErrorCode.sectionWrongType],
    ["section after sub-diffs", { sa: { u: { b: 2 } }, u: { x: 2 } }, DiffErrorCode.fieldAfterSubDiffs],
    ["second sub-diff not an object", { sa: { u: { b: 2 } }, sx: 5 }, DiffErrorCode.subDiffNotObject],
    ["field in two sections", { d: { x: false }, i: { x: 1 } }, DiffErrorCode.duplicateField],
    [
      "update and sub-diff of one field",
      { u: { a: {} }, sa: { d: { b: false } } },
      DiffErrorCode.duplicateField,
    ],
    ["array header not bool", { sarr: { a: 1, u0: 1 } }, DiffErrorCode.arrayHeaderNotBool],
    ["array header false", { sarr: { a: false, u0: 1 } }, DiffErrorCode.arrayHeaderNotTrue],
    ["array length not int32", { sarr: { a: true, l: new Double(1) } }, DiffErrorCode.sectionWrongType],
    ["array length int64", { sarr: { a: true, l: Long.fromNumber(1) } }, DiffErrorCode.sectionWrongType],
    ["array entry name too short", { sarr: { a: true, u: 1 } }, DiffErrorCode.arrayEntryNameTooShort],
    ["array index not a number", { sarr: { a: true, ux: 1 } }, DiffErrorCode.badArrayIndex],
    ["array entry prefix", { sarr: { a: true, x0: 1 } }, DiffErrorCode.badArrayEntryPrefix],
    ["array sub-diff not an object", { sarr: { a: true, s0: 1 } }, DiffErrorCode.arraySubDiffNotObject],
    [
      "array index beyond new length",
      { sarr: { a: true, l: new Int32(1), u3: 1 } },
      DiffErrorCode.arrayIndexBeyondLength,
    ],
    ["array indexes out of order", { sarr: { a: true, u3: 1, u1: 1 } }, DiffErrorCode.badArrayIndex],
    ["array index repeated", { sarr: { a: true, u1: 1, s1: { u: { x: 1 } } } }, DiffErrorCode.badArrayIndex],
    ["array index too large", { sarr: { a: true, u999999999: 1 } }, DiffErrorCode.objectTooLarge],
  ];
  it.each(cases)("%s", (_name, diff, code) => {
    expect(errorCode(pre, diff)).toBe(code);
  });

  it("checks a level's sub-diffs when the level is applied, like the server", () => {
    // The nested level under a missing field is never applied, but its header is read.
    expect(errorCode(pre, { smissing: { x: 5 } })).toBe(DiffErrorCode.unexpectedSection);
    expect(errorCode(pre, { smissing: { a: 5 } })).toBe(DiffErrorCode.arrayHeaderNotBool);
    expect(errorCode(pre, { smissing: { sb: { bogus: 1 } } })).toBeUndefined();
  });

  it("rejects a diff that is not a document", () => {
    expect(() => applyDiff(pre, [] as unknown as Document)).toThrow(TypeError);
  });
});
