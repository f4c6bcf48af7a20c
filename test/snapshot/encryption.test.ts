import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { inspect } from "node:util";
import { afterAll, describe, expect, it } from "vitest";
import {
  EncryptionError,
  KeyRing,
  MasterKey,
  MemoryDataKeyStore,
  SEALED_HEADER_SIZE,
  SEALED_OVERHEAD,
  isSealed,
  masterKeyFingerprint,
  sealedKeyId,
  writeMasterKeyFile,
  type EncryptionErrorCode,
  type WrappedDataKey,
} from "../../src/snapshot/encryption/index.js";
import { dataKeyMaterial } from "../../src/snapshot/encryption/dataKeys.js";
import { masterKeyMaterial } from "../../src/snapshot/encryption/masterKey.js";

const dir = mkdtempSync(join(tmpdir(), "tidemark-encryption-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let fileCounter = 0;
function keyFile(contents: string | Buffer, mode = 0o600): string {
  const path = join(dir, `key-${fileCounter++}`);
  writeFileSync(path, contents, { mode });
  chmodSync(path, mode);
  return path;
}

function caught(fn: () => unknown): EncryptionError {
  try {
    fn();
  } catch (error) {
    if (error instanceof EncryptionError) return error;
    throw error;
  }
  throw new Error("expected an EncryptionError, nothing was thrown");
}

function codeOf(fn: () => unknown): EncryptionErrorCode {
  return caught(fn).code;
}

/** Every representation of the key bytes that could leak into a message. */
function leaks(message: string, key: Buffer): boolean {
  const lower = message.toLowerCase();
  return (
    lower.includes(key.toString("hex")) ||
    lower.includes(key.toString("hex").slice(0, 16)) ||
    message.includes(key.toString("base64")) ||
    message.includes(key.toString("base64").slice(0, 16)) ||
    message.includes(key.toString("base64url").slice(0, 16))
  );
}

function ringWith(master: MasterKey, store = new MemoryDataKeyStore(), previous: MasterKey[] = []): KeyRing {
  return KeyRing.load({ master, previous, store });
}

describe("master key", () => {
  const bytes = randomBytes(32);

  it("reads a key file of 64 hex characters, whitespace trimmed", () => {
    const key = MasterKey.fromFile(keyFile(`  ${bytes.toString("hex")}\n\n`));
    expect(masterKeyMaterial(key).equals(bytes)).toBe(true);
    expect(key.fingerprint).toBe(masterKeyFingerprint(bytes));
    expect(key.source).toContain("key file");
    // Upper case hex is the same key.
    expect(MasterKey.fromFile(keyFile(bytes.toString("hex").toUpperCase())).fingerprint).toBe(
      key.fingerprint,
    );
  });

  it("reads a key file of base64 (standard and URL-safe)", () => {
    expect(MasterKey.fromFile(keyFile(`${bytes.toString("base64")}\n`)).fingerprint).toBe(
      masterKeyFingerprint(bytes),
    );
    expect(MasterKey.fromFile(keyFile(bytes.toString("base64url"))).fingerprint).toBe(
      masterKeyFingerprint(bytes),
    );
  });

  it("has the documented fingerprint: first 16 hex of SHA-256('tidemark master key' + key)", async () => {
    const { createHash } = await import("node:crypto");
    const expected = createHash("sha256")
      .update(Buffer.concat([Buffer.from("tidemark master key"), bytes]))
      .digest("hex")
      .slice(0, 16);
    expect(MasterKey.fromBytes(bytes).fingerprint).toBe(expected);
    expect(expected).toMatch(/^[0-9a-f]{16}$/);
  });

  it("refuses key files of the wrong length or format, naming the file and never the content", () => {
    const cases: Array<[string, RegExp]> = [
      [bytes.toString("hex").slice(0, 62), /62 hexadecimal characters/],
      [bytes.toString("hex") + "ab", /66 hexadecimal characters/],
      [randomBytes(16).toString("base64"), /base64 of 16 bytes/],
      [randomBytes(48).toString("base64"), /base64 of 48 bytes/],
      ["   \n", /is empty/],
      [
        `${bytes.toString("hex").slice(0, 32)} ${bytes.toString("hex").slice(32)}`,
        /neither hexadecimal nor base64/,
      ],
      ["password: hunter2", /neither hexadecimal nor base64/],
    ];
    for (const [contents, expected] of cases) {
      const path = keyFile(contents);
      const error = caught(() => MasterKey.fromFile(path));
      expect(error.code).toBe("BAD_KEY_FILE");
      expect(error.message).toContain(path);
      expect(error.message).toMatch(expected);
      expect(error.message).toContain("openssl rand -hex 32");
      if (contents.trim().length > 0) expect(error.message).not.toContain(contents.trim().slice(0, 12));
    }
  });

  it("refuses a missing file, a directory and an oversized file", () => {
    const missing = join(dir, "no-such-key");
    const error = caught(() => MasterKey.fromFile(missing));
    expect(error.code).toBe("BAD_KEY_FILE");
    expect(error.message).toContain(missing);
    expect(error.message).toContain("does not exist");
    expect(codeOf(() => MasterKey.fromFile(dir))).toBe("BAD_KEY_FILE");
    expect(caught(() => MasterKey.fromFile(keyFile("a".repeat(10_000)))).message).toMatch(/too large/);
  });

  it.skipIf(process.platform === "win32")("warns when the key file can be read by group or others", () => {
    const warnings: string[] = [];
    const loose = keyFile(bytes.toString("hex"), 0o644);
    MasterKey.fromFile(loose, { onWarning: (message) => warnings.push(message) });
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain(loose);
    expect(warnings[0]).toContain("0644");
    expect(warnings[0]).toContain("chmod 600");
    expect(leaks(warnings[0], bytes)).toBe(false);

    const tight = keyFile(bytes.toString("hex"), 0o600);
    MasterKey.fromFile(tight, { onWarning: (message) => warnings.push(message) });
    expect(warnings).toHaveLength(1);
  });

  it("reads the key from a named environment variable", () => {
    const env = { TIDEMARK_ENCRYPTION_KEY: `${bytes.toString("hex")}\n` };
    const key = MasterKey.fromEnvironment("TIDEMARK_ENCRYPTION_KEY", env);
    expect(key.fingerprint).toBe(masterKeyFingerprint(bytes));
    expect(key.source).toBe("environment variable TIDEMARK_ENCRYPTION_KEY");

    const unset = caught(() => MasterKey.fromEnvironment("TIDEMARK_ENCRYPTION_KEY", {}));
    expect(unset.code).toBe("BAD_KEY_VARIABLE");
    expect(unset.message).toContain("TIDEMARK_ENCRYPTION_KEY is not set");
    const short = caught(() =>
      MasterKey.fromEnvironment("MY_KEY", { MY_KEY: bytes.toString("hex").slice(0, 40) }),
    );
    expect(short.code).toBe("BAD_KEY_VARIABLE");
    expect(short.message).toContain("MY_KEY");
    expect(short.message).not.toContain(bytes.toString("hex").slice(0, 40));
  });

  it("refuses key bytes that are not 32 bytes", () => {
    expect(codeOf(() => MasterKey.fromBytes(randomBytes(31)))).toBe("BAD_KEY");
  });

  it("never shows its bytes when logged or serialised", () => {
    const key = MasterKey.fromBytes(bytes, "test");
    for (const text of [inspect(key, { showHidden: true, depth: 5 }), JSON.stringify(key), String(key)]) {
      expect(text).toContain(key.fingerprint);
      expect(leaks(text, bytes)).toBe(false);
    }
  });

  it("writes a new key file with mode 0600 and refuses to overwrite one", () => {
    const path = join(dir, "generated.key");
    const key = writeMasterKeyFile(path);
    expect(readFileSync(path, "utf8")).toMatch(/^[0-9a-f]{64}\n$/);
    if (process.platform !== "win32") expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(MasterKey.fromFile(path).fingerprint).toBe(key.fingerprint);
    const error = caught(() => writeMasterKeyFile(path));
    expect(error.code).toBe("BAD_KEY_FILE");
    expect(error.message).toContain("never overwritten");
    expect(MasterKey.fromFile(path).fingerprint).toBe(key.fingerprint);
  });
});

describe("data keys and the key ring", () => {
  it("creates one data key on first use, stored only wrapped with the master fingerprint", () => {
    const master = MasterKey.generate();
    const store = new MemoryDataKeyStore();
    const ring = ringWith(master, store);
    expect(store.list()).toHaveLength(0);
    const key = ring.activeDataKey();
    expect(key.id).toMatch(/^[0-9a-f]{32}$/);
    expect(ring.activeDataKey()).toBe(key);
    const [record] = store.list();
    expect(record.id).toBe(key.id);
    expect(record.masterFingerprint).toBe(master.fingerprint);
    expect(record.wrapped).toHaveLength(60);
    // The wrapped record holds no plaintext copy of the data key.
    expect(record.wrapped.includes(dataKeyMaterial(key))).toBe(false);
    expect(leaks(inspect(key, { showHidden: true }), dataKeyMaterial(key))).toBe(false);
    expect(leaks(JSON.stringify(key), dataKeyMaterial(key))).toBe(false);
  });

  it("reopens with the same master key and uses the newest data key", () => {
    const master = MasterKey.generate();
    const store = new MemoryDataKeyStore();
    let clock = 1000;
    const first = KeyRing.load({ master, store, now: () => clock });
    const older = first.activeDataKey();
    clock = 2000;
    const newer = first.rotate();
    expect(newer.id).not.toBe(older.id);
    expect(first.activeDataKey()).toBe(newer);

    const again = KeyRing.load({ master: MasterKey.fromBytes(masterKeyMaterial(master)), store });
    expect(again.activeDataKey().id).toBe(newer.id);
    expect(dataKeyMaterial(again.activeDataKey()).equals(dataKeyMaterial(newer))).toBe(true);
    expect(store.list()).toHaveLength(2);
  });

  it("data key rotation keeps old blocks readable; new blocks use the new key", () => {
    const ring = ringWith(MasterKey.generate());
    const plain = Buffer.from("a block written before rotation");
    const before = ring.seal(plain);
    const rotated = ring.rotate();
    const after = ring.seal(plain);
    expect(sealedKeyId(after)).toBe(rotated.id);
    expect(after.equals(before)).toBe(false);
    expect(ring.open(before)).toEqual(plain);
    expect(ring.open(after)).toEqual(plain);
  });

  it("finds a data key another ring created on the same store", () => {
    const master = MasterKey.generate();
    const store = new MemoryDataKeyStore();
    const reader = ringWith(master, store);
    const writer = ringWith(master, store);
    const sealed = writer.seal(Buffer.from("from the other ring"));
    expect(reader.open(sealed).toString()).toBe("from the other ring");
  });

  it("a damaged wrapped key, or a record claiming the wrong master, is WRONG_KEY", () => {
    const master = MasterKey.generate();
    const store = new MemoryDataKeyStore();
    const key = ringWith(master, store).activeDataKey();
    const [record] = store.list();

    for (let position = 0; position < record.wrapped.length; position++) {
      const altered = Buffer.from(record.wrapped);
      altered[position] ^= 0x01;
      const error = caught(() => ringWith(master, new MemoryDataKeyStore([{ ...record, wrapped: altered }])));
      expect(error.code).toBe("WRONG_KEY");
    }

    // Wrapped by `other` but recorded under `master`'s fingerprint.
    const other = MasterKey.generate();
    const otherStore = new MemoryDataKeyStore();
    ringWith(other, otherStore).activeDataKey();
    const [foreign] = otherStore.list();
    const error = caught(() =>
      ringWith(master, new MemoryDataKeyStore([{ ...foreign, masterFingerprint: master.fingerprint }])),
    );
    expect(error.code).toBe("WRONG_KEY");
    expect(error.message).toMatch(/^the master key does not match data key [0-9a-f]{32}/);
    expect(error.message).toContain(master.fingerprint);
    expect(leaks(error.message, masterKeyMaterial(master))).toBe(false);
    expect(leaks(error.message, dataKeyMaterial(key))).toBe(false);

    // A record moved to another id fails too (the id is the AAD).
    const moved: WrappedDataKey = { ...record, id: randomBytes(16).toString("hex") };
    expect(codeOf(() => ringWith(master, new MemoryDataKeyStore([moved])))).toBe("WRONG_KEY");
  });

  it("a malformed record is BAD_DATA_KEY", () => {
    const master = MasterKey.generate();
    const store = new MemoryDataKeyStore();
    ringWith(master, store).activeDataKey();
    const [record] = store.list();
    expect(
      codeOf(() =>
        ringWith(master, new MemoryDataKeyStore([{ ...record, wrapped: record.wrapped.subarray(1) }])),
      ),
    ).toBe("BAD_DATA_KEY");
    expect(codeOf(() => ringWith(master, new MemoryDataKeyStore([{ ...record, id: "XYZ" }])))).toBe(
      "BAD_DATA_KEY",
    );
  });

  it("a data key wrapped by a master key not given is NO_KEY naming both fingerprints, and nothing is written", () => {
    const a = MasterKey.generate();
    const b = MasterKey.generate();
    const store = new MemoryDataKeyStore();
    ringWith(a, store).activeDataKey();
    const snapshot = store.list();

    const error = caught(() => ringWith(b, store));
    expect(error.code).toBe("NO_KEY");
    expect(error.message).toContain(a.fingerprint);
    expect(error.message).toContain(b.fingerprint);
    expect(error.message).toContain("previous master key");
    expect(error.message).toContain("right key file");
    expect(leaks(error.message, masterKeyMaterial(a))).toBe(false);
    expect(leaks(error.message, masterKeyMaterial(b))).toBe(false);
    expect(store.list()).toEqual(snapshot);
  });

  it("allowUnknownMasterKeys skips those data keys; their blocks are then NO_KEY", () => {
    const a = MasterKey.generate();
    const b = MasterKey.generate();
    const store = new MemoryDataKeyStore();
    const ringA = ringWith(a, store);
    const oldBlock = ringA.seal(Buffer.from("sealed under a data key wrapped by a"));

    const ringB = KeyRing.load({ master: b, store, allowUnknownMasterKeys: true });
    expect(ringB.skipped).toEqual([ringA.activeDataKey().id]);
    // New blocks get a new data key under b.
    expect(ringB.activeDataKey().id).not.toBe(ringA.activeDataKey().id);
    expect(ringB.open(ringB.seal(Buffer.from("new")))).toEqual(Buffer.from("new"));

    const error = caught(() => ringB.open(oldBlock, "block 1234abcd"));
    expect(error.code).toBe("NO_KEY");
    expect(error.message).toContain("block 1234abcd");
    expect(error.message).toContain(a.fingerprint);
    expect(error.message).toContain(b.fingerprint);
  });

  it("master key rotation: seal with A, reopen with B + previous A (rewrapped), then B alone opens old blocks", () => {
    const a = MasterKey.generate();
    const b = MasterKey.generate();
    const store = new MemoryDataKeyStore();
    let clock = 1;
    const ringA = KeyRing.load({ master: a, store, now: () => clock++ });
    const plain1 = Buffer.from("block sealed with the first data key");
    const sealed1 = ringA.seal(plain1);
    ringA.rotate();
    const plain2 = Buffer.from("block sealed with the second data key");
    const sealed2 = ringA.seal(plain2);
    const before = store.list();
    expect(before.every((record) => record.masterFingerprint === a.fingerprint)).toBe(true);

    const rotating = KeyRing.load({ master: b, previous: [a], store });
    expect([...rotating.rewrapped].sort()).toEqual(before.map((record) => record.id).sort());
    expect(rotating.masterFingerprint).toBe(b.fingerprint);
    const after = store.list();
    expect(after).toHaveLength(2);
    for (const record of after) {
      const old = before.find((candidate) => candidate.id === record.id)!;
      expect(record.masterFingerprint).toBe(b.fingerprint);
      expect(record.createdAt).toBe(old.createdAt);
      expect(record.wrapped.equals(old.wrapped)).toBe(false);
    }
    expect(rotating.activeDataKey().id).toBe(sealedKeyId(sealed2));

    // Only B from now on: the old blocks open, and A alone no longer can.
    const ringB = KeyRing.load({ master: MasterKey.fromBytes(masterKeyMaterial(b)), store });
    expect(ringB.rewrapped).toEqual([]);
    expect(ringB.open(sealed1)).toEqual(plain1);
    expect(ringB.open(sealed2)).toEqual(plain2);
    // Same data key, same plaintext: the same bytes as before rotation, so deduplication holds.
    expect(ringB.seal(plain2).equals(sealed2)).toBe(true);
    expect(codeOf(() => ringWith(a, store))).toBe("NO_KEY");

    // Loading again with the previous key given is harmless (nothing left to rewrap).
    expect(KeyRing.load({ master: b, previous: [a], store }).rewrapped).toEqual([]);
  });

  it("rotation is resumable: a half-rewrapped store loads with the same keys", () => {
    const a = MasterKey.generate();
    const b = MasterKey.generate();
    const store = new MemoryDataKeyStore();
    const ringA = ringWith(a, store);
    const sealed1 = ringA.seal(Buffer.from("one"));
    ringA.rotate();
    const sealed2 = ringA.seal(Buffer.from("two"));

    // A store whose replace fails after the first call, as if the process died mid-rotation.
    let replaces = 0;
    const flaky = {
      list: () => store.list(),
      insert: (key: WrappedDataKey) => store.insert(key),
      replace: (key: WrappedDataKey) => {
        if (replaces++ > 0) throw new Error("crash");
        store.replace(key);
      },
    };
    expect(() => KeyRing.load({ master: b, previous: [a], store: flaky })).toThrow("crash");
    const fingerprints = store.list().map((record) => record.masterFingerprint);
    expect(fingerprints.sort()).toEqual([a.fingerprint, b.fingerprint].sort());

    const resumed = KeyRing.load({ master: b, previous: [a], store });
    expect(resumed.rewrapped).toHaveLength(1);
    const ringB = ringWith(b, store);
    expect(ringB.open(sealed1).toString()).toBe("one");
    expect(ringB.open(sealed2).toString()).toBe("two");
  });
});

describe("sealed blocks", () => {
  const master = MasterKey.generate();
  const ring = ringWith(master);

  it("round trips, including empty and large blocks", () => {
    for (const plain of [Buffer.alloc(0), Buffer.from("x"), randomBytes(100_000), Buffer.alloc(1 << 20, 7)]) {
      const sealed = ring.seal(plain);
      expect(sealed.length).toBe(plain.length + SEALED_OVERHEAD);
      expect(isSealed(sealed)).toBe(true);
      expect(ring.open(sealed).equals(plain)).toBe(true);
    }
  });

  it("has the documented layout", () => {
    const plain = Buffer.from("layout check");
    const sealed = ring.seal(plain);
    expect(sealed.subarray(0, 8)).toEqual(Buffer.from([...Buffer.from("TDMKENC"), 1]));
    expect(sealed.subarray(8, 24).toString("hex")).toBe(ring.activeDataKey().id);
    expect(SEALED_HEADER_SIZE).toBe(36);
    expect(sealed.length).toBe(36 + plain.length + 16);
    // The ciphertext is not the plaintext.
    expect(sealed.includes(plain)).toBe(false);
  });

  it("is deterministic: same plaintext, same bytes; different plaintext, different nonce", () => {
    const plain = randomBytes(4096);
    const first = ring.seal(plain);
    const second = ring.seal(Buffer.from(plain));
    expect(second.equals(first)).toBe(true);

    const nonces = new Set<string>();
    for (let i = 0; i < 200; i++) {
      const sealed = ring.seal(Buffer.from(`block ${i}`));
      nonces.add(sealed.subarray(24, 36).toString("hex"));
    }
    expect(nonces.size).toBe(200);
    const changed = Buffer.from(plain);
    changed[0] ^= 1;
    expect(ring.seal(changed).subarray(24, 36).equals(first.subarray(24, 36))).toBe(false);

    // Another data key (another server) gives other bytes for the same plaintext.
    expect(ringWith(master).seal(plain).equals(first)).toBe(false);
  });

  it("every single flipped bit or byte anywhere fails to open, never returning data", () => {
    const plain = Buffer.from("a small block of documents");
    const sealed = ring.seal(plain);
    const allowed = new Set<EncryptionErrorCode>([
      "DECRYPT_FAILED",
      "NOT_SEALED",
      "UNKNOWN_DATA_KEY",
      "UNSUPPORTED_VERSION",
    ]);
    for (const flip of [0x01, 0x80, 0xff]) {
      for (let position = 0; position < sealed.length; position++) {
        const altered = Buffer.from(sealed);
        altered[position] ^= flip;
        let result: Buffer | undefined;
        let code: EncryptionErrorCode | undefined;
        try {
          result = ring.open(altered);
        } catch (error) {
          if (!(error instanceof EncryptionError)) throw error;
          code = error.code;
        }
        expect(result, `flip ${flip} at ${position} returned data`).toBeUndefined();
        expect(allowed.has(code!), `flip ${flip} at ${position}: ${code}`).toBe(true);
        if (position < 7) expect(code).toBe("NOT_SEALED");
        else if (position === 7) expect(code).toBe("UNSUPPORTED_VERSION");
        else if (position < 24) expect(code).toBe("UNKNOWN_DATA_KEY");
        else expect(code).toBe("DECRYPT_FAILED");
      }
    }
  });

  it("truncated, extended and unsealed bytes are refused", () => {
    const sealed = ring.seal(Buffer.from("truncate me"));
    for (let length = 0; length < sealed.length; length++) {
      expect(["NOT_SEALED", "DECRYPT_FAILED"]).toContain(codeOf(() => ring.open(sealed.subarray(0, length))));
    }
    expect(codeOf(() => ring.open(Buffer.concat([sealed, Buffer.from([0])])))).toBe("DECRYPT_FAILED");
    expect(isSealed(Buffer.from("TDMKBLK\x01 an unencrypted block", "latin1"))).toBe(false);
    const notSealed = caught(() => ring.open(Buffer.from("TDMKBLK\x01 an unencrypted block", "latin1")));
    expect(notSealed.code).toBe("NOT_SEALED");
  });

  it("refuses a block that authenticates but whose nonce is not the synthetic one", async () => {
    // Build a block with a random nonce, as a non-Tidemark writer holding the data key could.
    const { createCipheriv } = await import("node:crypto");
    const key = ring.activeDataKey();
    const plain = Buffer.from("random nonce");
    const nonce = randomBytes(12);
    const header = ring.seal(plain).subarray(0, 24);
    const cipher = createCipheriv("aes-256-gcm", dataKeyMaterial(key), nonce);
    cipher.setAAD(header);
    const body = Buffer.concat([cipher.update(plain), cipher.final()]);
    const forged = Buffer.concat([header, nonce, body, cipher.getAuthTag()]);
    const error = caught(() => ring.open(forged));
    expect(error.code).toBe("DECRYPT_FAILED");
    expect(error.message).toMatch(/nonce/);
  });

  it("an unknown data key id is UNKNOWN_DATA_KEY naming the id", () => {
    const otherRing = ringWith(master);
    const sealed = otherRing.seal(Buffer.from("from another store"));
    const error = caught(() => ring.open(sealed, "block 9f86d081"));
    expect(error.code).toBe("UNKNOWN_DATA_KEY");
    expect(error.message).toContain(sealedKeyId(sealed));
    expect(error.message).toContain("block 9f86d081");
    expect(error.message).toMatch(/another Tidemark server|restore it from a backup/);
  });

  it("a tampered block's error says it was altered or the key is wrong, with no key material", () => {
    const sealed = ring.seal(Buffer.from("tamper"));
    sealed[sealed.length - 1] ^= 1;
    const error = caught(() => ring.open(sealed, "block abc"));
    expect(error.code).toBe("DECRYPT_FAILED");
    expect(error.message).toContain("block abc");
    expect(error.message).toContain("the block was altered or the key is wrong");
    expect(leaks(error.message, dataKeyMaterial(ring.activeDataKey()))).toBe(false);
    expect(leaks(error.message, masterKeyMaterial(master))).toBe(false);
  });
});
