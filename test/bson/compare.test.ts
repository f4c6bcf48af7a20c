import {
  Binary,
  BSONSymbol,
  Code,
  DBRef,
  Decimal128,
  Double,
  Int32,
  Long,
  MaxKey,
  MinKey,
  ObjectId,
  Timestamp,
} from "bson";
import { describe, expect, it } from "vitest";
import { bsonKindOf, compareBsonValues, compareUtf8 } from "../../src/bson/compare.js";

describe("bsonKindOf", () => {
  it("classifies promoted and wrapped values alike", () => {
    expect(
      [1, 1n, new Int32(1), new Double(1), Long.fromNumber(1), Decimal128.fromString("1")].map(bsonKindOf),
    ).toEqual(Array(6).fill("number"));
    expect(bsonKindOf(new BSONSymbol("a"))).toBe("string");
    expect(bsonKindOf(new DBRef("c", new ObjectId()))).toBe("object");
    expect(bsonKindOf(Buffer.from("a"))).toBe("binData");
    expect(bsonKindOf(new Binary(Buffer.from("a")))).toBe("binData");
    expect(bsonKindOf(new Code("f"))).toBe("code");
    expect(bsonKindOf(new Code("f", {}))).toBe("codeWithScope");
    expect(bsonKindOf(new Timestamp({ t: 1, i: 1 }))).toBe("timestamp");
    expect(bsonKindOf(undefined)).toBe("undefined");
  });

  it("rejects values bson would not produce", () => {
    expect(() => bsonKindOf(() => 1)).toThrow(TypeError);
    expect(() => bsonKindOf(Symbol("x"))).toThrow(TypeError);
  });
});

describe("compareBsonValues", () => {
  it("sorts mixed types in the manual's order", () => {
    const values = [
      new MaxKey(),
      /re/,
      new Timestamp({ t: 1, i: 0 }),
      new Date(0),
      true,
      new ObjectId(),
      new Binary(Buffer.from("x")),
      [1],
      { a: 1 },
      "s",
      2,
      null,
      new MinKey(),
    ];
    const sorted = [...values].sort(compareBsonValues);
    expect(sorted.map(bsonKindOf)).toEqual([
      "minKey",
      "null",
      "number",
      "string",
      "object",
      "array",
      "binData",
      "objectId",
      "bool",
      "date",
      "timestamp",
      "regex",
      "maxKey",
    ]);
  });

  it("compares numbers of different types by exact value", () => {
    expect(compareBsonValues(Long.fromString("9007199254740993"), 9007199254740992)).toBe(1);
    expect(compareBsonValues(Decimal128.fromString("0.1"), 0.1)).toBe(-1);
    expect(compareBsonValues(Decimal128.fromString("-0"), 0)).toBe(0);
    expect(compareBsonValues(NaN, Decimal128.fromString("NaN"))).toBe(0);
    expect(compareBsonValues(NaN, -Infinity)).toBe(-1);
    expect(compareBsonValues(Decimal128.fromString("1E+400"), Infinity)).toBe(-1);
  });

  it("compares strings by UTF-8 bytes, not UTF-16 code units", () => {
    expect("😀" < "\uffff").toBe(true);
    expect(compareUtf8("😀", "\uffff")).toBe(1);
    expect(compareBsonValues("😀", "\uffff")).toBe(1);
  });
});
