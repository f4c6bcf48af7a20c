import {
  Binary,
  BSONRegExp,
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
  serialize,
  Timestamp,
} from "bson";
import { describe, expect, it } from "vitest";
import { compareBsonValues } from "../../src/bson/compare.js";
import { encodeIdKey, encodeIdKeyFromDocument } from "../../src/bson/keyEncoding.js";
import { rawDocument, rawElement, rawString } from "../helpers/rawBson.js";

const dec = (text: string) => Decimal128.fromString(text);
const long = (text: string) => Long.fromString(text);
const oid = (hex: string) => new ObjectId(hex.padEnd(24, "0"));
const bin = (subtype: number, text: string) => new Binary(Buffer.from(text, "latin1"), subtype);

/**
 * Values in MongoDB sort order (MongoDB manual, "Comparison/Sort Order"); the values inside one
 * group are equal to each other. Every pair of groups is checked both ways, for keys and for
 * `compareBsonValues`.
 */
const ORDERED_GROUPS: unknown[][] = [
  [new MinKey()],
  [null],
  // Numbers: NaN sorts below all other numbers and equals itself across types.
  [NaN, new Double(NaN), dec("NaN"), dec("-NaN")],
  [-Infinity, dec("-Infinity")],
  [dec("-9.999999999999999999999999999999999E+6144")],
  [dec("-1E+400")],
  [-Number.MAX_VALUE],
  [long("-9223372036854775808"), -(2 ** 63), dec("-9223372036854775808")],
  [long("-9223372036854775807")],
  [long("-9007199254740993"), dec("-9007199254740993")],
  [-9007199254740992, long("-9007199254740992"), dec("-9.007199254740992E+15")],
  [-2147483648, new Int32(-2147483648), long("-2147483648")],
  [new Int32(-1), -1, new Double(-1), long("-1"), dec("-1"), dec("-1.000"), dec("-0.1E+1")],
  [dec("-0.9999999999999999999999999999999999")],
  [-0.1],
  // The double nearest 0.1 is 0.1000000000000000055511..., so the exact decimal is between.
  [dec("-0.1"), dec("-0.10")],
  [dec("-0.09999999999999999")],
  [-Number.MIN_VALUE],
  [dec("-1E-6000")],
  [0, -0, new Double(-0), new Int32(0), long("0"), dec("0"), dec("-0"), dec("0E-6176"), dec("0E+6111")],
  [dec("1E-6176")],
  [dec("1E-6000")],
  [dec("2E-324")],
  [Number.MIN_VALUE],
  [dec("4.940656458412465441765687928682214E-324")],
  [dec("1E-323")],
  [dec("0.09999999999999999")],
  [dec("0.1")],
  [0.1],
  [dec("0.1000000000000000055511151231257828")],
  [0.5, dec("0.5"), dec("0.50"), dec("5E-1")],
  [
    1,
    new Int32(1),
    new Double(1),
    long("1"),
    dec("1"),
    dec("1.0"),
    dec("1.000000000000000000000000000000000"),
  ],
  [dec("1.000000000000000000000000000000001")],
  [dec("1.000000000000000222044604925031308")],
  [1.0000000000000002],
  [2147483647, new Int32(2147483647), long("2147483647")],
  [2147483648, long("2147483648")],
  [9007199254740992, long("9007199254740992"), dec("9007199254740992")],
  [long("9007199254740993"), dec("9007199254740993"), dec("9007199254740993.0")],
  [dec("9007199254740993.5")],
  [9007199254740994, long("9007199254740994"), dec("9.007199254740994E+15")],
  [long("9223372036854775807"), dec("9223372036854775807")],
  [2 ** 63, dec("9223372036854775808")],
  [1e300],
  [Number.MAX_VALUE],
  [dec("1.797693134862315708145274237317044E+308")],
  [dec("1E+400")],
  [dec("9.999999999999999999999999999999999E+6144")],
  [Infinity, dec("Infinity")],
  // Strings and symbols compare by UTF-8 bytes, a prefix first.
  ["", new BSONSymbol("")],
  ["\u0000"],
  ["\u0000\u0000"],
  ["\u0001"],
  ["A"],
  ["a", new BSONSymbol("a")],
  ["a\u0000"],
  ["a\u0000b"],
  ["a\u0001"],
  ["ab"],
  ["b"],
  ["é"],
  ["\uffff"],
  // U+1F600 is below U+FFFF in UTF-16 but above it in UTF-8: bytes decide.
  ["😀"],
  // Documents: element by element, type rank before field name before value.
  [{}],
  [{ a: new MinKey() }],
  [{ a: null }],
  [{ a: 1 }, { a: long("1") }, { a: 1.0 }],
  [{ a: 1, b: null }],
  [{ a: 1, b: 2 }],
  [{ a: 2 }],
  [{ b: 1 }],
  [{ b: 1, a: 1 }],
  // "$ref" sorts before "a"; a DBRef is just this document on the wire.
  [{ $ref: "c", $id: 1 }, new DBRef("c", 1 as unknown as ObjectId)],
  [{ a: "" }],
  [{ a: "x", b: 1 }],
  [{ a: "xy" }],
  [{ ab: "x" }],
  [{ a: {} }],
  [{ a: { b: 1 } }],
  [{ a: [] }],
  [{ a: [1] }],
  [{ a: true }],
  // Arrays (never an _id, but they nest inside one).
  [[]],
  [[null]],
  [[1], [long("1")]],
  [[1, 2]],
  [[2]],
  [["a"]],
  [[{}]],
  // BinData: length first, then subtype, then bytes.
  [new Binary(Buffer.alloc(0), 0)],
  [new Binary(Buffer.alloc(0), 5)],
  [bin(0, "\u0000")],
  [bin(0, "z")],
  [bin(1, "a")],
  [bin(0x80, "a")],
  [bin(0, "aa")],
  [new ObjectId("000000000000000000000000")],
  [oid("00000000000000000000000a")],
  [oid("0a")],
  [new ObjectId("ffffffffffffffffffffffff")],
  [false],
  [true],
  // Dates are signed.
  [new Date(-8.64e15)],
  [new Date(-1)],
  [new Date(0)],
  [new Date(1)],
  [new Date(8.64e15)],
  // Timestamps are unsigned: seconds, then increment.
  [new Timestamp({ t: 0, i: 0 })],
  [new Timestamp({ t: 0, i: 1 })],
  [new Timestamp({ t: 0, i: 4294967295 })],
  [new Timestamp({ t: 1, i: 0 })],
  [new Timestamp({ t: 2147483648, i: 0 })],
  [new Timestamp({ t: 4294967295, i: 4294967295 })],
  [new BSONRegExp("", "")],
  [new BSONRegExp("a", ""), /a/],
  [new BSONRegExp("a", "i"), /a/i],
  [new BSONRegExp("a", "im")],
  [new BSONRegExp("a", "m")],
  [new BSONRegExp("ab", "")],
  [new Code("")],
  [new Code("a")],
  [new Code("a\u0000")],
  [new Code("b")],
  [new Code("", {})],
  [new Code("a", {})],
  [new Code("a", { x: 1 })],
  [new Code("a", { x: 2 })],
  [new Code("b", {})],
  [new MaxKey()],
];

describe("encodeIdKey", () => {
  it("gives equal keys to equal values and increasing keys to increasing groups", () => {
    const keys = ORDERED_GROUPS.map((group) => group.map((value) => encodeIdKey(value)));
    keys.forEach((group, g) => {
      for (const key of group) expect(key.toString("hex"), `group ${g}`).toBe(group[0].toString("hex"));
    });
    for (let g = 1; g < keys.length; g++) {
      expect(Buffer.compare(keys[g - 1][0], keys[g][0]), `groups ${g - 1} < ${g}`).toBe(-1);
    }
  });

  it("keys sort every value of every group exactly like compareBsonValues", () => {
    const values = ORDERED_GROUPS.flatMap((group, g) => group.map((value) => ({ value, g })));
    for (const a of values) {
      for (const b of values) {
        const expected = Math.sign(a.g - b.g);
        expect(compareBsonValues(a.value, b.value), `${a.g} vs ${b.g}`).toBe(expected);
        expect(Buffer.compare(encodeIdKey(a.value), encodeIdKey(b.value)), `${a.g} vs ${b.g}`).toBe(expected);
      }
    }
  });

  it("compares int64 beyond 2^53 exactly against doubles", () => {
    const key = encodeIdKey;
    expect(Buffer.compare(key(long("9007199254740993")), key(9007199254740992))).toBe(1);
    expect(Buffer.compare(key(long("9007199254740993")), key(9007199254740994))).toBe(-1);
    expect(Buffer.compare(key(long("-9007199254740993")), key(-9007199254740992))).toBe(-1);
    expect(key(long("9007199254740993")).equals(key(dec("9007199254740993")))).toBe(true);
  });

  it("keeps numbers self-delimiting inside compound values", () => {
    // A longer key for a smaller number must not win against what follows a shorter one.
    const small = { a: long("9007199254740993"), b: new MaxKey() };
    const large = { a: 9007199254740994, b: new MinKey() };
    expect(Buffer.compare(encodeIdKey(small), encodeIdKey(large))).toBe(-1);
    expect(compareBsonValues(small, large)).toBe(-1);
    const compoundA = Buffer.concat([encodeIdKey(dec("0.1")), encodeIdKey(new MaxKey())]);
    const compoundB = Buffer.concat([encodeIdKey(0.1), encodeIdKey(new MinKey())]);
    expect(Buffer.compare(compoundA, compoundB)).toBe(-1);
  });

  it("throws for an undefined _id", () => {
    expect(() => encodeIdKey(undefined)).toThrow(/undefined/);
  });
});

const dbPointer = (collection: string, idHex: string) =>
  Buffer.concat([rawString(collection), Buffer.from(idHex.padEnd(24, "0"), "hex")]);

describe("encodeIdKeyFromDocument", () => {
  it("finds _id wherever it is, walking past every other type", () => {
    const doc = serialize({
      a: 1.5,
      b: "x",
      c: { d: [1, 2] },
      e: bin(4, "abc"),
      f: new ObjectId(),
      g: true,
      h: new Date(),
      i: null,
      j: new BSONRegExp("x", "i"),
      k: new Code("f", { s: 1 }),
      l: new Int32(1),
      m: new Timestamp({ t: 1, i: 2 }),
      n: long("5"),
      o: dec("1.5"),
      p: new MinKey(),
      q: new MaxKey(),
      r: new BSONSymbol("s"),
      _id: { x: 1 },
    });
    expect(encodeIdKeyFromDocument(doc).equals(encodeIdKey({ x: 1 }))).toBe(true);
  });

  it("does not mistake a nested _id or a field named like it", () => {
    const doc = serialize({ sub: { _id: 1 }, _idx: 2, _id: 3 });
    expect(encodeIdKeyFromDocument(doc).equals(encodeIdKey(3))).toBe(true);
  });

  it("throws a clear error when there is no _id", () => {
    expect(() => encodeIdKeyFromDocument(serialize({ a: 1, sub: { _id: 1 } }))).toThrow(
      "document has no _id field",
    );
  });

  it("rejects truncated or malformed BSON", () => {
    const doc = serialize({ a: "hello", _id: 1 });
    expect(() => encodeIdKeyFromDocument(doc.subarray(0, doc.length - 3))).toThrow(/malformed|truncated/);
    const bad = Buffer.from(doc);
    bad[4] = 0x42;
    expect(() => encodeIdKeyFromDocument(bad)).toThrow(/unknown BSON type/);
  });

  it("orders Undefined between MinKey and Null, and DBPointer between Regex and Code", () => {
    const keyOf = (type: number, value: Buffer) =>
      encodeIdKeyFromDocument(rawDocument(rawElement(type, "_id", value)));
    const ordered = [
      keyOf(0xff, Buffer.alloc(0)),
      keyOf(0x06, Buffer.alloc(0)),
      keyOf(0x0a, Buffer.alloc(0)),
      encodeIdKey(new BSONRegExp("zzz", "")),
      keyOf(0x0c, dbPointer("a", "ff")),
      keyOf(0x0c, dbPointer("b", "00")),
      keyOf(0x0c, dbPointer("b", "01")),
      // The server compares DBPointers by size first.
      keyOf(0x0c, dbPointer("aa", "00")),
      encodeIdKey(new Code("")),
    ];
    for (let i = 1; i < ordered.length; i++)
      expect(Buffer.compare(ordered[i - 1], ordered[i]), `${i}`).toBe(-1);
  });
});

/** A small deterministic PRNG (mulberry32), so failures reproduce. */
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

function randomValueGenerator(random: () => number) {
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)];
  const int = (max: number) => Math.floor(random() * max);
  const interestingIntegers = [0, 1, -1, 2, 3, 10, 2 ** 31 - 1, -(2 ** 31), 2 ** 53, 2 ** 53 + 2, 2 ** 63];
  const smallString = () => pick(["", "a", "b", "ab", "a\u0000", "\u0000", "é", "😀", "\uffff", "A", "aa"]);

  const number = (): unknown => {
    const base = pick(interestingIntegers) * pick([1, -1]);
    switch (int(9)) {
      case 0:
        return new Int32(int(7) - 3);
      case 1:
        return new Double(pick([base, base / 8, 0.1, -0.1, NaN, Infinity, -Infinity, -0, 1e300, 5e-324]));
      case 2:
        return Long.fromBigInt(
          pick([0n, 1n, 2n, 3n, 9007199254740993n, 2n ** 62n]) * pick([1n, -1n]) + BigInt(int(3) - 1),
        );
      case 3:
        return Decimal128.fromString(
          pick([
            "0",
            "-0",
            "1",
            "1.0",
            "0.1",
            "-0.1",
            "2.5",
            "NaN",
            "Infinity",
            "-Infinity",
            "1E+400",
            "-1E-400",
          ]),
        );
      case 4:
        return Decimal128.fromString(`${int(2000) - 1000}E${int(40) - 20}`);
      case 5:
        return Decimal128.fromString(`${BigInt(base) + BigInt(int(5) - 2)}`);
      case 6:
        return (int(2000) - 1000) / pick([1, 2, 4, 10, 3]);
      case 7:
        return base;
      default:
        return int(7) - 3;
    }
  };

  const value = (depth: number): unknown => {
    const scalar = (): unknown => {
      switch (int(16)) {
        case 0:
          return new MinKey();
        case 1:
          return new MaxKey();
        case 2:
          return null;
        case 3:
          return pick([true, false]);
        case 4:
          return smallString();
        case 5:
          return new BSONSymbol(smallString());
        case 6:
          return new Binary(Buffer.from(smallString()), pick([0, 1, 4, 128]));
        case 7:
          return new ObjectId(pick(["00", "01", "ff", "0a0b"]).padEnd(24, pick(["0", "f"])));
        case 8:
          return new Date(pick([-1, 0, 1, 1e12, -1e12]));
        case 9:
          return new Timestamp({ t: pick([0, 1, 2 ** 31, 2 ** 32 - 1]), i: pick([0, 1, 2 ** 32 - 1]) });
        case 10:
          return new BSONRegExp(smallString().split("\u0000").join(""), pick(["", "i", "im"]));
        case 11:
          return new Code(smallString(), pick([null, {}, { a: 1 }]));
        default:
          return number();
      }
    };
    if (depth <= 0) return scalar();
    switch (int(6)) {
      case 0: {
        const doc: Record<string, unknown> = {};
        for (let i = int(3); i > 0; i--) doc[pick(["a", "b", "ab", "", "é"])] = value(depth - 1);
        return doc;
      }
      case 1:
        return Array.from({ length: int(3) }, () => value(depth - 1));
      default:
        return scalar();
    }
  };
  return value;
}

describe("randomized: key order equals compareBsonValues", () => {
  it.each([1, 2, 3, 4, 5])("seed %i", (seed) => {
    const value = randomValueGenerator(prng(seed));
    const items = Array.from({ length: 250 }, () => {
      const v = value(2);
      return { value: v, key: encodeIdKey(v) };
    });
    for (const a of items) {
      for (const b of items) {
        const byKey = Buffer.compare(a.key, b.key);
        const byValue = compareBsonValues(a.value, b.value);
        if (byKey !== byValue) {
          throw new Error(
            `key ${byKey} vs compare ${byValue} for ${String(a.key.toString("hex"))} / ${String(b.key.toString("hex"))}`,
          );
        }
      }
    }
    const sortedByKey = [...items].sort((a, b) => Buffer.compare(a.key, b.key));
    const sortedByValue = [...items].sort((a, b) => compareBsonValues(a.value, b.value));
    for (let i = 0; i < items.length; i++) {
      expect(compareBsonValues(sortedByKey[i].value, sortedByValue[i].value)).toBe(0);
    }
  });
});
