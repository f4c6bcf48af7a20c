import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { FileSystemOplogStore } from "../../src/oplogstore/fileSystemStore.js";
import { collect, describeOplogStoreContract, expectStoreError } from "./contract.js";

const dirs: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(path.join(tmpdir(), "tidemark-oplogstore-"));
  dirs.push(dir);
  return dir;
}
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

/** Every file under `root`, relative, "/"-separated (temp files included, unlike list()). */
function filesUnder(root: string): string[] {
  return readdirSync(root, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => path.relative(root, path.join(e.parentPath, e.name)).split(path.sep).join("/"))
    .sort();
}

describeOplogStoreContract("FileSystemOplogStore", () => FileSystemOplogStore.open(tempDir()), {
  locationScheme: "file:///",
});

describe("FileSystemOplogStore", () => {
  const open: FileSystemOplogStore[] = [];
  afterEach(async () => {
    await Promise.all(open.splice(0).map((s) => s.close()));
  });
  async function openAt(root: string, maxBytes?: number): Promise<FileSystemOplogStore> {
    const store = await FileSystemOplogStore.open(root, { maxBytes });
    open.push(store);
    return store;
  }

  it("stores key a/b/c as the file <root>/a/b/c and names itself by file URL", async () => {
    const root = tempDir();
    const store = await openAt(path.join(root, "nested", "oplogstore"));
    expect(store.location).toBe(pathToFileURL(path.join(root, "nested", "oplogstore")).href);
    await store.put("dep1/oplog/0000000001.slice", Buffer.from("slice"));
    expect(filesUnder(store.root)).toEqual(["dep1/oplog/0000000001.slice"]);
  });

  it("lists in key byte order even where directory order differs ('a.b' < 'a/b')", async () => {
    const store = await openAt(tempDir());
    // '$' < '.' < '/' < '0': a depth-first walk would put "d/a/b" before "d/a$b" and "d/a.b".
    for (const key of ["d/a/b", "d/a.b", "d/a$b", "d/a0", "d/a/a"]) await store.put(key, Buffer.from(key));
    expect((await collect(store.list("d/"))).map((o) => o.key)).toEqual([
      "d/a$b",
      "d/a.b",
      "d/a/a",
      "d/a/b",
      "d/a0",
    ]);
    expect((await collect(store.list("d/a"))).map((o) => o.key)).toEqual([
      "d/a$b",
      "d/a.b",
      "d/a/a",
      "d/a/b",
      "d/a0",
    ]);
    expect((await collect(store.list("d/a/"))).map((o) => o.key)).toEqual(["d/a/a", "d/a/b"]);
  });

  it("rejects a key that collides with a directory of other keys", async () => {
    const store = await openAt(tempDir());
    await store.put("dep1/oplog/0000000001.slice", Buffer.from("x"));
    const asDir = await expectStoreError(store.put("dep1/oplog", Buffer.from("x")), "INVALID_KEY");
    expect(asDir.message).toContain("collides with a directory");
    await expectStoreError(store.put("dep1/oplog/0000000001.slice/x", Buffer.from("x")), "INVALID_KEY");
    expect(filesUnder(store.root)).toEqual(["dep1/oplog/0000000001.slice"]);
    expect(store.usedBytes).toBe(1);
  });

  it("removes directories that deletes leave empty", async () => {
    const store = await openAt(tempDir());
    await store.put("dep1/oplog/0000000001.slice", Buffer.from("x"));
    await store.put("dep1/documents/shop.orders/0000000001.slice", Buffer.from("x"));
    await store.put("dep2/oplog/0000000001.slice", Buffer.from("x"));
    await store.delete("dep2/oplog/0000000001.slice");
    expect(readdirSync(store.root)).toEqual(["dep1"]);
    expect(await store.deletePrefix("dep1/")).toBe(2);
    expect(readdirSync(store.root)).toEqual([]);
    // The store still works after its directories are gone.
    await store.put("dep1/oplog/0000000002.slice", Buffer.from("again"));
    expect((await store.get("dep1/oplog/0000000002.slice")).toString()).toBe("again");
  });

  it("keeps an exact running total, and recomputes it at open", async () => {
    const root = tempDir();
    const store = await openAt(root);
    await store.put("dep1/oplog/0000000001.slice", Buffer.alloc(100));
    await store.put("dep1/oplog/0000000002.slice", Buffer.alloc(50));
    await store.put("dep1/oplog/0000000001.slice", Buffer.alloc(70)); // overwrite: counts the difference
    await store.delete("dep1/oplog/0000000002.slice");
    await store.delete("dep1/oplog/0000000002.slice"); // absent: no change
    expect(store.usedBytes).toBe(70);
    const reopened = await openAt(root);
    expect(reopened.usedBytes).toBe(70);
  });

  describe("quota (maxBytes)", () => {
    it("refuses a put over the quota with NO_SPACE, writing nothing", async () => {
      const store = await openAt(tempDir(), 1000);
      const first = randomBytes(600);
      await store.put("dep1/oplog/0000000001.slice", first);

      const err = await expectStoreError(
        store.put("dep1/oplog/0000000002.slice", randomBytes(500)),
        "NO_SPACE",
      );
      expect(err.message).toContain(store.location);
      expect(err.message).toContain("dep1/oplog/0000000002.slice");
      expect(err.message).toContain("--oplog-store-max-gb");
      expect(err.hint).toContain(`free space on ${store.root}`);
      // No partial object and no temp file: the refusal came before any write.
      expect(filesUnder(store.root)).toEqual(["dep1/oplog/0000000001.slice"]);
      expect(await store.exists("dep1/oplog/0000000002.slice")).toBe(false);
      expect(store.usedBytes).toBe(600);
      expect((await store.get("dep1/oplog/0000000001.slice")).equals(first)).toBe(true);
    });

    it("lets an idempotent re-upload through at a full quota, and frees space on delete", async () => {
      const store = await openAt(tempDir(), 1000);
      const data = randomBytes(1000);
      await store.put("dep1/oplog/0000000001.slice", data);
      await store.put("dep1/oplog/0000000001.slice", data); // same bytes, no growth
      await expectStoreError(store.put("dep1/oplog/0000000002.slice", Buffer.alloc(1)), "NO_SPACE");
      await store.delete("dep1/oplog/0000000001.slice");
      await store.put("dep1/oplog/0000000002.slice", Buffer.alloc(1000));
      expect(store.usedBytes).toBe(1000);
    });

    it("does not let concurrent puts overshoot the quota together", async () => {
      const store = await openAt(tempDir(), 1000);
      const results = await Promise.allSettled(
        Array.from({ length: 10 }, (_, i) => store.put(`dep1/oplog/000000000${i}.slice`, Buffer.alloc(300))),
      );
      expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(3);
      expect(store.usedBytes).toBe(900);
      expect(filesUnder(store.root)).toHaveLength(3);
    });

    it("counts what is already on disk at open", async () => {
      const root = tempDir();
      const first = await openAt(root);
      await first.put("dep1/oplog/0000000001.slice", Buffer.alloc(800));
      const limited = await openAt(root, 1000);
      await expectStoreError(limited.put("dep1/oplog/0000000002.slice", Buffer.alloc(300)), "NO_SPACE");
    });
  });

  it("cleans up temp files a crash left behind at open", async () => {
    const root = tempDir();
    mkdirSync(path.join(root, "dep1", "oplog"), { recursive: true });
    writeFileSync(path.join(root, "dep1", "oplog", "0000000001.slice"), "complete");
    // What a put killed between writing and renaming leaves: the temp file, never the object.
    writeFileSync(path.join(root, "dep1", "oplog", "0000000002.slice~0a1b2c3d4e5f.tmp"), "half a sli");
    writeFileSync(path.join(root, "0000000009.slice~ffffffffffff.tmp"), "x");

    const store = await openAt(root);
    expect(store.removedTempFiles).toBe(2);
    expect(filesUnder(root)).toEqual(["dep1/oplog/0000000001.slice"]);
    expect(store.usedBytes).toBe("complete".length);
    expect(await store.exists("dep1/oplog/0000000002.slice")).toBe(false);
    expect((await store.get("dep1/oplog/0000000001.slice")).toString()).toBe("complete");
    expect(await collect(store.list(""))).toEqual([{ key: "dep1/oplog/0000000001.slice", size: 8 }]);
  });

  it("leaves no temp files behind after successful puts", async () => {
    const store = await openAt(tempDir());
    await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        store.put(`dep1/oplog/${String(i).padStart(10, "0")}.slice`, randomBytes(999)),
      ),
    );
    expect(filesUnder(store.root).filter((f) => f.includes("~"))).toEqual([]);
  });

  describe("on a real full disk (1 MiB tmpfs)", () => {
    const isRoot = process.getuid?.() === 0;
    let mountPoint = "";
    let mounted = false;
    let skipReason: string | undefined;

    beforeAll(() => {
      if (!isRoot) {
        skipReason = "not running as root, so no tmpfs can be mounted";
        return;
      }
      mountPoint = tempDir();
      try {
        execFileSync("mount", ["-t", "tmpfs", "-o", "size=1m", "tmpfs", mountPoint], { stdio: "pipe" });
        mounted = true;
      } catch (err) {
        skipReason = `mount -t tmpfs failed (${err instanceof Error ? err.message.trim() : String(err)})`;
      }
    });
    afterAll(() => {
      if (mounted) execFileSync("umount", [mountPoint], { stdio: "pipe" });
    });

    it("fails a put that does not fit with NO_SPACE, leaving no temp file and earlier objects intact", async (ctx) => {
      if (skipReason !== undefined) {
        console.warn(`SKIPPED real full-disk test: ${skipReason}`);
        ctx.skip(skipReason);
      }
      const root = path.join(mountPoint, "oplogstore");
      const store = await openAt(root);
      const earlier = [randomBytes(200_000), randomBytes(200_000), randomBytes(200_000)];
      for (const [i, data] of earlier.entries()) await store.put(`dep1/oplog/000000000${i}.slice`, data);

      const err = await expectStoreError(
        store.put("dep1/oplog/0000000009.slice", randomBytes(600_000)),
        "NO_SPACE",
      );
      expect(err.message).toContain("ENOSPC");
      expect(err.message).toContain(store.location);
      expect(err.message).toContain("dep1/oplog/0000000009.slice");
      expect(err.hint).toContain(`free space on ${root}`);

      expect(filesUnder(root)).toEqual([0, 1, 2].map((i) => `dep1/oplog/000000000${i}.slice`));
      expect(existsSync(path.join(root, "dep1", "oplog", "0000000009.slice"))).toBe(false);
      for (const [i, data] of earlier.entries()) {
        expect((await store.get(`dep1/oplog/000000000${i}.slice`)).equals(data)).toBe(true);
      }
      expect(store.usedBytes).toBe(600_000);
      // Once space is freed the same upload goes through.
      await store.delete("dep1/oplog/0000000000.slice");
      await store.delete("dep1/oplog/0000000001.slice");
      await store.put("dep1/oplog/0000000009.slice", randomBytes(600_000));
    });
  });
});
