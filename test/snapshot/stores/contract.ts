import { randomBytes } from "node:crypto";
import { afterEach, describe, expect, it } from "vitest";
import { blockHash, type BlockInfo, type BlockStore } from "../../../src/snapshot/stores/blockStore.js";
import { BlockStoreError, type BlockStoreErrorCode } from "../../../src/snapshot/stores/errors.js";

export async function collect(iterable: AsyncIterable<BlockInfo>): Promise<BlockInfo[]> {
  const out: BlockInfo[] = [];
  for await (const item of iterable) out.push(item);
  return out;
}

/** Awaits `promise`, expecting it to reject with a BlockStoreError of `code`; returns the error. */
export async function expectBlockError(
  promise: Promise<unknown>,
  code: BlockStoreErrorCode,
): Promise<BlockStoreError> {
  const err: unknown = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, "expected a rejection").toBeInstanceOf(BlockStoreError);
  const storeErr = err as BlockStoreError;
  expect(storeErr.code, storeErr.message).toBe(code);
  return storeErr;
}

/** A block with its name. */
export function block(bytes: Buffer): { hash: string; bytes: Buffer } {
  return { hash: blockHash(bytes), bytes };
}

/** `count` distinct small blocks, sorted by hash. */
export function blocks(count: number, tag = "b"): Array<{ hash: string; bytes: Buffer }> {
  return Array.from({ length: count }, (_, i) => block(Buffer.from(`${tag}-${i}`))).sort((a, b) =>
    a.hash < b.hash ? -1 : 1,
  );
}

export interface BlockStoreContractOptions {
  /** What `location` starts with: "file:///" or "s3://". */
  locationScheme: string;
  /** How many blocks the paging test stores: more than the store's list page holds. */
  listingSize: number;
  /** Stores many blocks quickly (a store that serialises writes needs no batching). */
  putMany?: (store: BlockStore, items: Array<{ hash: string; bytes: Buffer }>) => Promise<void>;
}

async function putAll(store: BlockStore, items: Array<{ hash: string; bytes: Buffer }>): Promise<void> {
  for (let i = 0; i < items.length; i += 50) {
    await Promise.all(items.slice(i, i + 50).map((b) => store.put(b.hash, b.bytes)));
  }
}

const BAD_HASHES: unknown[] = [
  "",
  "abc",
  "A".repeat(64), // uppercase
  "0".repeat(63),
  "0".repeat(65),
  "g".repeat(64),
  `../${"0".repeat(61)}`,
  `${"0".repeat(63)}\n`,
  ` ${"0".repeat(63)}`,
  42,
  undefined,
];

/** The behaviour every BlockStore must have; `openStore` returns a fresh, empty store. */
export function describeBlockStoreContract(
  name: string,
  openStore: () => Promise<BlockStore>,
  options: BlockStoreContractOptions,
): void {
  const putMany = options.putMany ?? putAll;

  describe(`BlockStore contract: ${name}`, () => {
    const opened: BlockStore[] = [];
    async function fresh(): Promise<BlockStore> {
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

    it("round-trips blocks exactly: every byte value, empty and 1 MiB blocks", async () => {
      const store = await fresh();
      const items = [
        block(Buffer.from(Array.from({ length: 256 }, (_, i) => i))),
        block(Buffer.alloc(0)),
        block(randomBytes(1 << 20)),
      ];
      for (const { hash, bytes } of items) {
        expect(await store.has(hash)).toBe(false);
        expect(await store.put(hash, bytes)).toBe(true);
        expect(await store.has(hash)).toBe(true);
      }
      for (const { hash, bytes } of items) {
        const read = await store.get(hash);
        expect(Buffer.isBuffer(read)).toBe(true);
        expect(read.equals(bytes)).toBe(true);
      }
      const sorted = [...items].sort((a, b) => (a.hash < b.hash ? -1 : 1));
      expect(await collect(store.list())).toEqual(
        sorted.map((b) => ({ hash: b.hash, size: b.bytes.length })),
      );

      await store.delete(items[0].hash);
      expect(await store.has(items[0].hash)).toBe(false);
      await expectBlockError(store.get(items[0].hash), "NOT_FOUND");
      expect((await collect(store.list())).map((b) => b.hash)).not.toContain(items[0].hash);
      expect((await store.get(items[1].hash)).length).toBe(0);
    });

    it("put stores a block once: true the first time, false after, true again once deleted", async () => {
      const store = await fresh();
      const { hash, bytes } = block(randomBytes(1000));
      expect(await store.put(hash, bytes)).toBe(true);
      expect(await store.put(hash, bytes)).toBe(false);
      expect(await store.put(hash, Buffer.from(bytes))).toBe(false);
      expect(await collect(store.list())).toEqual([{ hash, size: 1000 }]);
      await store.delete(hash);
      expect(await store.put(hash, bytes)).toBe(true);
      expect((await store.get(hash)).equals(bytes)).toBe(true);
    });

    it("counts concurrent puts of one block once", async () => {
      const store = await fresh();
      const { hash, bytes } = block(randomBytes(5000));
      const results = await Promise.all(Array.from({ length: 6 }, () => store.put(hash, bytes)));
      expect(results.filter((stored) => stored)).toHaveLength(1);
      expect((await store.get(hash)).equals(bytes)).toBe(true);
    });

    it("refuses bytes that do not hash to the name, storing nothing", async () => {
      const store = await fresh();
      const stored = block(Buffer.from("the real block"));
      const other = Buffer.from("other bytes");
      const err = await expectBlockError(store.put(stored.hash, other), "HASH_MISMATCH");
      expect(err.hash).toBe(stored.hash);
      expect(err.message).toContain(stored.hash);
      expect(err.message).toContain(store.location);
      expect(err.message).toContain(blockHash(other));
      expect(await store.has(stored.hash)).toBe(false);
      expect(await collect(store.list())).toEqual([]);
      // A flipped byte is refused too, also when the block is already stored.
      await store.put(stored.hash, stored.bytes);
      const flipped = Buffer.from(stored.bytes);
      flipped[3] ^= 0x01;
      await expectBlockError(store.put(stored.hash, flipped), "HASH_MISMATCH");
      expect((await store.get(stored.hash)).equals(stored.bytes)).toBe(true);
      // Not a Buffer at all: a caller bug of another kind.
      await expect(store.put(stored.hash, "the real block" as unknown as Buffer)).rejects.toThrow(TypeError);
    });

    it("rejects malformed hashes with INVALID_HASH in every method", async () => {
      const store = await fresh();
      for (const bad of BAD_HASHES) {
        const hash = bad as string;
        const calls = [
          () => store.put(hash, Buffer.from("x")),
          () => store.get(hash),
          () => store.has(hash),
          () => store.delete(hash),
        ];
        for (const call of calls) {
          const err = await expectBlockError(call(), "INVALID_HASH");
          expect(err.message).toContain("64 lowercase hex digits");
          expect(err.message).not.toContain("\n");
        }
      }
      expect(await collect(store.list())).toEqual([]);
      // A long bad hash is quoted and cut short in the message.
      const err = await expectBlockError(store.get("x".repeat(5000)), "INVALID_HASH");
      expect(err.message.length).toBeLessThan(600);
    });

    it("get of an absent block fails NOT_FOUND naming it; has and delete treat absence as normal", async () => {
      const store = await fresh();
      const { hash } = block(Buffer.from("never stored"));
      const err = await expectBlockError(store.get(hash), "NOT_FOUND");
      expect(err.hash).toBe(hash);
      expect(err.message).toContain(hash);
      expect(err.message).toContain(store.location);
      expect(await store.has(hash)).toBe(false);
      await expect(store.delete(hash)).resolves.toBeUndefined();
      await expect(store.delete(hash)).resolves.toBeUndefined();
    });

    it(`lists ${options.listingSize} blocks, over several pages, in hash order with sizes`, async () => {
      const store = await fresh();
      const items = blocks(options.listingSize);
      await putMany(store, [...items].reverse());
      const listed = await collect(store.list());
      expect(listed).toHaveLength(items.length);
      expect(listed).toEqual(items.map((b) => ({ hash: b.hash, size: b.bytes.length })));
    });

    it("tolerates puts and deletes while a listing is under way", async () => {
      const store = await fresh();
      const items = blocks(options.listingSize);
      await putMany(store, items);
      const extra = blocks(20, "added");
      const deleted = new Set<string>();
      const seen: string[] = [];
      // About 30 times during the listing: delete one block still ahead of the cursor and one
      // behind it, and add one.
      const every = Math.max(7, Math.floor(items.length / 30));
      let i = 0;
      for await (const { hash } of store.list()) {
        seen.push(hash);
        if (i % every === 0) {
          const ahead = items[Math.min(items.length - 1, i + 13)].hash;
          const behind = items[Math.max(0, i - 3)].hash;
          for (const h of [ahead, behind]) {
            deleted.add(h);
            await store.delete(h);
          }
          const added = extra[(i / every) % extra.length];
          await store.put(added.hash, added.bytes);
        }
        i++;
      }
      // Strictly increasing: nothing listed twice, nothing out of order.
      for (let k = 1; k < seen.length; k++) expect(seen[k - 1] < seen[k]).toBe(true);
      // Every block that stayed stored throughout was listed.
      const listed = new Set(seen);
      for (const b of items) if (!deleted.has(b.hash)) expect(listed.has(b.hash)).toBe(true);
      // Once settled, the store lists exactly what is there.
      const after = (await collect(store.list())).map((b) => b.hash);
      for (const h of deleted) expect(after).not.toContain(h);
      for (const h of after) expect(await store.has(h)).toBe(true);
    });

    it("refuses every call once closed (UNAVAILABLE), and closing twice is harmless", async () => {
      const store = await fresh();
      const { hash, bytes } = block(Buffer.from("before close"));
      await store.put(hash, bytes);
      await store.close();
      await store.close();
      const calls = [
        () => store.put(hash, bytes),
        () => store.get(hash),
        () => store.has(hash),
        () => store.delete(hash),
        () => collect(store.list()),
      ];
      for (const call of calls) {
        const err = await expectBlockError(call(), "UNAVAILABLE");
        expect(err.message).toContain("closed");
        expect(err.message).toContain(store.location);
      }
    });

    it("stops a listing under way when the store is closed", async () => {
      const store = await fresh();
      await putMany(store, blocks(options.listingSize));
      const listing = store.list()[Symbol.asyncIterator]();
      expect((await listing.next()).done).toBe(false);
      await store.close();
      const err = await expectBlockError(
        (async () => {
          while (!(await listing.next()).done);
        })(),
        "UNAVAILABLE",
      );
      expect(err.message).toContain("closed");
    });
  });
}
