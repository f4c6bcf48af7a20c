import { describe, expect, it } from "vitest";
import { partsOf } from "../../src/daemon/deploymentWorker.js";

const doc = (size: number) => Buffer.alloc(size);
const sizes = (parts: Buffer[][]) => parts.map((part) => part.map((d) => d.length));

describe("partsOf (a documents slice inserted in parts)", () => {
  it("keeps the order and cuts before the part would pass the limit", () => {
    expect(sizes(partsOf([doc(4), doc(4), doc(4), doc(1)], 8))).toEqual([
      [4, 4],
      [4, 1],
    ]);
  });
  it("a document larger than the limit is a part of its own", () => {
    expect(sizes(partsOf([doc(2), doc(20), doc(2)], 8))).toEqual([[2], [20], [2]]);
  });
  it("an empty slice is one empty part (its cursor still moves)", () => {
    expect(partsOf([], 8)).toEqual([[]]);
  });
  it("loses and duplicates nothing", () => {
    const docs = Array.from({ length: 1000 }, (_, i) => Buffer.from([i % 251, i >> 8]));
    const parts = partsOf(docs, 37);
    expect(parts.flat()).toEqual(docs);
    expect(parts.every((part) => part.reduce((n, d) => n + d.length, 0) <= 37)).toBe(true);
  });
});
