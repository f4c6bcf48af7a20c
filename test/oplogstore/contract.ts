import { randomBytes } from "node:crypto";
import { afterEach, describe, expect, it } from "vitest";
import { OplogStoreError, type OplogStoreErrorCode } from "../../src/oplogstore/errors.js";
import { escapeKeyPart } from "../../src/oplogstore/keys.js";
import type { OplogStore, StoredObject } from "../../src/oplogstore/oplogStore.js";

/**
 * The behaviour every OplogStore must have, run against each implementation with a factory that
 * returns a fresh, empty store. `pageSize` is the listing page size the factory configured, so the
 * pagination test can cross several pages.
 */
export interface ContractOptions {
  /** "file://" or "s3://": what `location` must start with. */
  locationScheme: string;
  pageSize?: number;
}

export async function collect(iterable: AsyncIterable<StoredObject>): Promise<StoredObject[]> {
  const out: StoredObject[] = [];
  for await (const item of iterable) out.push(item);
  return out;
}

export async function expectStoreError(
  promise: Promise<unknown>,
  code: OplogStoreErrorCode,
): Promise<OplogStoreError> {
  const err: unknown = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(OplogStoreError);
  const storeErr = err as OplogStoreError;
  expect(storeErr.code, storeErr.message).toBe(code);
  return storeErr;
}

/** Byte order, as S3 sorts keys (keys are ASCII so code-unit order is byte order). */
function byteOrder(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function slice(n: number): string {
  return `${String(n).padStart(10, "0")}.slice`;
}

export function describeOplogStoreContract(
  name: string,
  openStore: () => Promise<OplogStore>,
  options: ContractOptions,
): void {
  describe(`OplogStore contract: ${name}`, () => {
    const opened: OplogStore[] = [];
    async function fresh(): Promise<OplogStore> {
      const store = await openStore();
      opened.push(store);
      return store;
    }
    afterEach(async () => {
      await Promise.all(opened.splice(0).map((s) => s.close()));
    });

    it("names where it stores", async () => {
      const store = await fresh();
      expect(store.location.startsWith(options.locationScheme)).toBe(true);
    });

    it("round-trips binary data exactly, including every byte value and empty objects", async () => {
      const store = await fresh();
      const allBytes = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
      const big = randomBytes(300_000);
      await store.put("dep1/oplog/0000000001.slice", allBytes);
      await store.put("dep1/oplog/0000000002.slice", big);
      await store.put("dep1/oplog/0000000003.slice", Buffer.alloc(0));
      expect((await store.get("dep1/oplog/0000000001.slice")).equals(allBytes)).toBe(true);
      expect((await store.get("dep1/oplog/0000000002.slice")).equals(big)).toBe(true);
      expect((await store.get("dep1/oplog/0000000003.slice")).length).toBe(0);
    });

    it("accepts the same upload twice (idempotent) and replaces on a different upload", async () => {
      const store = await fresh();
      const key = "dep1/oplog/0000000042.slice";
      const data = randomBytes(4096);
      await store.put(key, data);
      await store.put(key, data);
      expect((await store.get(key)).equals(data)).toBe(true);
      expect(await collect(store.list("dep1/"))).toEqual([{ key, size: 4096 }]);

      const other = randomBytes(100);
      await store.put(key, other);
      expect((await store.get(key)).equals(other)).toBe(true);
      expect(await collect(store.list("dep1/"))).toEqual([{ key, size: 100 }]);
    });

    it("keeps concurrent puts of the same and of different keys consistent", async () => {
      const store = await fresh();
      const data = randomBytes(2048);
      await Promise.all([
        ...Array.from({ length: 8 }, () => store.put("dep1/oplog/0000000001.slice", data)),
        ...Array.from({ length: 12 }, (_, i) => store.put(`dep1/documents/${slice(i)}`, randomBytes(10 + i))),
      ]);
      expect((await store.get("dep1/oplog/0000000001.slice")).equals(data)).toBe(true);
      const listed = await collect(store.list("dep1/"));
      expect(listed).toHaveLength(13);
      expect(listed.find((o) => o.key === "dep1/documents/0000000011.slice")?.size).toBe(21);
    });

    it("answers exists before and after put and delete", async () => {
      const store = await fresh();
      const key = "dep1/catalog/0000000001.slice";
      expect(await store.exists(key)).toBe(false);
      await store.put(key, Buffer.from("x"));
      expect(await store.exists(key)).toBe(true);
      await store.delete(key);
      expect(await store.exists(key)).toBe(false);
      await expect(store.delete(key)).resolves.toBeUndefined(); // absent: no error
      await expect(store.delete("never/stored")).resolves.toBeUndefined();
      // A prefix of a stored key is not an object.
      await store.put("dep1/oplog/0000000001.slice", Buffer.from("y"));
      expect(await store.exists("dep1/oplog")).toBe(false);
    });

    it("gives NOT_FOUND, naming the store and the key, for a missing object", async () => {
      const store = await fresh();
      const err = await expectStoreError(store.get("dep1/oplog/0000000404.slice"), "NOT_FOUND");
      expect(err.message).toContain(store.location);
      expect(err.message).toContain("dep1/oplog/0000000404.slice");
      expect(err.key).toBe("dep1/oplog/0000000404.slice");
      await store.put("dep1/oplog/0000000001.slice", Buffer.from("z"));
      await store.delete("dep1/oplog/0000000001.slice");
      await expectStoreError(store.get("dep1/oplog/0000000001.slice"), "NOT_FOUND");
    });

    it("lists by prefix in key order with sizes", async () => {
      const store = await fresh();
      const nsPart = escapeKeyPart("shop db.orders 2024"); // a namespace with spaces, escaped
      const keys = [
        "dep2/oplog/0000000001.slice",
        "dep1/oplog/0000000010.slice",
        "dep1/oplog/0000000002.slice",
        "dep1/oplog/0000000001.slice",
        `dep1/documents/${nsPart}/0000000001.slice`,
        "dep1/documents/shop.orders/0000000001.slice",
        "dep1/catalog/0000000001.slice",
        "dep1/missing/$cmd-0000000001.slice",
        "DEP0/oplog/0000000001.slice",
      ];
      for (const [i, key] of keys.entries()) await store.put(key, Buffer.alloc(i + 1, i));
      const sizeOf = (key: string): number => keys.indexOf(key) + 1;
      const expected = (prefix: string): StoredObject[] =>
        keys
          .filter((k) => k.startsWith(prefix))
          .sort(byteOrder)
          .map((key) => ({ key, size: sizeOf(key) }));

      expect(await collect(store.list(""))).toEqual(expected(""));
      expect(await collect(store.list("dep1/"))).toEqual(expected("dep1/"));
      expect(await collect(store.list("dep1/oplog/"))).toEqual(expected("dep1/oplog/"));
      // Like S3, a prefix may end inside a part.
      expect(await collect(store.list("dep1/oplog/000000000"))).toEqual(expected("dep1/oplog/000000000"));
      expect(await collect(store.list("dep"))).toEqual(expected("dep"));
      expect(await collect(store.list("dep3/"))).toEqual([]);
      expect(await collect(store.list("dep1/oplog/0000000001.slice"))).toEqual([
        { key: "dep1/oplog/0000000001.slice", size: sizeOf("dep1/oplog/0000000001.slice") },
      ]);
    });

    it("lists and deletes across many pages", async () => {
      const store = await fresh();
      const count = Math.max(25, (options.pageSize ?? 0) * 3 + 4);
      const keys = Array.from({ length: count }, (_, i) => `dep1/oplog/${slice(i)}`);
      // Upload out of order; the listing must still come back sorted.
      const shuffled = [...keys].sort(() => Math.random() - 0.5);
      for (let i = 0; i < shuffled.length; i += 10) {
        await Promise.all(shuffled.slice(i, i + 10).map((k) => store.put(k, Buffer.from(k))));
      }
      await store.put("dep2/oplog/0000000001.slice", Buffer.from("other deployment"));
      const listed = await collect(store.list("dep1/"));
      expect(listed.map((o) => o.key)).toEqual(keys);
      expect(listed.every((o) => o.size === o.key.length)).toBe(true);

      expect(await store.deletePrefix("dep1/")).toBe(count);
      expect(await collect(store.list("dep1/"))).toEqual([]);
      expect(await store.exists("dep2/oplog/0000000001.slice")).toBe(true);
    });

    it("deletes by prefix, counting only what it removed", async () => {
      const store = await fresh();
      for (let i = 1; i <= 5; i++) await store.put(`dep1/oplog/${slice(i)}`, Buffer.from("o"));
      for (let i = 1; i <= 3; i++) await store.put(`dep1/documents/${slice(i)}`, Buffer.from("d"));
      await store.put("dep10/oplog/0000000001.slice", Buffer.from("another deployment"));

      expect(await store.deletePrefix("dep1/oplog/000000000")).toBe(5);
      expect(await store.deletePrefix("dep1/oplog/")).toBe(0);
      expect(await store.deletePrefix("dep1/")).toBe(3);
      expect(await store.deletePrefix("nothing/here/")).toBe(0);
      // "dep1/" must not touch "dep10/".
      expect(await collect(store.list(""))).toEqual([{ key: "dep10/oplog/0000000001.slice", size: 18 }]);
      await expectStoreError(store.deletePrefix(""), "INVALID_KEY");
    });

    it("rejects invalid keys with INVALID_KEY in every method", async () => {
      const store = await fresh();
      const bad = [
        "",
        "/dep1/oplog/0000000001.slice",
        "dep1//oplog",
        "dep1/oplog/",
        "../etc/passwd",
        "dep1/../dep2/x",
        "dep1/./x",
        "..",
        "dep1/a b",
        "dep1\\x",
        "dep1/caf\u00e9",
        "dep1/x\u0000y",
        "dep1/a~b.tmp",
        "dep1/50%",
        "dep1/%2",
        "dep1/%zz",
        "dep1/%2f", // escapes must be uppercase, so each name has one spelling
        "dep1/a:b",
        "dep1/a*b",
        `dep1/${"x".repeat(201)}`,
        `${"abcdefgh/".repeat(114)}x`, // 1027 characters
      ];
      for (const key of bad) {
        const err = await expectStoreError(store.put(key, Buffer.from("x")), "INVALID_KEY");
        expect(err.message).toContain(store.location);
        await expectStoreError(store.get(key), "INVALID_KEY");
        await expectStoreError(store.exists(key), "INVALID_KEY");
        await expectStoreError(store.delete(key), "INVALID_KEY");
      }
      for (const prefix of ["../", "/dep1", "dep1//", "dep1/a b"]) {
        await expectStoreError(collect(store.list(prefix)), "INVALID_KEY");
        await expectStoreError(store.deletePrefix(prefix), "INVALID_KEY");
      }
      // Nothing was written by any of the rejected puts.
      expect(await collect(store.list(""))).toEqual([]);
    });

    it("accepts the documented key alphabet", async () => {
      const store = await fresh();
      const good = [
        "a",
        "dep-1_A.b/oplog/0000000001.slice",
        "dep1/documents/$cmd/x",
        `dep1/documents/${escapeKeyPart("Ω db/with:odd*chars")}/0000000001.slice`,
        `dep1/${"x".repeat(200)}`,
      ];
      for (const key of good) {
        await store.put(key, Buffer.from(key));
        expect((await store.get(key)).toString()).toBe(key);
      }
    });

    it("refuses to work after close", async () => {
      const store = await openStore();
      await store.close();
      await expectStoreError(store.put("dep1/x", Buffer.from("x")), "UNAVAILABLE");
    });
  });
}
