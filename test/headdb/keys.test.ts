/**
 * Document keys: collection UUID + `src/bson/keyEncoding.ts`'s `_id` key. keyEncoding has its own
 * tests; here the BSON corpus values (test/fixtures/bson-corpus/id-values.json) go through the
 * head database as `_id`s, and a collection scan must return them in MongoDB's order
 * (`compareBsonValues`), with values MongoDB treats as equal stored once.
 */
import { readFileSync } from "node:fs";
import { deserialize, UUID } from "bson";
import { afterEach, describe, expect, it } from "vitest";
import { elements } from "../../src/bson/elements.js";
import { compareBsonValues } from "../../src/bson/compare.js";
import { HeadDbError } from "../../src/headdb/errors.js";
import { documentKey, MAX_KEY_LENGTH, prefixEnd, uuidBytes } from "../../src/headdb/keys.js";
import { tempHead, type TempHead } from "./helpers.js";

interface CorpusCase {
  file: string;
  description: string;
  test_key: string | null;
  canonical_bson: string;
}

const corpus = JSON.parse(
  readFileSync(new URL("../fixtures/bson-corpus/id-values.json", import.meta.url), "utf8"),
) as { cases: CorpusCase[] };

/** `{_id: <the case's test value>}` as raw BSON: the value's element bytes, renamed. */
function idDocument(c: CorpusCase): Buffer {
  const doc = Buffer.from(c.canonical_bson, "hex");
  const all = [...elements(doc)];
  const element = all.find((el) => el.name === c.test_key) ?? all[0];
  const value = doc.subarray(element.valueStart, element.valueEnd);
  const body = Buffer.concat([
    Buffer.from([doc[element.valueStart - Buffer.byteLength(element.name) - 2]]),
    Buffer.from("_id\0"),
    value,
    Buffer.from([0]),
  ]);
  const out = Buffer.alloc(4 + body.length);
  out.writeInt32LE(out.length, 0);
  body.copy(out, 4);
  return out;
}

const idOf = (raw: Uint8Array) => deserialize(raw, { promoteValues: false })._id as unknown;

/**
 * Cases `compareBsonValues` cannot judge, because `bson` does not deserialize them faithfully:
 * a DBPointer comes back as a DBRef (an embedded document), and the old binary subtype 2 loses
 * its inner length prefix, while the server compares the BSON length. The key encoding works on
 * the raw bytes and orders them as the server does; keyEncoding's own tests cover them.
 */
const oracleCannotJudge = (c: CorpusCase) =>
  c.file === "dbpointer.json" || (c.file === "binary.json" && /subtype 0x02/.test(c.description));

let temp: TempHead | undefined;
afterEach(async () => {
  await temp?.dispose();
  temp = undefined;
});

describe("document keys", () => {
  it("scan BSON corpus _ids in MongoDB's order, equal values once", () => {
    temp = tempHead();
    const { head } = temp;
    const uuid = new UUID();
    expect(corpus.cases).toHaveLength(163);
    const docs = corpus.cases.filter((c) => !oracleCannotJudge(c)).map(idDocument);
    expect(docs.length).toBe(159);
    head.write(() => {
      head.createCollection({ uuid, db: "corpus", name: "ids" });
      // Reverse order, so the store, not the input, does the sorting.
      for (const doc of [...docs].reverse()) head.documents.put(uuid, doc);
    });
    const scanned = [...head.documents.scan(uuid)].map(({ raw }) => idOf(raw));
    for (let i = 1; i < scanned.length; i++)
      expect(compareBsonValues(scanned[i - 1], scanned[i])).toBeLessThan(0);
    // As many documents as distinct values: every input equals exactly one stored _id.
    const values = docs.map(idOf);
    for (const value of values)
      expect(scanned.filter((s) => compareBsonValues(s, value) === 0)).toHaveLength(1);
    expect(scanned.length).toBeLessThan(values.length);
  });

  it("keep collections apart: a collection is one key range", () => {
    const a = uuidBytes(new UUID("00000000-0000-4000-8000-0000000000ff"));
    const b = uuidBytes(new UUID("00000000-0000-4000-8000-000000000100"));
    const end = prefixEnd(a)!;
    expect(Buffer.compare(documentKey(a, Buffer.from([0xff, 0xff, 0xff])), end)).toBeLessThan(0);
    expect(Buffer.compare(end, documentKey(b, Buffer.from([0x01])))).toBeLessThanOrEqual(0);
    expect(prefixEnd(Buffer.from([0xff, 0xff]))).toBeUndefined();
  });

  it("refuse an _id whose key exceeds LMDB's largest key, with a typed error", () => {
    const uuid = uuidBytes(new UUID());
    expect(documentKey(uuid, Buffer.alloc(MAX_KEY_LENGTH - 16)).length).toBe(MAX_KEY_LENGTH);
    expect(() => documentKey(uuid, Buffer.alloc(MAX_KEY_LENGTH - 15))).toThrow(HeadDbError);
    expect(() => uuidBytes(Buffer.alloc(15))).toThrow(/16 bytes/);
  });
});
