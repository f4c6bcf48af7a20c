import { describe, expect, it } from "vitest";
import { escapeKeyPart, keyProblem, prefixProblem, unescapeKeyPart } from "../../src/oplogstore/keys.js";

describe("oplog store keys", () => {
  it("accepts the slice key shapes the server uses", () => {
    expect(keyProblem("64b7f0c2e4b0a1d2c3e4f5a6/oplog/0000000042.slice")).toBeUndefined();
    expect(keyProblem("dep-1/documents/shop.orders/0000000001.slice")).toBeUndefined();
    expect(keyProblem("dep1/catalog/admin.$cmd")).toBeUndefined();
  });

  it("explains why a key is invalid", () => {
    expect(keyProblem("dep1/../x")).toMatch(/'\.\.' parts/);
    expect(keyProblem("/dep1")).toMatch(/start with '\/'/);
    expect(keyProblem("dep1//x")).toMatch(/empty parts/);
    expect(keyProblem("dep1/a b")).toMatch(/%XX escapes/);
    expect(keyProblem("x".repeat(1025))).toMatch(/at most 1024/);
  });

  it("accepts prefixes that end with '/' or inside a part, and the empty prefix", () => {
    expect(prefixProblem("")).toBeUndefined();
    expect(prefixProblem("dep1/")).toBeUndefined();
    expect(prefixProblem("dep1/oplog/00000")).toBeUndefined();
    expect(prefixProblem("dep1//")).toMatch(/^a prefix must not have empty parts/);
  });

  it("escapes any MongoDB namespace into one valid, reversible key part", () => {
    const names = [
      "shop.orders",
      "my db.my coll",
      "système.données",
      'a/b\\c:d*e?f<g>h|i"j',
      "100%",
      "~tilde",
      "$cmd",
      "日本語.コレクション",
      ".",
      "..",
      "x".repeat(60),
    ];
    for (const name of names) {
      const part = escapeKeyPart(name);
      expect(keyProblem(`dep1/documents/${part}/0000000001.slice`), `${name} -> ${part}`).toBeUndefined();
      expect(unescapeKeyPart(part)).toBe(name);
    }
    expect(escapeKeyPart("shop.orders")).toBe("shop.orders");
    expect(escapeKeyPart("my coll/x")).toBe("my%20coll%2Fx");
    expect(escapeKeyPart("..")).toBe("%2E%2E");
  });
});
