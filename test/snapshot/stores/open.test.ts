import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { inspect } from "node:util";
import { CreateBucketCommand, S3Client } from "@aws-sdk/client-s3";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { OplogStoreError } from "../../../src/oplogstore/errors.js";
import type { BlockStore } from "../../../src/snapshot/stores/blockStore.js";
import { BlockStoreError } from "../../../src/snapshot/stores/errors.js";
import { openBlockStore, type OpenBlockStoreOptions } from "../../../src/snapshot/stores/open.js";
import { S3BlockStore } from "../../../src/snapshot/stores/s3BlockStore.js";
import { SqliteBlockStore } from "../../../src/snapshot/stores/sqliteBlockStore.js";
import { S3RVER_CREDENTIALS, startS3rver, type RunningS3rver } from "../../oplogstore/s3rverFixture.js";
import { block, expectBlockError } from "./contract.js";

const dataDir = mkdtempSync(path.join(tmpdir(), "tidemark-open-blocks-"));
afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

const opened: BlockStore[] = [];
afterEach(async () => {
  await Promise.all(opened.splice(0).map((s) => s.close()));
});
async function open(spec: string | undefined, options?: OpenBlockStoreOptions): Promise<BlockStore> {
  const store = await openBlockStore(spec, options);
  opened.push(store);
  return store;
}

/** The message `promise` rejects with (failing if it resolves). */
async function rejection(promise: Promise<unknown>): Promise<Error> {
  const err: unknown = await promise.then(
    (store) => {
      opened.push(store as BlockStore);
      return undefined;
    },
    (e: unknown) => e,
  );
  expect(err, "expected openBlockStore to fail").toBeInstanceOf(Error);
  return err as Error;
}

describe("openBlockStore: blockstore databases", () => {
  it("opens <dataDir>/blockstore.sqlite for blockstore, an empty spec or none", async () => {
    const expected = path.join(dataDir, "blockstore.sqlite");
    for (const spec of ["blockstore", " blockstore ", "", "   ", undefined]) {
      const store = await open(spec, { dataDir });
      expect(store).toBeInstanceOf(SqliteBlockStore);
      expect((store as SqliteBlockStore).path).toBe(expected);
      expect(store.location).toBe(pathToFileURL(expected).href);
    }
    expect(existsSync(expected)).toBe(true);
  });

  it("needs a data directory for blockstore", async () => {
    for (const spec of ["blockstore", "", undefined]) {
      const err = await rejection(openBlockStore(spec));
      expect(err.message).toMatch(/^no block store given: pass blockstore with a data directory/);
    }
  });

  it("opens a path ending .sqlite, absolute or relative to the working directory, creating directories", async () => {
    const file = path.join(dataDir, "elsewhere", "blocks.sqlite");
    const byPath = await open(file);
    expect((byPath as SqliteBlockStore).path).toBe(file);
    const relative = await open(path.relative(process.cwd(), file));
    expect(relative.location).toBe(byPath.location);
    // Both see one database.
    const { hash, bytes } = block(Buffer.from("shared"));
    await byPath.put(hash, bytes);
    expect(await relative.has(hash)).toBe(true);
  });

  it("opens a file: URL of a .sqlite file, decoding it", async () => {
    const file = path.join(dataDir, "with space", "blocks #1.sqlite");
    const store = await open(pathToFileURL(file).href);
    expect((store as SqliteBlockStore).path).toBe(file);
    expect(existsSync(file)).toBe(true);
    const upper = await open(pathToFileURL(file).href.replace(/^file:/, "FILE:"));
    expect(upper.location).toBe(store.location);
  });

  it("passes the quota on", async () => {
    const store = await open(path.join(dataDir, "small.sqlite"), { maxBytes: 64 * 1024 });
    const big = block(randomBytes(100_000));
    await expectBlockError(store.put(big.hash, big.bytes), "NO_SPACE");
    const small = block(randomBytes(1000));
    expect(await store.put(small.hash, small.bytes)).toBe(true);
  });

  it("refuses file: URLs that are not an absolute path to a .sqlite file", async () => {
    const cases: Array<[string, RegExp]> = [
      ["file://fileserver/share/blocks.sqlite", /expected file:\/\/\/ABSOLUTE\/PATH\.sqlite/],
      ["file:blocks.sqlite", /expected file:\/\/\/ABSOLUTE\/PATH\.sqlite/],
      ["file:///data/a%2Fb.sqlite", /expected file:\/\/\/ABSOLUTE\/PATH\.sqlite/],
      [pathToFileURL(path.join(dataDir, "blocks")).href, /name must end with \.sqlite/],
    ];
    for (const [spec, message] of cases) {
      const err = await rejection(openBlockStore(spec, { dataDir }));
      expect(err.message, spec).toMatch(message);
    }
    expect(existsSync("/blocks.sqlite")).toBe(false);
  });

  it("refuses a path that does not end .sqlite (a directory is not a block store)", async () => {
    for (const spec of [dataDir, path.join(dataDir, "blocks.db"), "blocks", "BLOCKSTORE"]) {
      const err = await rejection(openBlockStore(spec, { dataDir }));
      expect(err.message, spec).toMatch(/^unsupported block store: use blockstore, a path ending \.sqlite/);
    }
  });

  it("refuses fs:/PATH, saying it is the file system snapshot store", async () => {
    for (const spec of ["fs:/backups/snapshots", "FS:/x.sqlite", "fs:relative"]) {
      const err = await rejection(openBlockStore(spec, { dataDir }));
      expect(err.message).toMatch(
        /^fs:\/PATH is the file system snapshot store \(full copies as mongodump directories\), not a block store/,
      );
    }
  });

  it("refuses other schemes, naming only the scheme", async () => {
    const cases: Array<[string, string]> = [
      ["gs://bucket/blocks.sqlite", 'unsupported block store "gs://..."'],
      ["https://alice:hunter2@example.com/blocks.sqlite", 'unsupported block store "https://..."'],
      ["mongodb://admin:hunter2@db.example.com/x.sqlite", 'unsupported block store "mongodb://..."'],
    ];
    for (const [spec, message] of cases) {
      const err = await rejection(openBlockStore(spec, { dataDir }));
      expect(err.message).toContain(message);
      expect(err.message).not.toContain("hunter2");
      expect(err.message).not.toContain("example.com");
    }
    // Something pasted by mistake is not echoed at all.
    const err = await rejection(openBlockStore("AKIAIOSFODNN7EXAMPLE:wJalrXUtnFEMI/K7MDENG", { dataDir }));
    expect(err.message).not.toContain("AKIAIOSFODNN7EXAMPLE");
    expect(err.message).not.toContain("wJalrXUtnFEMI");
  });
});

describe("openBlockStore: s3:// specs", () => {
  it("refuses invalid bucket names and prefixes, worded for a block store, without echoing the spec", async () => {
    const cases: Array<[string, RegExp]> = [
      ["s3://", /valid S3 bucket name/],
      ["s3:///prefix", /valid S3 bucket name/],
      ["s3://ab/x", /valid S3 bucket name/],
      ["s3://Bad_Bucket/x", /valid S3 bucket name/],
      ["s3://-bucket/x", /valid S3 bucket name/],
      [`s3://${"a".repeat(64)}/x`, /valid S3 bucket name/],
      ["s3://AKIAEXAMPLE:wJalrSECRET@my-bucket/blocks", /never in the URL/],
      ["s3://my-bucket/../blocks", /the prefix is invalid/],
      ["s3://my-bucket/a b", /the prefix is invalid/],
    ];
    for (const [spec, message] of cases) {
      const err = await rejection(openBlockStore(spec, { verify: false }));
      expect(err.message, spec).toMatch(message);
      expect(err.message, spec).toMatch(/^invalid block store/);
      expect(err.message).not.toContain("oplog store");
      expect(err.message).not.toContain("wJalrSECRET");
    }
  });

  describe("against s3rver", () => {
    const BUCKET = "tidemark-open-blocks";
    let s3rver: RunningS3rver;
    beforeAll(async () => {
      s3rver = await startS3rver();
      const admin = new S3Client({
        endpoint: s3rver.endpoint,
        region: "us-east-1",
        forcePathStyle: true,
        credentials: S3RVER_CREDENTIALS,
      });
      await admin.send(new CreateBucketCommand({ Bucket: BUCKET }));
      admin.destroy();
    });
    afterAll(async () => {
      await s3rver?.stop();
    });

    it("opens an S3BlockStore with settings from options, checking the bucket", async () => {
      const store = await open(`S3://${BUCKET}/snapshots/blocks/`, {
        s3: { endpoint: s3rver.endpoint, ...S3RVER_CREDENTIALS, maxAttempts: 1 },
        dataDir, // ignored for s3://
      });
      expect(store).toBeInstanceOf(S3BlockStore);
      expect(store.location).toBe(`s3://${BUCKET}/snapshots/blocks`);
      const { hash, bytes } = block(randomBytes(2000));
      expect(await store.put(hash, bytes)).toBe(true);
      expect((await store.get(hash)).equals(bytes)).toBe(true);
      expect(await store.put(hash, bytes)).toBe(false);
    });

    it("takes the endpoint, region and credentials from AWS_* variables, never from the URL", async () => {
      const store = await open(`s3://${BUCKET}/from-env`, {
        env: {
          AWS_ENDPOINT_URL_S3: s3rver.endpoint,
          AWS_REGION: "us-east-1",
          AWS_ACCESS_KEY_ID: S3RVER_CREDENTIALS.accessKeyId,
          AWS_SECRET_ACCESS_KEY: S3RVER_CREDENTIALS.secretAccessKey,
        },
      });
      const { hash, bytes } = block(Buffer.from("via env"));
      await store.put(hash, bytes);
      expect((await store.get(hash)).toString()).toBe("via env");
    });

    it("fails at open, as a BlockStoreError, when the bucket does not exist", async () => {
      const err = await expectBlockError(
        openBlockStore("s3://missing-bucket/blocks", {
          s3: { endpoint: s3rver.endpoint, ...S3RVER_CREDENTIALS },
        }),
        "UNAVAILABLE",
      );
      expect(err).not.toBeInstanceOf(OplogStoreError);
      expect(err.message).toMatch(/^block store s3:\/\/missing-bucket\/blocks: /);
      expect(err.message).toContain('bucket "missing-bucket" does not exist');
      expect(err.hint).toContain("create the bucket");
    });

    it("with verify: false, opens anyway and fails at the first use instead", async () => {
      const store = await open("s3://missing-bucket/blocks", {
        s3: { endpoint: s3rver.endpoint, ...S3RVER_CREDENTIALS, maxAttempts: 1 },
        verify: false,
      });
      const { hash, bytes } = block(Buffer.from("x"));
      await expectBlockError(store.put(hash, bytes), "UNAVAILABLE");
    });

    it("fails at open when the endpoint is down, naming it, without leaking credentials", async () => {
      const down = await startS3rver();
      await down.stop();
      const secret = "SECRET-FROM-THE-ENVIRONMENT";
      const err = await expectBlockError(
        openBlockStore(`s3://${BUCKET}/blocks`, {
          s3: { maxAttempts: 1 },
          env: {
            AWS_ENDPOINT_URL_S3: down.endpoint,
            AWS_ACCESS_KEY_ID: "AKIAFROMENV",
            AWS_SECRET_ACCESS_KEY: secret,
          },
        }),
        "UNAVAILABLE",
      );
      expect(err).toBeInstanceOf(BlockStoreError);
      expect(err.message).toContain(`cannot reach ${down.endpoint}`);
      expect(err.message).toContain(`s3://${BUCKET}/blocks`);
      expect(err.hint).toContain("check the endpoint");
      const logged = inspect(err, { depth: 10 });
      expect(logged).not.toContain(secret);
      expect(logged).not.toContain("AKIAFROMENV");
    });
  });
});
