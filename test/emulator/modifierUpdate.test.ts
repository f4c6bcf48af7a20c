/**
 * The emulator's modifier updates (src/emulator/crud/applyUpdate.ts): the oplog `o` is the diff the
 * server's update nodes log (src/oplog/diff/fromUpdate.ts) and the stored document keeps the BSON
 * types the server would store, also for values mingo moves around.
 */
import { deserialize, Double, EJSON, Int32, serialize, type Document } from "bson";
import { describe, expect, it } from "vitest";
import { applyUpdate } from "../../src/emulator/crud/applyUpdate.js";

/** Runs `update` as the wire path does: promoted for mingo, exact for the types it stores. */
function run(pre: Document, update: Document, arrayFilters?: Document[]) {
  const exact = deserialize(Buffer.from(serialize(update)), { promoteValues: false });
  const result = applyUpdate(
    Buffer.from(serialize(pre)),
    deserialize(serialize(update)),
    arrayFilters,
    false,
    exact,
  );
  if (!result) return undefined;
  const typed = (doc: Document) => EJSON.stringify(doc, { relaxed: false });
  return {
    o: typed(result.o as Document),
    doc: typed(deserialize(result.raw, { promoteValues: false })),
  };
}

const ejson = (doc: Document) => EJSON.stringify(doc, { relaxed: false });

describe("modifier updates in the emulator", () => {
  it("logs a $pull as the whole array, keeping the elements' double type", () => {
    const pre = { _id: 1, a: [new Double(1), new Double(2), new Double(3)] };
    expect(run(pre, { $pull: { a: new Double(2) } })).toEqual({
      o: ejson({ $v: new Int32(2), diff: { u: { a: [new Double(1), new Double(3)] } } }),
      doc: ejson({ _id: new Int32(1), a: [new Double(1), new Double(3)] }),
    });
  });

  it("sorts $push values by number, whatever their BSON types, and keeps those types", () => {
    const pre = { _id: 1, a: [new Int32(5), new Double(2.5)] };
    const result = run(pre, { $push: { a: { $each: [new Double(4), new Int32(1)], $sort: 1 } } });
    expect(result?.doc).toBe(
      ejson({ _id: new Int32(1), a: [new Int32(1), new Double(2.5), new Double(4), new Int32(5)] }),
    );
  });

  it("does not add to a set a value equal to an element of another number type", () => {
    expect(run({ _id: 1, a: [new Double(1)] }, { $addToSet: { a: new Int32(1) } })).toBeUndefined();
  });

  it("appends created fields in the server's order, not the update's", () => {
    const result = run({ _id: 1 }, { $set: { c: 1, "b.y": 2, "b.x": 3 }, $inc: { a: 4 } });
    expect(result?.o).toBe(
      ejson({
        $v: new Int32(2),
        diff: { i: { a: new Int32(4), b: { x: new Int32(3), y: new Int32(2) }, c: new Int32(1) } },
      }),
    );
    expect(Object.keys(JSON.parse(result!.doc) as Document)).toEqual(["_id", "a", "b", "c"]);
  });

  it("logs a $push onto a non-empty array as its new elements", () => {
    expect(run({ _id: 1, a: [new Int32(0)] }, { $push: { a: new Int32(7) } })?.o).toBe(
      ejson({ $v: new Int32(2), diff: { sa: { a: true, u1: new Int32(7) } } }),
    );
  });

  it("falls back to the diff calculator for array-filter paths", () => {
    const result = run({ _id: 1, a: [new Int32(1), new Int32(5)] }, { $set: { "a.$[x]": new Int32(0) } }, [
      { x: { $gt: 2 } },
    ]);
    expect(result?.o).toBe(ejson({ $v: new Int32(2), diff: { sa: { a: true, u1: new Int32(0) } } }));
  });

  it("writes nothing for a no-op", () => {
    expect(run({ _id: 1, a: new Int32(1) }, { $set: { a: new Int32(1) } })).toBeUndefined();
    expect(run({ _id: 1, a: [] }, { $pop: { a: 1 } })).toBeUndefined();
  });
});
