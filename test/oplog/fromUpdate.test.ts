/**
 * The `$v: 2` diff of a modifier update, built from the update's paths the way the server's update
 * nodes log it (src/oplog/diff/fromUpdate.ts), checked against the 102 `update-node` cases of
 * test/fixtures/update-diff/cases.json (the server's own *_node_test.cpp expectations).
 *
 * Each case is built twice, and both diffs are compared byte for byte with the case's `o.diff`:
 *  - from the server's post-image: the builder's rules alone;
 *  - from the post-image the emulator computes (mingo, then BSON types restored), as the emulator
 *    logs it. Where mingo's result differs from the server's, the reason is listed below.
 * Whatever the match, applying a built diff to the pre-image must give the post-image it was built
 * from.
 */
import { readFileSync } from "node:fs";
import { deserialize, Int32, serialize, type Document } from "bson";
import { afterAll, describe, expect, it } from "vitest";
import { compareBsonValues } from "../../src/bson/compare.js";
import {
  modifierUpdateDiff,
  runModifierUpdate,
  sameContent,
} from "../../src/emulator/crud/modifierUpdate.js";
import { applyDiff } from "../../src/oplog/diff/apply.js";
import { diffFromUpdate, updateLeaves, type UpdateDiff } from "../../src/oplog/diff/fromUpdate.js";
import { compareFieldNames } from "../../src/oplog/diff/updatePath.js";
import { fromjson } from "../helpers/fromjson.js";
import { rawField } from "../helpers/oplog.js";

interface UpdateNodeCase {
  id: string;
  kind: string;
  update: string;
  preImageBson: string;
  oBson: string;
  postImageBson: string;
  notes?: string[];
}

const fixture = JSON.parse(
  readFileSync(new URL("../fixtures/update-diff/cases.json", import.meta.url), "utf8"),
) as { cases: UpdateNodeCase[] };
const cases = fixture.cases.filter((c) => c.kind === "update-node");

const bytes = (base64: string) => Buffer.from(base64, "base64");
const parse = (base64: string) => deserialize(bytes(base64), { promoteValues: false });
const bsonOf = (doc: Document) => Buffer.from(serialize(doc));

/**
 * Cases where the emulator's post-image (mingo's) is not the server's, so its diff differs. The
 * builder still matches these from the server's post-image.
 */
const MINGO_DIFFERS: Record<string, string> = {
  "arithmetic_node/ArithmeticNodeTest.TypePromotionFromIntToDecimalIsNotANoOp":
    "mingo's $inc rejects a Decimal128 operand",
  "arithmetic_node/ArithmeticNodeTest.TypePromotionFromLongToDecimalIsNotANoOp":
    "mingo's $inc rejects a Decimal128 operand",
  "arithmetic_node/ArithmeticNodeTest.TypePromotionFromDoubleToDecimalIsNotANoOp":
    "mingo's $inc rejects a Decimal128 operand",
  "arithmetic_node/ArithmeticNodeTest.IncrementedDecimalStaysDecimal":
    "mingo's $inc leaves a Decimal128 field unchanged (no-op)",
  "push_node/PushNodeTest.ApplyWithEmbeddedFieldSort":
    "mingo's $sort by field orders non-documents differently from the server's PatternElementCmp",
  "push_node/PushNodeTest.ApplySortWithCollator": "the source sorts with a mock reverse-string collator",
  "rename_node/RenameNodeTest.CanRenameFromInvalidFieldName": "mingo rejects the $-prefixed source '$a'",
  "rename_node/RenameNodeTest.ApplyCanRemoveRequiredPartOfDBRefIfValidateForStorageIsFalse":
    "bson deserializes {$ref, $id} into a DBRef object, whose $id mingo cannot read (it renames nothing)",
  "unset_node/UnsetNodeTest.ApplyCanRemoveRequiredPartOfDBRefIfValidateForStorageIsFalse":
    "bson deserializes {$ref, $id} into a DBRef object, whose $id mingo cannot unset (no change)",
  "set_node/SetNodeTest.ApplyCanCreateDollarPrefixedFieldNameWhenValidateForStorageIsFalse":
    "mingo rejects the $-prefixed field '$bad'",
  "update_object_node/UpdateObjectNodeTest.ApplyToArrayByIndexWithLeadingZero":
    "mingo treats 'a.02' as a property '02' of the JS array, which BSON drops (no change)",
};

/** The server's test resolves `$` itself (the matched array index); these notes say to what. */
function resolvePositional(update: Document, notes: string[] = []): Document {
  const match = /resolved to (?:index )?'?(\d+)'?/.exec(notes.join(" "));
  if (!match) return update;
  const resolveKey = (key: string) =>
    key
      .split(".")
      .map((part) => (part === "$" ? match[1] : part))
      .join(".");
  return Object.fromEntries(
    Object.entries(update).map(([operator, fields]) => [
      operator,
      Object.fromEntries(Object.entries(fields as Document).map(([key, value]) => [resolveKey(key), value])),
    ]),
  );
}

const diffBytes = (built: UpdateDiff) => (built.kind === "diff" ? bsonOf(built.diff) : undefined);
const describeBuilt = (built: UpdateDiff) =>
  built.kind === "diff" ? JSON.stringify(built.diff) : built.kind === "noop" ? "no-op" : built.reason;

const tally = { fromServerPost: 0, fromEmulatorPost: 0 };
const differences: string[] = [];

describe("diffFromUpdate on the update-node cases of cases.json", () => {
  it("has the 102 update-node cases", () => {
    expect(cases).toHaveLength(102);
  });

  for (const c of cases) {
    const update = resolvePositional(fromjson(c.update), c.notes);
    const expected = rawField(bytes(c.oBson), "diff") as Buffer;
    const leaves = updateLeaves(update);

    it(`${c.id}: from the server's post-image`, () => {
      expect(leaves).toBeDefined();
      const pre = parse(c.preImageBson);
      const post = parse(c.postImageBson);
      const built = diffFromUpdate(pre, post, leaves!);
      expect(built.kind, describeBuilt(built)).toBe("diff");
      const diff = (built as { diff: Document }).diff;
      expect(bsonOf(diff).toString("hex"), describeBuilt(built)).toBe(expected.toString("hex"));
      // Applied to the pre-image it gives the post-image, field order included.
      expect(compareBsonValues(applyDiff(pre, diff), post)).toBe(0);
      expect(Object.keys(applyDiff(pre, diff))).toEqual(Object.keys(post));
      tally.fromServerPost++;
    });

    it(`${c.id}: from the emulator's post-image`, () => {
      const preRaw = bytes(c.preImageBson);
      let result: ReturnType<typeof runModifierUpdate>;
      try {
        result = runModifierUpdate(preRaw, deserialize(bsonOf(update)), { exactUpdate: update });
      } catch (error) {
        expect(MINGO_DIFFERS[c.id], `mingo threw: ${(error as Error).message}`).toBeDefined();
        differences.push(`${c.id}: ${MINGO_DIFFERS[c.id]}`);
        return;
      }
      const pre = parse(c.preImageBson);
      const built = diffFromUpdate(pre, result.post, leaves!);
      // The diff reproduces what the emulator computed...
      if (built.kind === "diff") expect(sameContent(applyDiff(pre, built.diff), result.post)).toBe(true);
      if (built.kind === "noop") expect(sameContent(pre, result.post)).toBe(true);
      // ...and so does what the emulator stores, fallback included.
      const stored = modifierUpdateDiff(preRaw, result.post, result.leaves);
      expect(sameContent(stored?.doc ?? pre, result.post)).toBe(true);

      if (diffBytes(built)?.equals(expected)) {
        expect(MINGO_DIFFERS[c.id], "listed as differing but matches").toBeUndefined();
        tally.fromEmulatorPost++;
      } else {
        expect(MINGO_DIFFERS[c.id], `unexpected difference: ${describeBuilt(built)}`).toBeDefined();
        differences.push(`${c.id}: ${MINGO_DIFFERS[c.id]} (built ${describeBuilt(built)})`);
      }
    });
  }
});

describe("diffFromUpdate rules beyond the cases", () => {
  const build = (pre: Document, post: Document, update: Document) =>
    diffFromUpdate(pre, post, updateLeaves(update)!);

  it("applies leaves in the server's order: names by bytes, unpadded numbers numerically, across operators", () => {
    expect(compareFieldNames("2", "10")).toBeLessThan(0);
    expect(compareFieldNames("02", "10")).toBeLessThan(0); // zero-padded: bytes
    expect(compareFieldNames("b", "a")).toBeGreaterThan(0);
    expect(
      updateLeaves({ $set: { b: 1, "x.10": 1 }, $inc: { a: 1, "x.2": 1 } })!.map((l) => l.path.join(".")),
    ).toEqual(["a", "b", "x.2", "x.10"]);
    const built = build({ z: 0 }, { z: 0, b: 1, a: 2 }, { $set: { b: 1 }, $inc: { a: 2 } });
    expect(built).toEqual({ kind: "diff", diff: { i: { a: 2, b: 1 } } });
  });

  it("has no leaves for positional or filtered paths", () => {
    expect(updateLeaves({ $set: { "a.$": 1 } })).toBeUndefined();
    expect(updateLeaves({ $set: { "a.$[].b": 1 } })).toBeUndefined();
    expect(updateLeaves({ $inc: { "a.$[x]": 1 } })).toBeUndefined();
    expect(updateLeaves({ $rename: { a: "b.$" } })).toBeUndefined();
    // `$id` is an ordinary (DBRef) field name.
    expect(updateLeaves({ $unset: { "a.$id": 1 } })).toHaveLength(1);
  });

  it("drops $setOnInsert unless the update inserts", () => {
    expect(updateLeaves({ $setOnInsert: { a: 1 } })).toEqual([]);
    expect(updateLeaves({ $setOnInsert: { a: 1 } }, { inserting: true })).toEqual([
      { operator: "$set", path: ["a"], operand: 1 },
    ]);
  });

  it("logs a $push that appends as array entries, one that inserts elsewhere as the whole array", () => {
    const pre = { a: [0, 1] };
    expect(build(pre, { a: [0, 1, 2, 3] }, { $push: { a: { $each: [2, 3] } } })).toEqual({
      kind: "diff",
      diff: { sa: { a: true, u2: 2, u3: 3 } },
    });
    expect(build(pre, { a: [0, 1, 2] }, { $push: { a: { $each: [2], $position: 5 } } })).toEqual({
      kind: "diff",
      diff: { sa: { a: true, u2: 2 } },
    });
    expect(build(pre, { a: [0, 2, 1] }, { $push: { a: { $each: [2], $position: 1 } } })).toEqual({
      kind: "diff",
      diff: { u: { a: [0, 2, 1] } },
    });
    // An empty $each with a $sort still rewrites the array; without one it is a no-op.
    expect(build(pre, pre, { $push: { a: { $each: [], $sort: 1 } } })).toEqual({
      kind: "diff",
      diff: { u: { a: [0, 1] } },
    });
    expect(build(pre, pre, { $push: { a: { $each: [] } } })).toEqual({ kind: "noop" });
  });

  it("logs $addToSet, $pull and $pop as the whole array, and nothing when the array is unchanged", () => {
    const pre = { a: { b: [1, 2] } };
    expect(build(pre, { a: { b: [1, 2, 3] } }, { $addToSet: { "a.b": 3 } })).toEqual({
      kind: "diff",
      diff: { sa: { u: { b: [1, 2, 3] } } },
    });
    expect(build(pre, pre, { $addToSet: { "a.b": 2 } })).toEqual({ kind: "noop" });
    expect(build(pre, pre, { $pull: { "a.b": 5 } })).toEqual({ kind: "noop" });
    expect(build(pre, pre, { $pop: { "a.c": 1 } })).toEqual({ kind: "noop" });
    expect(build({ a: [] }, { a: [] }, { $pop: { a: 1 } })).toEqual({ kind: "noop" });
  });

  it("compares set values by BSON bytes: a new number type is a change", () => {
    expect(build({ a: new Int32(1) }, { a: new Int32(1) }, { $set: { a: new Int32(1) } })).toEqual({
      kind: "noop",
    });
    expect(build({ a: new Int32(1) }, { a: 1.5 }, { $set: { a: 1.5 } })).toEqual({
      kind: "diff",
      diff: { u: { a: 1.5 } },
    });
  });

  it("creates paths below existing arrays as array entries, and pads nothing itself", () => {
    expect(
      build({ a: [{ b: 0 }] }, { a: [{ b: 0 }, null, { c: 1, d: 2 }] }, { $set: { "a.2.c": 1, "a.2.d": 2 } }),
    ).toEqual({
      kind: "diff",
      diff: { sa: { a: true, u2: { c: 1, d: 2 } } },
    });
  });

  it("does nothing for a $rename whose source is missing, and refuses renames through arrays", () => {
    expect(build({ x: 1 }, { x: 1 }, { $rename: { a: "b" } })).toEqual({ kind: "noop" });
    expect(build({ a: [{ b: 1 }] }, { a: [{}], c: 1 }, { $rename: { "a.0.b": "c" } }).kind).toBe(
      "unresolved",
    );
  });

  it("is unresolved when a path that is not viable changed anyway, a no-op when it did not", () => {
    expect(build({ a: 0 }, { a: 0, b: 1 }, { $set: { "a.b": 5, b: 1 } })).toEqual({
      kind: "diff",
      diff: { i: { b: 1 } },
    });
    const changed = build({ a: [{ b: 1 }] }, { a: [{ b: 5 }] }, { $set: { "a.b": 5 } });
    expect(changed.kind).toBe("unresolved");
  });
});

afterAll(() => {
  console.log(
    `update-node cases: ${cases.length}; diff byte-equal to the server's from the server's post-image: ` +
      `${tally.fromServerPost}, from the emulator's (mingo) post-image: ${tally.fromEmulatorPost}; ` +
      `differences:\n  ${differences.join("\n  ")}`,
  );
});
