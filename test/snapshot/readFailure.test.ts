/**
 * The trailer's fields for each error a snapshot read can throw (src/snapshot/readFailure.ts): the
 * block stores' hash, the file system store's file, a BlockError's 16-digit prefix completed from
 * the collection's runs, and a plain code for anything else.
 */
import { describe, expect, it } from "vitest";
import { BlockError, corruptBlock, RunError } from "../../src/snapshot/errors.js";
import { FsStoreError } from "../../src/snapshot/fsStore/errors.js";
import type { ManifestCollection } from "../../src/snapshot/manifest.js";
import { readFailure } from "../../src/snapshot/readFailure.js";
import { BlockStoreError } from "../../src/snapshot/stores/errors.js";

const first = `${"a1".repeat(8)}${"00".repeat(24)}`;
const second = `${"b2".repeat(8)}${"11".repeat(24)}`;
// Only the fields readFailure looks at.
const collection = {
  namespace: "shop.orders",
  runs: [{ blocks: [{ hash: first }] }, { blocks: [{ hash: second }] }],
  file: "shop/orders.bson.gz",
} as unknown as ManifestCollection;

describe("readFailure", () => {
  it("takes the block from a block store error and the file from a file store error", () => {
    const stored = new BlockStoreError("CORRUPT_BLOCK", {
      location: "sqlite:x",
      hash: second,
      problem: "damaged",
    });
    expect(readFailure(stored, collection)).toEqual({
      code: "CORRUPT_BLOCK",
      message: stored.message,
      namespace: "shop.orders",
      block: second,
    });
    const file = new FsStoreError("CORRUPT", {
      location: "file:///x",
      file: "shop/orders.bson.gz",
      problem: "bad",
    });
    expect(readFailure(file, collection)).toMatchObject({ code: "CORRUPT", block: "shop/orders.bson.gz" });
  });

  it("completes a BlockError's hash prefix from the collection's runs, and leaves an unknown one null", () => {
    const label = `delta run block 1 of 1 (${second.slice(0, 16)})`;
    expect(readFailure(corruptBlock("REF_MISMATCH", label, "it holds 3 entries"), collection)).toMatchObject({
      code: "REF_MISMATCH",
      block: second,
    });
    expect(
      readFailure(new BlockError("TRUNCATED", "block ffffffffffffffff: cut"), collection).block,
    ).toBeNull();
  });

  it("gives other errors their code or READ_FAILED, with no block", () => {
    expect(readFailure(new RunError("BAD_DESCRIPTOR", "bad"), collection)).toMatchObject({
      code: "BAD_DESCRIPTOR",
      block: null,
    });
    expect(readFailure(new Error("snapshot s is encrypted"), collection)).toEqual({
      code: "READ_FAILED",
      message: "snapshot s is encrypted",
      namespace: "shop.orders",
      block: null,
    });
  });
});
