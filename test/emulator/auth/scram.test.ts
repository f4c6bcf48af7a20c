import { createHash, createHmac, randomBytes } from "node:crypto";

import { describe, expect, it, vi } from "vitest";

import {
  createScramCredential,
  deriveScramCredential,
  saltPassword,
  SCRAM_MECHANISMS,
  ScramAuthenticationError,
  ScramConversation,
  scramCredentialFromDocument,
  scramCredentialToDocument,
  scramPasswordInput,
  type ScramCredential,
  type ScramMechanism,
} from "../../../src/emulator/auth/scram.js";

/*
 * The client below is written from the RFC 5802 formulas with its own Hi()
 * loop, so the server is not checked against itself.
 */

const DIGEST: Record<ScramMechanism, "sha1" | "sha256"> = {
  "SCRAM-SHA-1": "sha1",
  "SCRAM-SHA-256": "sha256",
};

function hmac(mechanism: ScramMechanism, key: Buffer, data: Buffer | string): Buffer {
  return createHmac(DIGEST[mechanism], key).update(data).digest();
}

/** Hi(str, salt, i) = U1 XOR U2 XOR ... XOR Ui, U1 = HMAC(str, salt + INT(1)). */
function hi(mechanism: ScramMechanism, password: string, salt: Buffer, iterations: number): Buffer {
  const key = Buffer.from(password, "utf8");
  let u = hmac(mechanism, key, Buffer.concat([salt, Buffer.from([0, 0, 0, 1])]));
  const result = Buffer.from(u);
  for (let i = 1; i < iterations; i++) {
    u = hmac(mechanism, key, u);
    for (let j = 0; j < result.length; j++) result[j] ^= u[j];
  }
  return result;
}

function mongoPasswordInput(mechanism: ScramMechanism, username: string, password: string): string {
  // SASLprep is exercised separately; the passwords used with this client are plain ASCII.
  return mechanism === "SCRAM-SHA-1"
    ? createHash("md5").update(`${username}:mongo:${password}`).digest("hex")
    : password;
}

function parseAttributes(message: string): Map<string, string> {
  return new Map(message.split(",").map((part) => [part.slice(0, 1), part.slice(2)]));
}

interface TestClient {
  clientFirst(): Buffer;
  clientFinal(serverFirst: Buffer): Buffer;
  expectedServerFinal(): string;
}

function scramClient(
  mechanism: ScramMechanism,
  username: string,
  passwordInput: string,
  clientNonce = randomBytes(24).toString("base64"),
): TestClient {
  const bare = `n=${username.replaceAll("=", "=3D").replaceAll(",", "=2C")},r=${clientNonce}`;
  let serverSignature = "";
  return {
    clientFirst: () => Buffer.from(`n,,${bare}`),
    clientFinal(serverFirstPayload) {
      const serverFirst = serverFirstPayload.toString("utf8");
      const attributes = parseAttributes(serverFirst);
      const nonce = attributes.get("r") ?? "";
      expect(nonce.startsWith(clientNonce)).toBe(true);
      const salt = Buffer.from(attributes.get("s") ?? "", "base64");
      const iterations = Number(attributes.get("i"));
      expect(iterations).toBeGreaterThanOrEqual(4096);

      const saltedPassword = hi(mechanism, passwordInput, salt, iterations);
      const clientKey = hmac(mechanism, saltedPassword, "Client Key");
      const storedKey = createHash(DIGEST[mechanism]).update(clientKey).digest();
      const withoutProof = `c=biws,r=${nonce}`;
      const authMessage = `${bare},${serverFirst},${withoutProof}`;
      const clientSignature = hmac(mechanism, storedKey, authMessage);
      const proof = Buffer.from(clientKey.map((byte, i) => byte ^ clientSignature[i]));
      const serverKey = hmac(mechanism, saltedPassword, "Server Key");
      serverSignature = hmac(mechanism, serverKey, authMessage).toString("base64");
      return Buffer.from(`${withoutProof},p=${proof.toString("base64")}`);
    },
    expectedServerFinal: () => `v=${serverSignature}`,
  };
}

/** Credentials are expensive (PBKDF2), so build each one once. */
const credentialCache = new Map<string, ScramCredential>();
function credentialFor(mechanism: ScramMechanism, username: string, password: string): ScramCredential {
  const key = `${mechanism}\0${username}\0${password}`;
  let credential = credentialCache.get(key);
  if (credential === undefined) {
    credential = createScramCredential(mechanism, username, password);
    credentialCache.set(key, credential);
  }
  return credential;
}

function conversationFor(
  mechanism: ScramMechanism,
  users: Record<string, string>,
  skipEmptyExchange = true,
): ScramConversation {
  return new ScramConversation(
    mechanism,
    (username) => (username in users ? credentialFor(mechanism, username, users[username]) : undefined),
    { skipEmptyExchange },
  );
}

function expectAuthFailure(action: () => unknown, reason?: RegExp): ScramAuthenticationError {
  let caught: unknown;
  try {
    action();
  } catch (error) {
    caught = error;
  }
  expect(caught).toBeInstanceOf(ScramAuthenticationError);
  const error = caught as ScramAuthenticationError;
  expect(error.message).toBe("Authentication failed.");
  expect(error.code).toBe(18);
  expect(error.codeName).toBe("AuthenticationFailed");
  if (reason) expect(error.reason).toMatch(reason);
  return error;
}

describe.each(SCRAM_MECHANISMS)("%s conversation", (mechanism) => {
  const users = { alice: "correct horse battery staple" };
  const aliceInput = () => mongoPasswordInput(mechanism, "alice", users.alice);

  it("authenticates a correct password in two round trips with skipEmptyExchange", () => {
    const conversation = conversationFor(mechanism, users);
    const client = scramClient(mechanism, "alice", aliceInput());

    const serverFirst = conversation.start(client.clientFirst());
    expect(conversation.username).toBe("alice");
    expect(conversation.done).toBe(false);

    const final = conversation.continue(client.clientFinal(serverFirst));
    expect(final.done).toBe(true);
    expect(final.payload.toString()).toBe(client.expectedServerFinal());
    expect(conversation.done).toBe(true);
  });

  it("needs the trailing empty exchange when the client did not ask to skip it", () => {
    const conversation = conversationFor(mechanism, users, false);
    const client = scramClient(mechanism, "alice", aliceInput());

    const final = conversation.continue(client.clientFinal(conversation.start(client.clientFirst())));
    expect(final.done).toBe(false);
    expect(final.payload.toString()).toBe(client.expectedServerFinal());
    expect(conversation.done).toBe(false);

    const last = conversation.continue(Buffer.alloc(0));
    expect(last).toEqual({ payload: Buffer.alloc(0), done: true });
    expect(conversation.done).toBe(true);

    expectAuthFailure(() => conversation.continue(Buffer.alloc(0)), /step done/);
  });

  it("rejects any further message after a skipped empty exchange", () => {
    const conversation = conversationFor(mechanism, users);
    const client = scramClient(mechanism, "alice", aliceInput());
    conversation.continue(client.clientFinal(conversation.start(client.clientFirst())));
    expectAuthFailure(() => conversation.continue(Buffer.alloc(0)));
  });

  it("sends server-first with the client nonce prefix and mongod's salt length and iteration count", () => {
    const conversation = conversationFor(mechanism, users);
    const serverFirst = conversation.start(Buffer.from("n,,n=alice,r=clientNonce123")).toString();
    const attributes = parseAttributes(serverFirst);
    expect([...attributes.keys()]).toEqual(["r", "s", "i"]);
    expect(attributes.get("r")).toMatch(/^clientNonce123[A-Za-z0-9+/]{32}$/);
    expect(Buffer.from(attributes.get("s") ?? "", "base64")).toHaveLength(
      mechanism === "SCRAM-SHA-1" ? 16 : 28,
    );
    expect(attributes.get("i")).toBe(mechanism === "SCRAM-SHA-1" ? "10000" : "15000");

    const again = conversationFor(mechanism, users).start(Buffer.from("n,,n=alice,r=clientNonce123"));
    expect(parseAttributes(again.toString()).get("r")).not.toBe(attributes.get("r"));
  });

  it("rejects a wrong password with an opaque error and stays failed", () => {
    const conversation = conversationFor(mechanism, users);
    const client = scramClient(mechanism, "alice", mongoPasswordInput(mechanism, "alice", "wrong"));
    const serverFirst = conversation.start(client.clientFirst());
    expectAuthFailure(() => conversation.continue(client.clientFinal(serverFirst)), /storedKey mismatch/);
    expect(conversation.done).toBe(false);
    expectAuthFailure(() => conversation.continue(Buffer.alloc(0)), /already failed/);
  });

  it("rejects an unknown user at start", () => {
    const conversation = conversationFor(mechanism, users);
    const client = scramClient(mechanism, "mallory", "whatever");
    expectAuthFailure(() => conversation.start(client.clientFirst()), /Could not find user "mallory"/);
    expect(conversation.username).toBe("mallory");
  });

  it("rejects a user who has no credential for this mechanism", () => {
    const other: ScramMechanism = mechanism === "SCRAM-SHA-1" ? "SCRAM-SHA-256" : "SCRAM-SHA-1";
    const credential = credentialFor(other, "alice", users.alice);
    const conversation = new ScramConversation(mechanism, () => credential);
    expectAuthFailure(() => conversation.start(Buffer.from("n,,n=alice,r=abcdef")), /Unable to use/);
  });

  it("rejects a client-final whose nonce was tampered with", () => {
    const conversation = conversationFor(mechanism, users);
    const client = scramClient(mechanism, "alice", aliceInput());
    const serverFirst = conversation.start(client.clientFirst());
    const tamperedServerFirst = serverFirst.toString().replace(/^r=([^,]*)/, "r=$1X");
    // The client signs the nonce it saw, so the proof would be consistent; only the nonce check can catch it.
    const clientFinal = client.clientFinal(Buffer.from(tamperedServerFirst));
    expectAuthFailure(() => conversation.continue(clientFinal), /Nonce mismatch/);
  });

  it("rejects a tampered proof", () => {
    const conversation = conversationFor(mechanism, users);
    const client = scramClient(mechanism, "alice", aliceInput());
    const clientFinal = client.clientFinal(conversation.start(client.clientFirst())).toString();
    const proof = Buffer.from(clientFinal.split(",p=")[1], "base64");
    proof[0] ^= 1;
    const tampered = `${clientFinal.split(",p=")[0]},p=${proof.toString("base64")}`;
    expectAuthFailure(() => conversation.continue(Buffer.from(tampered)), /storedKey mismatch/);
  });

  it("rejects a channel binding that does not echo the gs2 header", () => {
    const conversation = conversationFor(mechanism, users);
    const client = scramClient(mechanism, "alice", aliceInput());
    const clientFinal = client.clientFinal(conversation.start(client.clientFirst())).toString();
    const tampered = clientFinal.replace("c=biws", "c=eSws");
    expectAuthFailure(() => conversation.continue(Buffer.from(tampered)), /Channel binding/);
  });

  it("decodes =2C and =3D in user names before the lookup", () => {
    const lookup = vi.fn(() => credentialFor(mechanism, "a,b=c", "pw-for-odd-name"));
    const conversation = new ScramConversation(mechanism, lookup, { skipEmptyExchange: true });
    const client = scramClient(mechanism, "a,b=c", mongoPasswordInput(mechanism, "a,b=c", "pw-for-odd-name"));
    const serverFirst = conversation.start(client.clientFirst());
    expect(lookup).toHaveBeenCalledWith("a,b=c");
    expect(conversation.username).toBe("a,b=c");
    expect(conversation.continue(client.clientFinal(serverFirst)).done).toBe(true);
  });

  it("accepts an authzid equal to the user and rejects a different one", () => {
    const ok = conversationFor(mechanism, users).start(Buffer.from("n,a=alice,n=alice,r=abcdef"));
    expect(ok.toString()).toMatch(/^r=abcdef/);
    expectAuthFailure(
      () => conversationFor(mechanism, users).start(Buffer.from("n,a=bob,n=alice,r=abcdef")),
      /does not match authzid/,
    );
  });

  it("propagates lookup faults unchanged instead of disguising them as bad credentials", () => {
    const conversation = new ScramConversation(mechanism, () => {
      throw new TypeError("user store offline");
    });
    expect(() => conversation.start(Buffer.from("n,,n=alice,r=abcdef"))).toThrow(TypeError);
  });
});

describe("malformed SCRAM messages", () => {
  const mechanism: ScramMechanism = "SCRAM-SHA-256";
  const users = { alice: "secret" };

  it.each([
    ["an empty payload", Buffer.alloc(0), /Empty client-first/],
    ["no gs2 header", Buffer.from("n=alice,r=abcdef"), /gs2 header/],
    ["channel binding", Buffer.from("p=tls-server-end-point,,n=alice,r=abcdef"), /channel binding/],
    ["an unknown gs2 flag", Buffer.from("x,,n=alice,r=abcdef"), /prefix: x/],
    ["a bad authzid", Buffer.from("n,alice,n=alice,r=abcdef"), /authzid/],
    ["a mandatory extension", Buffer.from("n,,m=ext,n=alice,r=abcdef"), /mandatory extensions/],
    ["a missing user name", Buffer.from("n,,r=abcdef"), /user name/],
    ["an empty user name", Buffer.from("n,,n=,r=abcdef"), /user name/],
    ["a missing nonce", Buffer.from("n,,n=alice"), /client nonce/],
    ["a too short nonce", Buffer.from("n,,n=alice,r=ab"), /client nonce/],
    ["a nonce with control characters", Buffer.from("n,,n=alice,r=abc\tdef"), /client nonce/],
    ["invalid UTF-8", Buffer.from([0x6e, 0x2c, 0x2c, 0xff, 0xfe]), /UTF-8/],
  ])("rejects client-first with %s", (_label, payload, reason) => {
    expectAuthFailure(() => conversationFor(mechanism, users).start(payload), reason);
  });

  function startedConversation(): { conversation: ScramConversation; nonce: string } {
    const conversation = conversationFor(mechanism, users);
    const serverFirst = conversation.start(Buffer.from("n,,n=alice,r=abcdef")).toString();
    return { conversation, nonce: parseAttributes(serverFirst).get("r") ?? "" };
  }

  it.each([
    ["an empty payload", () => "", /Empty client-final/],
    ["no proof", (nonce: string) => `c=biws,r=${nonce}`, /end with the proof/],
    ["a single field", () => "c=biws", /Malformed client-final/],
    ["a proof that is not base64", (nonce: string) => `c=biws,r=${nonce},p=not*base64`, /base64/],
    ["a proof of the wrong length", (nonce: string) => `c=biws,r=${nonce},p=AAAA`, /expected/],
    ["a missing nonce", () => "c=biws,p=AAAA", /Nonce mismatch/],
  ])("rejects client-final with %s", (_label, build, reason) => {
    const { conversation, nonce } = startedConversation();
    expectAuthFailure(() => conversation.continue(Buffer.from(build(nonce))), reason);
  });

  it("rejects continue before start and start twice", () => {
    expectAuthFailure(() => conversationFor(mechanism, users).continue(Buffer.from("c=biws")), /step/);
    const { conversation } = startedConversation();
    expectAuthFailure(() => conversation.start(Buffer.from("n,,n=alice,r=abcdef")), /step/);
  });
});

describe("published test vectors", () => {
  function replay(
    credential: ScramCredential,
    serverNonce: string,
    exchange: { clientFirst: string; serverFirst: string; clientFinal: string; serverFinal: string },
  ): void {
    const conversation = new ScramConversation(credential.mechanism, () => credential, {
      serverNonce: () => serverNonce,
      skipEmptyExchange: true,
    });
    expect(conversation.start(Buffer.from(exchange.clientFirst)).toString()).toBe(exchange.serverFirst);
    const final = conversation.continue(Buffer.from(exchange.clientFinal));
    expect(final.payload.toString()).toBe(exchange.serverFinal);
    expect(final.done).toBe(true);
  }

  it("RFC 5802 SCRAM-SHA-1 (plain password, no MongoDB pre-hash)", () => {
    const credential = deriveScramCredential(
      "SCRAM-SHA-1",
      "pencil",
      Buffer.from("QSXCR+Q6sek8bf92", "base64"),
      4096,
    );
    replay(credential, "3rfcNHYJY1ZVvWVs7j", {
      clientFirst: "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL",
      serverFirst: "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096",
      clientFinal: "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
      serverFinal: "v=rmF9pqV8S7suAoZWja4dJRkFsKQ=",
    });
  });

  it("MongoDB auth spec SCRAM-SHA-1 (MD5 pre-hash of user:mongo:pencil)", () => {
    const credential = createScramCredential("SCRAM-SHA-1", "user", "pencil", {
      salt: Buffer.from("rQ9ZY3MntBeuP3E1TDVC4w==", "base64"),
      iterationCount: 10000,
    });
    replay(credential, "Ho+Vgk7qvUOKUwuWLIWg4l/9SraGMHEE", {
      clientFirst: "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL",
      serverFirst:
        "r=fyko+d2lbbFgONRv9qkxdawLHo+Vgk7qvUOKUwuWLIWg4l/9SraGMHEE,s=rQ9ZY3MntBeuP3E1TDVC4w==,i=10000",
      clientFinal:
        "c=biws,r=fyko+d2lbbFgONRv9qkxdawLHo+Vgk7qvUOKUwuWLIWg4l/9SraGMHEE,p=MC2T8BvbmWRckDw8oWl5IVghwCY=",
      serverFinal: "v=UMWeI25JD1yNYZRMpZ4VHvhZ9e0=",
    });
  });

  it("RFC 7677 SCRAM-SHA-256 (also the MongoDB auth spec example)", () => {
    const credential = createScramCredential("SCRAM-SHA-256", "user", "pencil", {
      salt: Buffer.from("W22ZaJ0SNY7soEsUEjb6gQ==", "base64"),
      iterationCount: 4096,
    });
    replay(credential, "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0", {
      clientFirst: "n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
      serverFirst: "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
      clientFinal:
        "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
      serverFinal: "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
    });
  });
});

describe("SCRAM primitives", () => {
  it("pre-hashes SCRAM-SHA-1 passwords as hex(MD5(user:mongo:password))", () => {
    const input = scramPasswordInput("SCRAM-SHA-1", "user", "pencil");
    expect(input).toMatch(/^[0-9a-f]{32}$/);
    expect(input).toBe(createHash("md5").update("user:mongo:pencil").digest("hex"));
    // The user name is part of the digest, so the same password differs per user.
    expect(scramPasswordInput("SCRAM-SHA-1", "other", "pencil")).not.toBe(input);
  });

  it.each([
    ["I\u00adX", "IX"], // soft hyphen maps to nothing (RFC 4013 example)
    ["\u2168", "IX"], // NFKC folds ROMAN NUMERAL NINE
    ["\u00aa", "a"],
    ["pass\u00a0word", "pass word"], // non-ASCII space maps to SPACE
    ["user", "user"],
  ])("SASLprep-s SCRAM-SHA-256 passwords: %j -> %j", (password, prepared) => {
    expect(scramPasswordInput("SCRAM-SHA-256", "anyone", password)).toBe(prepared);
  });

  it("refuses SCRAM-SHA-256 passwords that SASLprep prohibits", () => {
    expect(() => createScramCredential("SCRAM-SHA-256", "u", "bell\u0007")).toThrow();
  });

  it("authenticates a client that SASLprep-ed its password differently spelled", () => {
    const credential = createScramCredential("SCRAM-SHA-256", "roman", "\u2168", { iterationCount: 4096 });
    const conversation = new ScramConversation("SCRAM-SHA-256", () => credential, {
      skipEmptyExchange: true,
    });
    const client = scramClient("SCRAM-SHA-256", "roman", "IX");
    expect(conversation.continue(client.clientFinal(conversation.start(client.clientFirst()))).done).toBe(
      true,
    );
  });

  it.each(SCRAM_MECHANISMS)("%s Hi() matches the RFC definition", (mechanism) => {
    const salt = Buffer.from("0123456789abcdef");
    expect(saltPassword(mechanism, "pencil", salt, 4096)).toEqual(hi(mechanism, "pencil", salt, 4096));
  });

  it.each(SCRAM_MECHANISMS)("%s credentials keep only derived keys, with fresh salts", (mechanism) => {
    const first = credentialFor(mechanism, "alice", "correct horse battery staple");
    expect(Object.keys(first).sort()).toEqual([
      "iterationCount",
      "mechanism",
      "salt",
      "serverKey",
      "storedKey",
    ]);
    expect(JSON.stringify(first)).not.toContain("correct horse");
    const digestLength = mechanism === "SCRAM-SHA-1" ? 20 : 32;
    expect(first.storedKey).toHaveLength(digestLength);
    expect(first.serverKey).toHaveLength(digestLength);
    const second = createScramCredential(mechanism, "alice", "correct horse battery staple", {
      iterationCount: 4096,
    });
    expect(second.salt.equals(first.salt)).toBe(false);
  });

  it("rejects iteration counts drivers would refuse, and empty passwords", () => {
    expect(() => createScramCredential("SCRAM-SHA-256", "u", "p", { iterationCount: 4095 })).toThrow(
      RangeError,
    );
    expect(() => createScramCredential("SCRAM-SHA-1", "u", "")).toThrow(/non-empty password/);
  });

  it("round-trips the admin.system.users credential document", () => {
    const credential = credentialFor("SCRAM-SHA-256", "alice", "correct horse battery staple");
    const document = scramCredentialToDocument(credential);
    expect(document.iterationCount).toBe(15000);
    expect(typeof document.salt).toBe("string");
    expect(scramCredentialFromDocument("SCRAM-SHA-256", document)).toEqual(credential);
  });
});
