/**
 * The 224 pre-image / oplog entry / post-image cases transcribed from MongoDB server tests
 * (test/fixtures/README.md). Every case is either run or skipped with a printed reason.
 */
import { readFileSync } from "node:fs";
import { deserialize, serialize, type Document } from "bson";
import { afterAll, describe, expect, it } from "vitest";
import { compareBsonValues } from "../../src/bson/compare.js";
import { applyDiff, DiffApplyError } from "../../src/oplog/diff/apply.js";
import { computeDiff } from "../../src/oplog/diff/compute.js";

interface UpdateDiffCase {
  id: string;
  kind: "diff-only" | "update-node" | "calculator" | "server-oplog" | "replacement" | "applyops-v1-to-v2";
  preImageBson: string;
  oBson: string;
  postImageBson?: string;
  expectError?: number;
  checks: {
    postImageComparison: "binary" | "logical-ordered";
    sourceAssertsIdempotentReapply?: boolean;
    containsDuplicateKeys?: boolean;
  };
}

const fixture = JSON.parse(
  readFileSync(new URL("../fixtures/update-diff/cases.json", import.meta.url), "utf8"),
) as { caseCount: number; cases: UpdateDiffCase[] };

const bytes = (base64: string) => Buffer.from(base64, "base64");
const parse = (base64: string) => deserialize(bytes(base64), { promoteValues: false });
const bsonOf = (doc: Document) => Buffer.from(serialize(doc));

/** The raw bytes of the embedded document `name` in an oplog `o` ({$v: int32, diff: {...}}). */
function rawSubDocument(doc: Buffer, name: string): Buffer {
  let pos = 4;
  while (doc[pos] !== 0) {
    const type = doc[pos];
    const nameEnd = doc.indexOf(0, pos + 1);
    const valueStart = nameEnd + 1;
    if (type !== 0x03 && type !== 0x10) throw new Error(`rawSubDocument does not walk type ${type}`);
    const size = type === 0x10 ? 4 : doc.readInt32LE(valueStart);
    if (type === 0x03 && doc.toString("utf8", pos + 1, nameEnd) === name) {
      return doc.subarray(valueStart, valueStart + size);
    }
    pos = valueStart + size;
  }
  throw new Error(`no field ${name}`);
}

function skipReason(c: UpdateDiffCase): string | undefined {
  if (c.checks.containsDuplicateKeys) {
    return "the diff repeats a field name; bson's deserialize keeps only the last one, so no JS diff object can carry it";
  }
  if (c.id === "diff_calculator/DocumentDiffCalculatorTest.NullAndMissing") {
    return "uses BSON Undefined, which bson deserializes to undefined and serialize then drops";
  }
  return undefined;
}

const tally = {
  applied: 0,
  binaryEqual: 0,
  reappliedIdempotent: 0,
  errors: 0,
  calculated: 0,
  replacements: 0,
};
const skipped: string[] = [];

function expectSameDocument(actual: Document, c: UpdateDiffCase): void {
  const expected = bytes(c.postImageBson as string);
  if (c.checks.postImageComparison === "binary") {
    expect(bsonOf(actual).toString("hex")).toBe(expected.toString("hex"));
  } else {
    // The source compares field order but not number types (its shell stores doubles).
    expect(compareBsonValues(actual, parse(c.postImageBson as string))).toBe(0);
    expect(JSON.stringify(Object.keys(actual))).toBe(
      JSON.stringify(Object.keys(parse(c.postImageBson as string))),
    );
  }
  if (bsonOf(actual).equals(expected)) tally.binaryEqual++;
}

function runApplierCase(c: UpdateDiffCase): void {
  const pre = parse(c.preImageBson);
  const preBefore = bsonOf(pre);
  const { diff } = parse(c.oBson);
  if (c.expectError !== undefined) {
    let caught: unknown;
    try {
      applyDiff(pre, diff as Document);
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(DiffApplyError);
    expect((caught as DiffApplyError).code).toBe(c.expectError);
    tally.errors++;
    return;
  }
  const post = applyDiff(pre, diff as Document);
  expectSameDocument(post, c);
  expect(bsonOf(pre).equals(preBefore), "pre-image unchanged").toBe(true);
  tally.applied++;
  // Replaying an entry over its own result must change nothing (the README says this holds for
  // every diff here; the applier tests assert it).
  const again = applyDiff(deserialize(bsonOf(post), { promoteValues: false }), diff as Document);
  expect(bsonOf(again).toString("hex")).toBe(bsonOf(post).toString("hex"));
  tally.reappliedIdempotent++;
}

function runCalculatorCase(c: UpdateDiffCase): void {
  const pre = parse(c.preImageBson);
  const post = parse(c.postImageBson as string);
  const diff = computeDiff(pre, post);
  expect(diff).toBeDefined();
  expect(bsonOf(diff as Document).toString("hex")).toBe(
    rawSubDocument(bytes(c.oBson), "diff").toString("hex"),
  );
  // And the computed diff reproduces the post-image exactly.
  expect(bsonOf(applyDiff(pre, diff as Document)).equals(bytes(c.postImageBson as string))).toBe(true);
  tally.calculated++;
}

function runReplacementCase(c: UpdateDiffCase): void {
  // A replacement entry's o is the new document itself: no $v, no diff.
  const o = parse(c.oBson);
  expect(o.$v).toBeUndefined();
  expect(compareBsonValues(o, parse(c.postImageBson as string))).toBe(0);
  tally.replacements++;
}

describe("update-diff/cases.json", () => {
  it("has every case the README lists", () => {
    expect(fixture.cases).toHaveLength(fixture.caseCount);
    expect(fixture.caseCount).toBe(224);
  });

  for (const c of fixture.cases) {
    const reason = skipReason(c);
    if (reason !== undefined) {
      skipped.push(`${c.id}: ${reason}`);
      it.skip(`${c.kind} ${c.id} (${reason})`, () => {});
      continue;
    }
    it(`${c.kind} ${c.id}`, () => {
      if (c.kind === "calculator") runCalculatorCase(c);
      else if (c.kind === "replacement") runReplacementCase(c);
      else runApplierCase(c);
    });
  }

  it("computed diffs reproduce every post-image exactly", () => {
    let checked = 0;
    for (const c of fixture.cases) {
      if (c.postImageBson === undefined || skipReason(c) !== undefined) continue;
      const pre = parse(c.preImageBson);
      const diff = computeDiff(pre, parse(c.postImageBson));
      const post = diff === undefined ? pre : applyDiff(pre, diff);
      expect(bsonOf(post).toString("hex"), c.id).toBe(bytes(c.postImageBson).toString("hex"));
      checked++;
    }
    expect(checked).toBeGreaterThan(200);
  });
});

afterAll(() => {
  console.log(
    `update-diff cases: ${fixture.caseCount} total; applied ${tally.applied} ` +
      `(${tally.binaryEqual} binary-equal to the expected post-image, ${tally.reappliedIdempotent} idempotent on replay), ` +
      `${tally.errors} expected errors, ${tally.calculated} calculator diffs byte-equal, ` +
      `${tally.replacements} replacements, ${skipped.length} skipped:\n  ${skipped.join("\n  ")}`,
  );
});
