/** The comparison behind `tidemark headdb verify`: collection by collection, either side missing. */
import { describe, expect, it } from "vitest";
import { compareHashes } from "../../src/server/verification.js";

const A = "a".repeat(32);
const B = "b".repeat(32);

describe("compareHashes", () => {
  it("matches equal hashes and flags differences, one-sided collections and databases", () => {
    const result = compareHashes(
      {
        shop: { collections: { orders: A, customers: A, onlyHere: B } },
        gone: { collections: { c: A } },
        empty: { collections: {} },
      },
      {
        shop: { collections: { orders: A, customers: B, onlyHead: A } },
        extra: { collections: { c: B } },
      },
    );
    expect(result).toEqual([
      { db: "extra", collection: "c", deployment: null, head: B, match: false },
      { db: "gone", collection: "c", deployment: A, head: null, match: false },
      { db: "shop", collection: "customers", deployment: A, head: B, match: false },
      { db: "shop", collection: "onlyHead", deployment: null, head: A, match: false },
      { db: "shop", collection: "onlyHere", deployment: B, head: null, match: false },
      { db: "shop", collection: "orders", deployment: A, head: A, match: true },
    ]);
  });

  it("orders names by bytes, as dbHash does", () => {
    const names = compareHashes({ d: { collections: { b: A, B: A, "a.b": A, a: A } } }, {}).map(
      (c) => c.collection,
    );
    expect(names).toEqual(["B", "a", "a.b", "b"]);
  });

  it("two empty sides match (nothing differs)", () => {
    expect(compareHashes({}, {})).toEqual([]);
  });
});
