/**
 * The loader's quick check (src/restore/loader/plainDocument.ts): a document it calls plain must
 * serialize back to the very same bytes after the exact deserialization, or fail to be read at
 * all (the full path then reports it). Checked over every document of the official BSON corpus,
 * over random corruptions of documents, and over hand-built documents of each shape it must
 * refuse; typical documents must be plain, or the check would save nothing.
 */
import { readFileSync } from "node:fs";
import {
  Binary,
  Code,
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
import { deserializeExact } from "../../src/headdb/exactBson.js";
import { exactDocument, UnrepresentableDocumentError } from "../../src/restore/loader/index.js";
import { DRIVER_SERIALIZE } from "../../src/restore/loader/exactDocument.js";
import { isPlainDocument } from "../../src/restore/loader/plainDocument.js";
import { Random } from "../oplog/differential/random.js";
import { rawDocument, rawElement, rawInt32, rawString } from "../helpers/rawBson.js";

interface CorpusDocument {
  file: string;
  kind: "canonical" | "degenerate" | "decodeError";
  description: string;
  bson: string;
}
const corpus = JSON.parse(
  readFileSync(new URL("../fixtures/bson-corpus/all-documents.json", import.meta.url), "utf8"),
) as { cases: CorpusDocument[] };

/**
 * What the loader does with a document the quick check calls plain: it reads it (without bson's
 * UTF-8 check, done by the quick check) and the driver serializes it; the bytes must be the same,
 * or the document refused.
 */
function loaderKeeps(bytes: Buffer): boolean {
  let doc;
  try {
    doc = exactDocument(bytes, "t.t", { roundTrip: false });
  } catch (error) {
    if (error instanceof UnrepresentableDocumentError) return true; // refused: nothing is sent
    throw error;
  }
  return Buffer.from(serialize(doc, DRIVER_SERIALIZE)).equals(bytes);
}

/** Whether the exact deserialization and serialization give back the same bytes. */
function survivesRoundTrip(bytes: Buffer): boolean {
  let doc;
  try {
    doc = deserializeExact(bytes);
  } catch {
    return true; // unreadable: the full path refuses it, nothing is sent
  }
  return Buffer.from(serialize(doc, DRIVER_SERIALIZE)).equals(bytes);
}

function double(bits: bigint): Buffer {
  const bytes = Buffer.alloc(8);
  bytes.writeBigUInt64LE(bits);
  return bytes;
}

function int64(value: bigint): Buffer {
  const bytes = Buffer.alloc(8);
  bytes.writeBigInt64LE(value);
  return bytes;
}

const id = rawElement(0x10, "_id", rawInt32(1));

describe("plain documents", () => {
  it("every corpus document called plain survives the round trip byte for byte", () => {
    let plain = 0;
    for (const c of corpus.cases) {
      const bytes = Buffer.from(c.bson, "hex");
      if (!isPlainDocument(bytes)) continue;
      plain++;
      expect(loaderKeeps(bytes), `${c.file} ${c.kind}: ${c.description}`).toBe(true);
    }
    // Most of the corpus is ordinary values (numbers, strings, binaries, dates, ids).
    expect(plain).toBeGreaterThan(corpus.cases.length / 2);
  });

  it("calls none of the corpus documents the round trip changes plain", () => {
    const changed = corpus.cases.filter((c) => {
      const bytes = Buffer.from(c.bson, "hex");
      return !survivesRoundTrip(bytes);
    });
    // The corpus has such documents (DBPointer, Undefined, unsorted regex options, DBRef order...).
    expect(changed.length).toBeGreaterThan(5);
    for (const c of changed) expect(isPlainDocument(Buffer.from(c.bson, "hex")), c.description).toBe(false);
  });

  it("refuses each shape a JS object or bson reshapes, and accepts its ordinary twin", () => {
    const cases: Array<[string, Buffer, Buffer]> = [
      ["Undefined", rawElement(0x06, "u"), rawElement(0x0a, "u")],
      [
        "DBPointer",
        rawElement(0x0c, "p", Buffer.concat([rawString("db.c"), Buffer.alloc(12, 1)])),
        rawElement(0x07, "p", Buffer.alloc(12, 1)),
      ],
      ["symbol", rawElement(0x0e, "s", rawString("x")), rawElement(0x02, "s", rawString("x"))],
      [
        "code with scope",
        rawElement(0x0f, "c", Buffer.from(serialize({ c: new Code("x", { a: 1 }) })).subarray(7, -1)),
        rawElement(0x0d, "c", rawString("x")),
      ],
      ["regex", rawElement(0x0b, "r", Buffer.from("a\0mi\0")), rawElement(0x02, "r", rawString("a"))],
      [
        "a DBRef-like document",
        rawElement(
          0x03,
          "ref",
          rawDocument(rawElement(0x10, "$id", rawInt32(1)), rawElement(0x02, "$ref", rawString("c"))),
        ),
        rawElement(
          0x03,
          "ref",
          rawDocument(rawElement(0x10, "id", rawInt32(1)), rawElement(0x02, "ref", rawString("c"))),
        ),
      ],
      ["an integer-like name", rawElement(0x10, "7", rawInt32(1)), rawElement(0x10, "x7", rawInt32(1))],
      [
        "a repeated name",
        Buffer.concat([rawElement(0x10, "a", rawInt32(1)), rawElement(0x10, "a", rawInt32(2))]),
        Buffer.concat([rawElement(0x10, "a", rawInt32(1)), rawElement(0x10, "b", rawInt32(2))]),
      ],
      [
        "array indexes out of sequence",
        rawElement(
          0x04,
          "arr",
          rawDocument(rawElement(0x10, "0", rawInt32(1)), rawElement(0x10, "2", rawInt32(2))),
        ),
        rawElement(
          0x04,
          "arr",
          rawDocument(rawElement(0x10, "0", rawInt32(1)), rawElement(0x10, "1", rawInt32(2))),
        ),
      ],
      [
        "an array index with a leading zero",
        rawElement(0x04, "arr", rawDocument(rawElement(0x10, "00", rawInt32(1)))),
        rawElement(0x04, "arr", rawDocument(rawElement(0x10, "0", rawInt32(1)))),
      ],
      [
        "a NaN with a payload",
        rawElement(0x01, "d", double(0x7ff0000000000001n)),
        rawElement(0x01, "d", double(0x3ff0000000000000n)),
      ],
      [
        "an infinity",
        rawElement(0x01, "d", double(0x7ff0000000000000n)),
        rawElement(0x01, "d", double(0xbff0000000000000n)),
      ],
      [
        "a date past JS's range",
        rawElement(0x09, "t", int64(8_640_000_000_000_001n)),
        rawElement(0x09, "t", int64(8_640_000_000_000_000n)),
      ],
      [
        "a date before JS's range",
        rawElement(0x09, "t", int64(-8_640_000_000_000_001n)),
        rawElement(0x09, "t", int64(-1n)),
      ],
      [
        "old binary (subtype 2)",
        rawElement(
          0x05,
          "b",
          Buffer.concat([rawInt32(8), Buffer.from([2]), rawInt32(4), Buffer.from("abcd")]),
        ),
        rawElement(0x05, "b", Buffer.concat([rawInt32(4), Buffer.from([0]), Buffer.from("abcd")])),
      ],
      [
        "a boolean byte of 2",
        rawElement(0x08, "f", Buffer.from([2])),
        rawElement(0x08, "f", Buffer.from([1])),
      ],
      ["__proto__", rawElement(0x10, "__proto__", rawInt32(1)), rawElement(0x10, "__proto", rawInt32(1))],
      [
        "a string that is not UTF-8",
        rawElement(0x02, "s", Buffer.concat([rawInt32(3), Buffer.from([0x63, 0xe9, 0])])),
        rawElement(0x02, "s", rawString("cé")),
      ],
      [
        "a name that is not UTF-8",
        Buffer.concat([Buffer.from([0x10, 0x63, 0xe9, 0]), rawInt32(1)]),
        rawElement(0x10, "cé", rawInt32(1)),
      ],
    ];
    for (const [shape, odd, ordinary] of cases) {
      expect(isPlainDocument(rawDocument(id, odd)), shape).toBe(false);
      const twin = rawDocument(id, ordinary);
      expect(isPlainDocument(twin), `${shape}'s twin`).toBe(true);
      expect(loaderKeeps(twin), `${shape}'s twin`).toBe(true);
    }
  });

  it("refuses truncated or oversized bytes and wrong lengths", () => {
    const good = Buffer.from(serialize({ _id: 1, s: "text", sub: { a: [1, 2] } }));
    expect(isPlainDocument(good)).toBe(true);
    expect(isPlainDocument(good.subarray(0, good.length - 1))).toBe(false);
    expect(isPlainDocument(Buffer.concat([good, Buffer.from([0])]))).toBe(false);
    const badString = Buffer.from(good);
    badString.writeInt32LE(1000, good.indexOf("text") - 4);
    expect(isPlainDocument(badString)).toBe(false);
    expect(isPlainDocument(Buffer.alloc(0))).toBe(false);
    // A negative binary length must not send the walk backwards (it would never end).
    const backwards = rawDocument(
      id,
      rawElement(0x05, "b", Buffer.concat([rawInt32(-40), Buffer.from([0])])),
    );
    expect(isPlainDocument(backwards)).toBe(false);
  });

  it("holds under random corruption: plain means the round trip keeps the bytes", () => {
    const rng = new Random(20261125);
    const seeds = [
      ...corpus.cases.filter((c) => c.kind === "canonical").map((c) => Buffer.from(c.bson, "hex")),
      ...Array.from({ length: 20 }, (_, i) => Buffer.from(serialize(ordinaryDocument(i)))),
    ];
    let plainMutants = 0;
    for (let n = 0; n < 20_000; n++) {
      const bytes = Buffer.from(seeds[rng.int(seeds.length)]);
      const flips = 1 + rng.int(3);
      for (let f = 0; f < flips; f++) bytes[rng.int(bytes.length)] = rng.int(256);
      if (!isPlainDocument(bytes)) continue;
      plainMutants++;
      expect(loaderKeeps(bytes), bytes.toString("hex")).toBe(true);
    }
    expect(plainMutants).toBeGreaterThan(1000);
  });

  it("calls ordinary documents of every common type plain, nested and in arrays", () => {
    for (let i = 0; i < 50; i++) {
      const bytes = Buffer.from(serialize(ordinaryDocument(i)));
      expect(isPlainDocument(bytes)).toBe(true);
      expect(survivesRoundTrip(bytes)).toBe(true);
    }
    const wide = Object.fromEntries(Array.from({ length: 64 }, (_, k) => [`f${k}`, k]));
    expect(isPlainDocument(Buffer.from(serialize(wide)))).toBe(true);
    const long = { _id: 1, a: Array.from({ length: 5000 }, (_, k) => ({ k })) };
    expect(isPlainDocument(Buffer.from(serialize(long)))).toBe(true);
  });

  it("exactDocument without the round trip gives the same documents, and still refuses the odd ones", () => {
    for (let i = 0; i < 20; i++) {
      const bytes = Buffer.from(serialize(ordinaryDocument(i)));
      const quick = exactDocument(bytes, "t.t", { roundTrip: false });
      expect(Buffer.from(serialize(quick, DRIVER_SERIALIZE)).equals(bytes)).toBe(true);
      expect(quick).toEqual(exactDocument(bytes, "t.t"));
    }
    const undefinedField = rawDocument(id, rawElement(0x06, "u"));
    expect(() => exactDocument(undefinedField, "odd.things", { roundTrip: false })).toThrow(
      UnrepresentableDocumentError,
    );
    // An unsorted regex is not plain: the full round trip sees bson sort its options.
    const unsorted = rawDocument(id, rawElement(0x0b, "r", Buffer.from("a\0mi\0")));
    expect(() => exactDocument(unsorted, "odd.things", { roundTrip: false })).toThrow(
      /does not serialize back/,
    );
  });
});

/** A document like users store: nested documents, arrays, and every common type. */
function ordinaryDocument(i: number): Record<string, unknown> {
  return {
    _id: new ObjectId(Buffer.alloc(12, i)),
    name: `customer ${i} — café`,
    n: new Int32(i),
    big: Long.fromNumber(i * 1e12),
    price: new Double(i + 0.5),
    whole: new Double(i),
    negativeZero: new Double(-0),
    decimal: Decimal128.fromString(`${i}.25`),
    at: new Date(1_700_000_000_000 + i),
    ts: new Timestamp({ t: 1_700_000_000 + i, i: 1 }),
    flag: i % 2 === 0,
    nothing: null,
    bin: new Binary(Buffer.from([i, 1, 2]), 0),
    uuid: new Binary(Buffer.alloc(16, i), 4),
    code: new Code("function () {}"),
    bounds: [new MinKey(), new MaxKey()],
    tags: ["a", "b", { deep: [i, [i, i]] }],
    address: { city: "Lyon", geo: { type: "Point", coordinates: [new Double(4.8), new Double(45.7)] } },
  };
}
