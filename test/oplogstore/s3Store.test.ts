import { createHash, randomBytes } from "node:crypto";
import { inspect } from "node:util";
import { CreateBucketCommand, PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { openOplogStore } from "../../src/oplogstore/open.js";
import { S3OplogStore, type S3OplogStoreOptions } from "../../src/oplogstore/s3Store.js";
import { collect, describeOplogStoreContract, expectStoreError } from "./contract.js";
import { S3RVER_CREDENTIALS, startS3rver, type RunningS3rver } from "./s3rverFixture.js";

const BUCKET = "tidemark-oplog";
const PAGE_SIZE = 7;

let s3rver: RunningS3rver;
let admin: S3Client;

beforeAll(async () => {
  s3rver = await startS3rver();
  admin = new S3Client({
    endpoint: s3rver.endpoint,
    region: "us-east-1",
    forcePathStyle: true,
    credentials: S3RVER_CREDENTIALS,
  });
  await admin.send(new CreateBucketCommand({ Bucket: BUCKET }));
});

afterAll(async () => {
  admin?.destroy();
  await s3rver?.stop();
});

let prefixCounter = 0;
/** Each store gets its own prefix in the shared bucket, so every test starts empty. */
function storeOptions(overrides: Partial<S3OplogStoreOptions> = {}): S3OplogStoreOptions {
  return {
    bucket: BUCKET,
    prefix: `tidemark/t${++prefixCounter}`,
    endpoint: s3rver.endpoint,
    region: "us-east-1",
    ...S3RVER_CREDENTIALS,
    forcePathStyle: true,
    maxAttempts: 1,
    ...overrides,
  };
}

describeOplogStoreContract(
  "S3OplogStore (s3rver)",
  async () => new S3OplogStore(storeOptions({ listPageSize: PAGE_SIZE })),
  {
    locationScheme: "s3://",
    pageSize: PAGE_SIZE,
  },
);

describe("S3OplogStore", () => {
  const open: S3OplogStore[] = [];
  afterEach(async () => {
    await Promise.all(open.splice(0).map((s) => s.close()));
  });
  function newStore(overrides: Partial<S3OplogStoreOptions> = {}): S3OplogStore {
    const store = new S3OplogStore(storeOptions(overrides));
    open.push(store);
    return store;
  }

  it("names bucket and prefix as its location, never the credentials or the endpoint", () => {
    const store = newStore({
      prefix: "/backups/oplog/",
      accessKeyId: "AKIAEXAMPLE",
      secretAccessKey: "wJalrSECRET",
    });
    expect(store.location).toBe(`s3://${BUCKET}/backups/oplog`);
    expect(newStore({ prefix: "" }).location).toBe(`s3://${BUCKET}`);
  });

  it("stores key k as the object <prefix>/k", async () => {
    const store = newStore({ prefix: "backups/oplog" });
    await store.put("dep1/oplog/0000000001.slice", Buffer.from("x"));
    const raw = new S3OplogStore(storeOptions({ prefix: "backups" }));
    open.push(raw);
    expect(await collect(raw.list(""))).toEqual([{ key: "oplog/dep1/oplog/0000000001.slice", size: 1 }]);
  });

  it("sends the SHA-256 of every upload so the service can verify the bytes", async () => {
    const store = newStore();
    const data = randomBytes(10_000);
    const before = (await s3rver.requests()).length;
    await store.put("dep1/oplog/0000000001.slice", data);
    const puts = (await s3rver.requests(before)).filter((r) => r.method === "PUT");
    expect(puts).toHaveLength(1);
    expect(puts[0].headers["x-amz-checksum-sha256"]).toBe(createHash("sha256").update(data).digest("base64"));
    // A plain body, not aws-chunked: the checksum travels in a header covered by the signature.
    expect(puts[0].headers["content-length"]).toBe("10000");
    expect(String(puts[0].headers["authorization"])).toContain("x-amz-checksum-sha256");
  });

  it("pages through more than 1000 keys with S3's default page size", async () => {
    const store = newStore(); // listPageSize 1000, the most S3 returns per page
    const keys = Array.from({ length: 1005 }, (_, i) => `dep1/oplog/${String(i).padStart(10, "0")}.slice`);
    for (let i = 0; i < keys.length; i += 50) {
      await Promise.all(keys.slice(i, i + 50).map((k) => store.put(k, Buffer.from("s"))));
    }
    const before = (await s3rver.requests()).length;
    const listed = await collect(store.list("dep1/"));
    expect(listed.map((o) => o.key)).toEqual(keys);
    // Two ListObjectsV2 pages: 1000 keys, then 5 after the continuation token.
    const lists = (await s3rver.requests(before)).filter((r) => r.url.includes("list-type=2"));
    expect(lists).toHaveLength(2);
    expect(lists[1].url).toContain("continuation-token=");
    // 1005 deletes: one DeleteObjects (POST ?delete) of 1000, then the last 5.
    const beforeDelete = (await s3rver.requests()).length;
    expect(await store.deletePrefix("dep1/")).toBe(1005);
    const batches = (await s3rver.requests(beforeDelete)).filter((r) => r.method === "POST");
    expect(batches.length).toBeGreaterThanOrEqual(1);
    expect(batches[0].url).toContain("delete");
    expect(await collect(store.list(""))).toEqual([]);
  });

  it("skips objects under its prefix that it could not have written", async () => {
    const store = newStore({ prefix: "mixed" });
    await store.put("dep1/oplog/0000000001.slice", Buffer.from("x"));
    // A console's "folder" marker and a foreign object with a space in its name.
    await admin.send(new PutObjectCommand({ Bucket: BUCKET, Key: "mixed/dep1/", Body: Buffer.alloc(0) }));
    await admin.send(
      new PutObjectCommand({ Bucket: BUCKET, Key: "mixed/dep1/notes about it.txt", Body: Buffer.from("hi") }),
    );
    expect(await collect(store.list(""))).toEqual([{ key: "dep1/oplog/0000000001.slice", size: 1 }]);
  });

  it("reports refused credentials as UNAVAILABLE without leaking them", async () => {
    const secret = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYSECRET";
    const store = newStore({ accessKeyId: "AKIAWRONGKEY0000", secretAccessKey: secret });
    const err = await expectStoreError(
      store.put("dep1/oplog/0000000001.slice", Buffer.from("x")),
      "UNAVAILABLE",
    );
    expect(err.message).toContain("check the endpoint and credentials");
    expect(err.message).toContain(s3rver.endpoint);
    expect(err.message).not.toContain(secret);
    expect(err.message).not.toContain("AKIAWRONGKEY0000");
    expect(inspect(err, { depth: 10 })).not.toContain(secret);
  });

  it("verify() reports a missing bucket as UNAVAILABLE", async () => {
    const store = newStore({ bucket: "no-such-bucket" });
    const err = await expectStoreError(store.verify(), "UNAVAILABLE");
    expect(err.message).toContain('bucket "no-such-bucket" does not exist');
    await expect(newStore().verify()).resolves.toBeUndefined();
  });

  it("reports a stopped server as UNAVAILABLE, naming the endpoint", async () => {
    const down = await startS3rver();
    await down.stop();
    const secret = "SECRET-THAT-MUST-NOT-BE-LOGGED";
    const store = newStore({ endpoint: down.endpoint, secretAccessKey: secret, maxAttempts: 1 });
    const attempts: Array<() => Promise<unknown>> = [
      () => store.put("dep1/oplog/0000000001.slice", Buffer.from("x")),
      () => store.get("dep1/oplog/0000000001.slice"),
      () => store.exists("dep1/oplog/0000000001.slice"),
      () => store.delete("dep1/oplog/0000000001.slice"),
      () => collect(store.list("dep1/")),
      () => store.deletePrefix("dep1/"),
    ];
    for (const attempt of attempts) {
      const err = await expectStoreError(attempt(), "UNAVAILABLE");
      expect(err.message).toContain(`cannot reach ${down.endpoint}`);
      expect(err.message).toContain("ECONNREFUSED");
      expect(err.message).toContain("check the endpoint and credentials");
      expect(err.message).toContain(store.location);
      expect(inspect(err, { depth: 10 })).not.toContain(secret);
    }
  });

  it("names an endpoint without the user:password some people put in URLs", async () => {
    const down = await startS3rver();
    await down.stop();
    const withUserInfo = down.endpoint.replace("http://", "http://alice:hunter2@");
    const store = newStore({ endpoint: withUserInfo });
    expect(store.endpoint).toBe(down.endpoint);
    const err = await expectStoreError(store.get("dep1/x"), "UNAVAILABLE");
    expect(err.message).not.toContain("hunter2");
  });
});

describe("openOplogStore with s3://", () => {
  it("takes the endpoint, region and credentials from AWS_* variables", async () => {
    const store = await openOplogStore(`s3://${BUCKET}/from-env/`, {
      env: {
        AWS_ENDPOINT_URL_S3: s3rver.endpoint,
        AWS_REGION: "us-east-1",
        AWS_ACCESS_KEY_ID: S3RVER_CREDENTIALS.accessKeyId,
        AWS_SECRET_ACCESS_KEY: S3RVER_CREDENTIALS.secretAccessKey,
      },
    });
    try {
      expect(store).toBeInstanceOf(S3OplogStore);
      expect(store.location).toBe(`s3://${BUCKET}/from-env`);
      await store.put("dep1/oplog/0000000001.slice", Buffer.from("via env"));
      expect((await store.get("dep1/oplog/0000000001.slice")).toString()).toBe("via env");
    } finally {
      await store.close();
    }
  });

  it("prefers explicit options over the environment", async () => {
    const store = await openOplogStore(`s3://${BUCKET}/from-options`, {
      s3: { endpoint: s3rver.endpoint, ...S3RVER_CREDENTIALS },
      env: {
        AWS_ENDPOINT_URL_S3: "http://127.0.0.1:1",
        AWS_ACCESS_KEY_ID: "WRONG",
        AWS_SECRET_ACCESS_KEY: "WRONG",
      },
    });
    await store.close();
  });

  it("fails at open when the bucket does not exist", async () => {
    const err = await expectStoreError(
      openOplogStore("s3://missing-bucket/x", { s3: { endpoint: s3rver.endpoint, ...S3RVER_CREDENTIALS } }),
      "UNAVAILABLE",
    );
    expect(err.message).toContain("s3://missing-bucket/x");
  });
});
