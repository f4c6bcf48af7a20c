import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { FileSystemOplogStore } from "../../src/oplogstore/fileSystemStore.js";
import { openOplogStore, parseS3Spec } from "../../src/oplogstore/open.js";

const dataDir = mkdtempSync(path.join(tmpdir(), "tidemark-open-"));
afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

describe("openOplogStore", () => {
  it("defaults to <dataDir>/oplogstore", async () => {
    for (const spec of [undefined, "", "  "]) {
      const store = await openOplogStore(spec, { dataDir });
      expect(store).toBeInstanceOf(FileSystemOplogStore);
      expect(store.location).toBe(pathToFileURL(path.join(dataDir, "oplogstore")).href);
      await store.close();
    }
  });

  it("opens a directory given as a path or a file:// URL, with the quota", async () => {
    const dir = path.join(dataDir, "elsewhere");
    const byPath = await openOplogStore(dir, { maxBytes: 10 });
    expect(byPath.location).toBe(pathToFileURL(dir).href);
    expect((byPath as FileSystemOplogStore).maxBytes).toBe(10);
    const byUrl = await openOplogStore(pathToFileURL(dir).href);
    expect(byUrl.location).toBe(byPath.location);
    await byPath.close();
    await byUrl.close();
  });

  it("refuses an empty spec without a data directory, and unknown schemes", async () => {
    await expect(openOplogStore("")).rejects.toThrow(/no oplog store given/);
    await expect(openOplogStore("gs://bucket/x")).rejects.toThrow(/unsupported oplog store "gs:\/\/\.\.\."/);
  });
});

describe("parseS3Spec", () => {
  it("splits bucket and prefix", () => {
    expect(parseS3Spec("s3://my-bucket/tidemark/oplog/")).toEqual({
      bucket: "my-bucket",
      prefix: "tidemark/oplog",
    });
    expect(parseS3Spec("s3://my-bucket")).toEqual({ bucket: "my-bucket", prefix: "" });
    expect(parseS3Spec("S3://my.bucket/")).toEqual({ bucket: "my.bucket", prefix: "" });
  });

  it("refuses credentials in the URL without echoing them", () => {
    let message = "";
    try {
      parseS3Spec("s3://AKIAEXAMPLE:wJalrSECRET@my-bucket/prefix");
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toMatch(/never in the URL/);
    expect(message).not.toContain("wJalrSECRET");
  });

  it("refuses invalid bucket names and prefixes", () => {
    expect(() => parseS3Spec("s3://")).toThrow(/bucket name/);
    expect(() => parseS3Spec("s3://Upper_Case/x")).toThrow(/bucket name/);
    expect(() => parseS3Spec("s3://bucket/../x")).toThrow(/prefix is invalid/);
    expect(() => parseS3Spec("s3://bucket/a b")).toThrow(/prefix is invalid/);
  });
});
