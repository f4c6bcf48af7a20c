import { randomBytes } from "node:crypto";
import { createServer, type Server, type Socket } from "node:net";
import { inspect } from "node:util";
import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { blockHash } from "../../../src/snapshot/stores/blockStore.js";
import {
  blockKey,
  S3BlockStore,
  type S3BlockStoreOptions,
} from "../../../src/snapshot/stores/s3BlockStore.js";
import {
  S3RVER_CREDENTIALS,
  startS3rver,
  startS3rverWithBucket,
  type RunningS3rver,
  type S3rverBucket,
} from "../../oplogstore/s3rverFixture.js";
import { block, blocks, collect, describeBlockStoreContract, expectBlockError } from "./contract.js";

const BUCKET = "tidemark-blocks";
const PAGE_SIZE = 7;

let s3: S3rverBucket;
let s3rver: RunningS3rver;
let admin: S3Client;

beforeAll(async () => {
  s3 = await startS3rverWithBucket(BUCKET);
  ({ s3rver, admin } = s3);
});

afterAll(async () => {
  await s3?.stop();
});

let prefixCounter = 0;
/** Each store gets its own prefix in the shared bucket, so every test starts empty. */
function storeOptions(overrides: Partial<S3BlockStoreOptions> = {}): S3BlockStoreOptions {
  return {
    bucket: BUCKET,
    prefix: `snapshots/t${++prefixCounter}`,
    endpoint: s3rver.endpoint,
    region: "us-east-1",
    ...S3RVER_CREDENTIALS,
    forcePathStyle: true,
    maxAttempts: 1,
    ...overrides,
  };
}

describeBlockStoreContract(
  "S3BlockStore (s3rver)",
  async () => new S3BlockStore(storeOptions({ listPageSize: PAGE_SIZE })),
  { locationScheme: "s3://", listingSize: 6 * PAGE_SIZE + 3 },
);

/** The objects under `prefix` in the bucket, as the service has them. */
async function bucketKeys(prefix: string): Promise<string[]> {
  const out = await admin.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: `${prefix}/` }));
  return (out.Contents ?? []).map((o) => o.Key ?? "");
}

describe("S3BlockStore", () => {
  const open: S3BlockStore[] = [];
  afterEach(async () => {
    await Promise.all(open.splice(0).map((s) => s.close()));
  });
  function newStore(overrides: Partial<S3BlockStoreOptions> = {}): S3BlockStore {
    const store = new S3BlockStore(storeOptions(overrides));
    open.push(store);
    return store;
  }

  it("names bucket and prefix as its location, never credentials or the endpoint", () => {
    const store = newStore({
      prefix: "/backups/blocks/",
      accessKeyId: "AKIAEXAMPLE",
      secretAccessKey: "wJalrSECRET",
    });
    expect(store.location).toBe(`s3://${BUCKET}/backups/blocks`);
    expect(store.bucket).toBe(BUCKET);
    expect(store.endpoint).toBe(s3rver.endpoint);
    expect(inspect(store, { depth: 0 })).not.toContain("wJalrSECRET");
  });

  it("stores block h as the object <prefix>/blocks/<first two digits of h>/h", async () => {
    const store = newStore({ prefix: "layout" });
    const { hash, bytes } = block(Buffer.from("where does it go"));
    await store.put(hash, bytes);
    expect(blockKey(hash)).toBe(`blocks/${hash.slice(0, 2)}/${hash}`);
    expect(await bucketKeys("layout")).toEqual([`layout/blocks/${hash.slice(0, 2)}/${hash}`]);
    const raw = await admin.send(new GetObjectCommand({ Bucket: BUCKET, Key: `layout/${blockKey(hash)}` }));
    expect(Buffer.from(await raw.Body!.transformToByteArray()).equals(bytes)).toBe(true);
  });

  it("uploads a block only if it is not there: a repeated put is one HEAD, no PUT", async () => {
    const store = newStore();
    const { hash, bytes } = block(randomBytes(10_000));
    let before = (await s3rver.requests()).length;
    expect(await store.put(hash, bytes)).toBe(true);
    let sent = await s3rver.requests(before);
    expect(sent.map((r) => r.method)).toEqual(["HEAD", "PUT"]);
    before = (await s3rver.requests()).length;
    expect(await store.put(hash, bytes)).toBe(false);
    sent = await s3rver.requests(before);
    expect(sent.map((r) => r.method)).toEqual(["HEAD"]);
  });

  it("shares one upload between concurrent puts of a block in this process", async () => {
    const store = newStore();
    const { hash, bytes } = block(randomBytes(200_000));
    const before = (await s3rver.requests()).length;
    const results = await Promise.all(Array.from({ length: 5 }, () => store.put(hash, bytes)));
    expect(results.filter((r) => r)).toEqual([true]);
    const puts = (await s3rver.requests(before)).filter((r) => r.method === "PUT");
    expect(puts).toHaveLength(1);
  });

  it("sends nothing for a hash mismatch or a malformed hash", async () => {
    const store = newStore();
    const before = (await s3rver.requests()).length;
    await expectBlockError(store.put(blockHash(Buffer.from("a")), Buffer.from("b")), "HASH_MISMATCH");
    await expectBlockError(store.get("not-a-hash"), "INVALID_HASH");
    await expectBlockError(store.delete("0".repeat(63)), "INVALID_HASH");
    expect(await s3rver.requests(before)).toEqual([]);
  });

  describe("a damaged block", () => {
    it("fails get with CORRUPT_BLOCK naming the block when the object's bytes changed", async () => {
      const store = newStore({ prefix: "damaged" });
      const damaged = block(randomBytes(5000));
      const intact = block(randomBytes(5000));
      await store.put(damaged.hash, damaged.bytes);
      await store.put(intact.hash, intact.bytes);
      // One flipped bit, written over the object as anything else with bucket access could.
      const flipped = Buffer.from(damaged.bytes);
      flipped[2500] ^= 0x04;
      await admin.send(
        new PutObjectCommand({ Bucket: BUCKET, Key: `damaged/${blockKey(damaged.hash)}`, Body: flipped }),
      );

      const err = await expectBlockError(store.get(damaged.hash), "CORRUPT_BLOCK");
      expect(err.hash).toBe(damaged.hash);
      expect(err.message).toContain(damaged.hash);
      expect(err.message).toContain("s3://tidemark-blocks/damaged");
      expect(err.message).toContain(blockHash(flipped));
      expect((await store.get(intact.hash)).equals(intact.bytes)).toBe(true);
      // Delete and put again repairs it.
      await store.delete(damaged.hash);
      expect(await store.put(damaged.hash, damaged.bytes)).toBe(true);
      expect((await store.get(damaged.hash)).equals(damaged.bytes)).toBe(true);
    });

    it("fails get with CORRUPT_BLOCK when the object was truncated to nothing", async () => {
      const store = newStore({ prefix: "truncated" });
      const item = block(randomBytes(5000));
      await store.put(item.hash, item.bytes);
      await admin.send(
        new PutObjectCommand({
          Bucket: BUCKET,
          Key: `truncated/${blockKey(item.hash)}`,
          Body: Buffer.alloc(0),
        }),
      );
      const err = await expectBlockError(store.get(item.hash), "CORRUPT_BLOCK");
      expect(err.message).toContain("read 0 bytes");
    });
  });

  it("lists only blocks: other objects under its prefix are skipped", async () => {
    const store = newStore({ prefix: "mixed" });
    const items = blocks(3);
    for (const b of items) await store.put(b.hash, b.bytes);
    const stray = blockHash(Buffer.from("stray"));
    const foreign = [
      "mixed/blocks/", // a console's folder marker
      "mixed/blocks/ab/not-a-hash",
      `mixed/blocks/${stray.slice(0, 2) === "00" ? "11" : "00"}/${stray}`, // filed under the wrong directory
      `mixed/blocks/${stray.slice(0, 2)}/${stray}.tmp`,
      `mixed/manifests/${stray}`, // outside blocks/
    ];
    for (const Key of foreign) await admin.send(new PutObjectCommand({ Bucket: BUCKET, Key, Body: "x" }));
    expect(await collect(store.list())).toEqual(items.map((b) => ({ hash: b.hash, size: b.bytes.length })));
  });

  describe("failures", () => {
    it("reports a stopped server as UNAVAILABLE from every method, naming store and endpoint, never succeeding", async () => {
      const down = await startS3rver();
      await down.stop();
      const secret = "SECRET-THAT-MUST-NOT-BE-LOGGED";
      const store = newStore({
        endpoint: down.endpoint,
        accessKeyId: "AKIADOWNKEY",
        secretAccessKey: secret,
      });
      const { hash, bytes } = block(Buffer.from("nowhere to go"));
      const attempts: Array<() => Promise<unknown>> = [
        () => store.put(hash, bytes),
        () => store.get(hash),
        () => store.has(hash),
        () => store.delete(hash),
        () => collect(store.list()),
        () => store.verify(),
      ];
      for (const attempt of attempts) {
        const err = await expectBlockError(attempt(), "UNAVAILABLE");
        expect(err.message).toContain(store.location);
        expect(err.message).toContain(`cannot reach ${down.endpoint}`);
        expect(err.message).toContain("ECONNREFUSED");
        expect(err.hint).toContain("check the endpoint and credentials");
        const logged = inspect(err, { depth: 10 });
        expect(logged).not.toContain(secret);
        expect(logged).not.toContain("AKIADOWNKEY");
      }
      // Worded for a block: "cannot store the block", naming it.
      const err = await expectBlockError(store.get(hash), "UNAVAILABLE");
      expect(err.message).toContain(`block ${hash}: cannot read the block:`);
    });

    it("gives up on a server that accepts but never answers after socketTimeoutMs", async () => {
      const hung = await startHungServer();
      try {
        const store = newStore({ endpoint: hung.endpoint, socketTimeoutMs: 300 });
        const { hash, bytes } = block(Buffer.from("into the void"));
        for (const attempt of [() => store.put(hash, bytes), () => store.get(hash)]) {
          const started = Date.now();
          const err = await expectBlockError(attempt(), "UNAVAILABLE");
          expect(Date.now() - started).toBeLessThan(5_000);
          expect(err.message).toContain(`cannot reach ${hung.endpoint}`);
          expect(err.message).toMatch(/timed out/);
          expect(err.message).toContain(hash);
        }
        expect(hung.connections()).toBeGreaterThanOrEqual(2);
      } finally {
        await hung.close();
      }
    });

    it("reports refused credentials as UNAVAILABLE without leaking them", async () => {
      const secret = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYSECRET";
      const store = newStore({
        accessKeyId: "AKIAWRONGKEY0000",
        secretAccessKey: secret,
        sessionToken: "TOKEN-SECRET",
      });
      const { hash, bytes } = block(Buffer.from("not allowed"));
      for (const attempt of [
        () => store.put(hash, bytes),
        () => store.get(hash),
        () => collect(store.list()),
      ]) {
        const err = await expectBlockError(attempt(), "UNAVAILABLE");
        expect(err.message).toContain("refused our credentials");
        expect(err.message).toContain(store.location);
        const logged = inspect(err, { depth: 10 });
        for (const s of [secret, "AKIAWRONGKEY0000", "TOKEN-SECRET"]) expect(logged).not.toContain(s);
      }
    });

    it("verify() reports a missing bucket as UNAVAILABLE and passes for an existing one", async () => {
      const err = await expectBlockError(newStore({ bucket: "no-such-bucket" }).verify(), "UNAVAILABLE");
      expect(err.message).toContain('bucket "no-such-bucket" does not exist');
      expect(err.message).toContain("s3://no-such-bucket/");
      await expect(newStore().verify()).resolves.toBeUndefined();
    });

    it("reports a put into a missing bucket as UNAVAILABLE", async () => {
      const store = newStore({ bucket: "no-such-bucket" });
      const { hash, bytes } = block(Buffer.from("lost"));
      const err = await expectBlockError(store.put(hash, bytes), "UNAVAILABLE");
      expect(err.message).toContain("does not exist");
    });
  });
});

/** A TCP server that accepts connections and never answers (a hung proxy or service). */
async function startHungServer(): Promise<{
  endpoint: string;
  connections(): number;
  close(): Promise<void>;
}> {
  const sockets = new Set<Socket>();
  let count = 0;
  const server: Server = createServer((socket) => {
    count++;
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => {});
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  return {
    endpoint: `http://127.0.0.1:${port}`,
    connections: () => count,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
