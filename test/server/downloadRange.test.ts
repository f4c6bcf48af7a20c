import { describe, expect, it } from "vitest";
import {
  parseRange,
  satisfiedContentRange,
  unsatisfiedContentRange,
  type RangeDecision,
} from "../../src/server/download/range.js";

const full = (reason: string): RangeDecision => ({ status: 200, reason }) as RangeDecision;
const part = (start: number, end: number): RangeDecision => ({ status: 206, start, end });
const unsatisfiable: RangeDecision = { status: 416 };

describe("parseRange (RFC 9110 §14) on a 10-byte representation", () => {
  const cases: [string | undefined, RangeDecision][] = [
    // no header
    [undefined, full("absent")],
    // int-range
    ["bytes=0-0", part(0, 0)],
    ["bytes=0-9", part(0, 9)],
    ["bytes=2-5", part(2, 5)],
    ["bytes=9-9", part(9, 9)],
    ["bytes=0-100", part(0, 9)],
    ["bytes=005-007", part(5, 7)],
    // open-ended
    ["bytes=0-", part(0, 9)],
    ["bytes=5-", part(5, 9)],
    ["bytes=9-", part(9, 9)],
    // suffix
    ["bytes=-1", part(9, 9)],
    ["bytes=-3", part(7, 9)],
    ["bytes=-10", part(0, 9)],
    ["bytes=-20", part(0, 9)],
    // unsatisfiable
    ["bytes=10-", unsatisfiable],
    ["bytes=10-10", unsatisfiable],
    ["bytes=11-20", unsatisfiable],
    ["bytes=-0", unsatisfiable],
    ["bytes=-000", unsatisfiable],
    // case-insensitive unit, whitespace at the ends and around list elements
    ["BYTES=0-1", part(0, 1)],
    ["Bytes=0-1", part(0, 1)],
    ["  bytes=0-1\t", part(0, 1)],
    ["bytes= 0-1", part(0, 1)],
    ["bytes=\t0-1 ", part(0, 1)],
    // empty list elements are ignored (RFC 9110 §5.6.1.2)
    ["bytes=0-1,", part(0, 1)],
    ["bytes=, 0-1", part(0, 1)],
    ["bytes=,,3-4 , ,", part(3, 4)],
    // another unit
    ["items=0-1", full("unit")],
    ["none", full("invalid")],
    // syntactically invalid: ignored
    ["", full("invalid")],
    ["   ", full("invalid")],
    ["bytes", full("invalid")],
    ["bytes=", full("invalid")],
    ["bytes=,", full("invalid")],
    ["bytes= , ", full("invalid")],
    ["=0-1", full("invalid")],
    ["bytes =0-1", full("invalid")],
    ["bytes = 0-1", full("invalid")],
    ["by tes=0-1", full("invalid")],
    ["bytes=0 -1", full("invalid")],
    ["bytes=0- 1", full("invalid")],
    ["bytes=1-0", full("invalid")],
    ["bytes=5-4", full("invalid")],
    ["bytes=a-b", full("invalid")],
    ["bytes=-", full("invalid")],
    ["bytes=--1", full("invalid")],
    ["bytes=1--2", full("invalid")],
    ["bytes=-1-2", full("invalid")],
    ["bytes=+1-2", full("invalid")],
    ["bytes=0x1-2", full("invalid")],
    ["bytes=1.5-2", full("invalid")],
    ["bytes=1e2-", full("invalid")],
    ["bytes=0-1;", full("invalid")],
    ["bytes=0-1;q=1", full("invalid")],
    ["bytes=0-1, x", full("invalid")],
    ["bytes=0-1, 5-4", full("invalid")],
    ["bytes=0-1 2-3", full("invalid")],
    ["bytes=0-1=2", full("invalid")],
    ["bytes=٣-٤", full("invalid")],
    ["bytes=0-1, bytes=2-3", full("invalid")],
    // several ranges: the whole representation, unless none is satisfiable
    ["bytes=0-1,3-4", full("multiple")],
    ["bytes=0-1, 1-2", full("multiple")],
    ["bytes=0-1, 20-30", full("multiple")],
    ["bytes=-2, 0-0", full("multiple")],
    ["bytes=20-30, 40-", unsatisfiable],
    ["bytes=10-, -0", unsatisfiable],
    // positions beyond any safe integer are compared exactly
    ["bytes=0-99999999999999999999999", part(0, 9)],
    ["bytes=99999999999999999999-", unsatisfiable],
    ["bytes=-99999999999999999999", part(0, 9)],
    ["bytes=99999999999999999999-99999999999999999998", full("invalid")],
    ["bytes=99999999999999999998-99999999999999999999", unsatisfiable],
    [`bytes=0-${"9".repeat(60)}`, part(0, 9)],
  ];
  it.each(cases)("%j", (header, expected) => {
    expect(parseRange(header, 10)).toEqual(expected);
  });
});

describe("parseRange edge sizes", () => {
  it("an empty representation: int-ranges are unsatisfiable, a non-zero suffix gets the empty whole", () => {
    expect(parseRange("bytes=0-", 0)).toEqual(unsatisfiable);
    expect(parseRange("bytes=0-0", 0)).toEqual(unsatisfiable);
    expect(parseRange("bytes=-0", 0)).toEqual(unsatisfiable);
    expect(parseRange("bytes=-5", 0)).toEqual(full("empty"));
    expect(parseRange(undefined, 0)).toEqual(full("absent"));
  });

  it("a one-byte representation", () => {
    expect(parseRange("bytes=0-0", 1)).toEqual(part(0, 0));
    expect(parseRange("bytes=-1", 1)).toEqual(part(0, 0));
    expect(parseRange("bytes=-9", 1)).toEqual(part(0, 0));
    expect(parseRange("bytes=1-", 1)).toEqual(unsatisfiable);
  });

  it("a representation larger than 4 GiB keeps exact offsets", () => {
    const size = 5 * 2 ** 30 + 7;
    expect(parseRange("bytes=4294967296-", size)).toEqual(part(2 ** 32, size - 1));
    expect(parseRange("bytes=-7", size)).toEqual(part(size - 7, size - 1));
  });

  it("refuses a size that is not a non-negative safe integer", () => {
    for (const size of [-1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 53]) {
      expect(() => parseRange("bytes=0-1", size)).toThrow(/non-negative safe integer/);
    }
  });
});

describe("parseRange against a reference model, every int-range and suffix on sizes 0..6", () => {
  /** Straight from RFC 9110 §14.1.1 / §14.1.2, for single well-formed specs. */
  function reference(first: number | undefined, last: number | undefined, size: number): RangeDecision {
    if (first === undefined) {
      // suffix-range "-last"
      if (last === 0) return unsatisfiable;
      if (size === 0) return full("empty");
      return part(Math.max(0, size - last!), size - 1);
    }
    if (last !== undefined && last < first) return full("invalid");
    if (first >= size) return unsatisfiable;
    return part(first, Math.min(last ?? size - 1, size - 1));
  }

  it("agrees everywhere", () => {
    let checked = 0;
    for (let size = 0; size <= 6; size++) {
      for (let first = 0; first <= 8; first++) {
        expect(parseRange(`bytes=${first}-`, size)).toEqual(reference(first, undefined, size));
        for (let last = 0; last <= 8; last++) {
          expect(parseRange(`bytes=${first}-${last}`, size)).toEqual(reference(first, last, size));
          checked++;
        }
      }
      for (let suffix = 0; suffix <= 8; suffix++) {
        expect(parseRange(`bytes=-${suffix}`, size)).toEqual(reference(undefined, suffix, size));
      }
    }
    expect(checked).toBe(7 * 9 * 9);
  });
});

describe("Content-Range values", () => {
  it("formats a satisfied range and an unsatisfied one", () => {
    expect(satisfiedContentRange(0, 99, 1000)).toBe("bytes 0-99/1000");
    expect(satisfiedContentRange(999, 999, 1000)).toBe("bytes 999-999/1000");
    expect(unsatisfiedContentRange(1000)).toBe("bytes */1000");
    expect(unsatisfiedContentRange(0)).toBe("bytes */0");
  });
});
