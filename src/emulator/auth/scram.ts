/**
 * Server side of SCRAM-SHA-1 and SCRAM-SHA-256 (RFC 5802, RFC 7677) with the
 * MongoDB-specific rules that the official drivers rely on:
 *
 * - SCRAM-SHA-1 salts hex(MD5("<user>:mongo:<password>")) instead of the
 *   password, a leftover from MONGODB-CR that the server never dropped.
 * - SCRAM-SHA-256 salts SASLprep(password); user names are never SASLprepped.
 * - Default iteration counts and salt lengths follow mongod (10000/16 bytes for
 *   SHA-1, 15000/28 bytes for SHA-256: salt is the digest length minus 4).
 * - With `skipEmptyExchange` the server-final message already carries
 *   `done: true`; without it the client sends one more empty message.
 *
 * Every failure surfaces as {@link ScramAuthenticationError}, because mongod
 * answers any failed SASL step with the same opaque "Authentication failed."
 * (code 18) and only logs the detailed reason.
 */
import { createHash, createHmac, pbkdf2Sync, randomBytes, timingSafeEqual } from "node:crypto";

import { saslprep } from "@mongodb-js/saslprep";

export type ScramMechanism = "SCRAM-SHA-1" | "SCRAM-SHA-256";

export const SCRAM_MECHANISMS: readonly ScramMechanism[] = ["SCRAM-SHA-1", "SCRAM-SHA-256"];

/** What the server stores per user and mechanism; the password itself is never kept. */
export interface ScramCredential {
  mechanism: ScramMechanism;
  iterationCount: number;
  salt: Buffer;
  storedKey: Buffer;
  serverKey: Buffer;
}

export interface ScramCredentialOptions {
  /** Defaults to fresh random bytes of the length mongod uses. */
  salt?: Buffer;
  /** Defaults to mongod's scramIterationCount / scramSHA256IterationCount. */
  iterationCount?: number;
}

export interface ScramConversationOptions {
  /** The saslStart `options.skipEmptyExchange` flag sent by the client. */
  skipEmptyExchange?: boolean;
  /** Only for tests that replay published vectors; real servers must use fresh randomness. */
  serverNonce?: () => string;
}

export type ScramCredentialLookup = (username: string) => ScramCredential | undefined;

interface MechanismParameters {
  digest: "sha1" | "sha256";
  digestLength: number;
  defaultIterationCount: number;
  saltLength: number;
}

const MECHANISM_PARAMETERS: Record<ScramMechanism, MechanismParameters> = {
  "SCRAM-SHA-1": { digest: "sha1", digestLength: 20, defaultIterationCount: 10_000, saltLength: 16 },
  "SCRAM-SHA-256": { digest: "sha256", digestLength: 32, defaultIterationCount: 15_000, saltLength: 28 },
};

/** Drivers refuse anything lower (downgrade protection), so never hand it out. */
export const MIN_SCRAM_ITERATION_COUNT = 4096;

/** mongod appends 3 random 64-bit words, base64-encoded, to the client nonce. */
const SERVER_NONCE_BYTES = 24;

export class ScramAuthenticationError extends Error {
  readonly code = 18;
  readonly codeName = "AuthenticationFailed";

  /**
   * @param reason why the step failed; for the server log only, never for the
   *   client, so that callers cannot probe which user names exist.
   */
  constructor(readonly reason: string) {
    super("Authentication failed.");
    this.name = "ScramAuthenticationError";
  }
}

export function isScramMechanism(value: unknown): value is ScramMechanism {
  return value === "SCRAM-SHA-1" || value === "SCRAM-SHA-256";
}

/**
 * The string fed into Hi(): MongoDB's MD5 digest for SHA-1 and the SASLprepped
 * password for SHA-256.
 */
export function scramPasswordInput(mechanism: ScramMechanism, username: string, password: string): string {
  if (mechanism === "SCRAM-SHA-1") {
    return createHash("md5").update(`${username}:mongo:${password}`, "utf8").digest("hex");
  }
  return saslprep(password);
}

/** Hi() from RFC 5802, which is PBKDF2 with HMAC and one output block. */
export function saltPassword(
  mechanism: ScramMechanism,
  passwordInput: string,
  salt: Buffer,
  iterationCount: number,
): Buffer {
  const { digest, digestLength } = MECHANISM_PARAMETERS[mechanism];
  return pbkdf2Sync(Buffer.from(passwordInput, "utf8"), salt, iterationCount, digestLength, digest);
}

/**
 * Derives the stored credential from an already normalised password, with no
 * MongoDB pre-processing; RFC test vectors are checked through this.
 */
export function deriveScramCredential(
  mechanism: ScramMechanism,
  passwordInput: string,
  salt: Buffer,
  iterationCount: number,
): ScramCredential {
  if (!Number.isInteger(iterationCount) || iterationCount < MIN_SCRAM_ITERATION_COUNT) {
    throw new RangeError(
      `${mechanism} iteration count must be an integer >= ${MIN_SCRAM_ITERATION_COUNT}, got ${iterationCount}`,
    );
  }
  if (salt.length === 0) {
    throw new RangeError(`${mechanism} salt must not be empty`);
  }
  const saltedPassword = saltPassword(mechanism, passwordInput, salt, iterationCount);
  const clientKey = hmac(mechanism, saltedPassword, "Client Key");
  return {
    mechanism,
    iterationCount,
    salt: Buffer.from(salt),
    storedKey: hash(mechanism, clientKey),
    serverKey: hmac(mechanism, saltedPassword, "Server Key"),
  };
}

/** What createUser does for one mechanism. */
export function createScramCredential(
  mechanism: ScramMechanism,
  username: string,
  password: string,
  options: ScramCredentialOptions = {},
): ScramCredential {
  if (password.length === 0) {
    // mongod rejects empty passwords in createUser; drivers refuse to send them.
    throw new RangeError(`${mechanism} credential for user "${username}" needs a non-empty password`);
  }
  const parameters = MECHANISM_PARAMETERS[mechanism];
  const salt = options.salt ?? randomBytes(parameters.saltLength);
  const iterationCount = options.iterationCount ?? parameters.defaultIterationCount;
  return deriveScramCredential(
    mechanism,
    scramPasswordInput(mechanism, username, password),
    salt,
    iterationCount,
  );
}

/** Shape of one entry under `credentials` in admin.system.users. */
export interface ScramCredentialDocument {
  iterationCount: number;
  salt: string;
  storedKey: string;
  serverKey: string;
}

export function scramCredentialToDocument(credential: ScramCredential): ScramCredentialDocument {
  return {
    iterationCount: credential.iterationCount,
    salt: credential.salt.toString("base64"),
    storedKey: credential.storedKey.toString("base64"),
    serverKey: credential.serverKey.toString("base64"),
  };
}

export function scramCredentialFromDocument(
  mechanism: ScramMechanism,
  document: ScramCredentialDocument,
): ScramCredential {
  return {
    mechanism,
    iterationCount: document.iterationCount,
    salt: Buffer.from(document.salt, "base64"),
    storedKey: Buffer.from(document.storedKey, "base64"),
    serverKey: Buffer.from(document.serverKey, "base64"),
  };
}

type ConversationState =
  | { step: "awaitingClientFirst" }
  | {
      step: "awaitingClientFinal";
      credential: ScramCredential;
      gs2Header: string;
      nonce: string;
      authPrefix: string;
    }
  | { step: "awaitingEmptyMessage" }
  | { step: "done" }
  | { step: "failed" };

export interface ScramContinueResult {
  payload: Buffer;
  done: boolean;
}

/** One SASL conversation; create a new one per saslStart. */
export class ScramConversation {
  private state: ConversationState = { step: "awaitingClientFirst" };
  private authenticatedAs: string | undefined;
  private readonly skipEmptyExchange: boolean;
  private readonly serverNonce: () => string;

  constructor(
    readonly mechanism: ScramMechanism,
    private readonly lookup: ScramCredentialLookup,
    options: ScramConversationOptions = {},
  ) {
    this.skipEmptyExchange = options.skipEmptyExchange ?? false;
    this.serverNonce = options.serverNonce ?? (() => randomBytes(SERVER_NONCE_BYTES).toString("base64"));
  }

  /** The decoded user name from client-first; set once start() parsed it. */
  get username(): string | undefined {
    return this.authenticatedAs;
  }

  /** True once the client proved the password and the exchange is complete. */
  get done(): boolean {
    return this.state.step === "done";
  }

  /** Consumes client-first, returns server-first. */
  start(payload: Buffer): Buffer {
    return this.guard(() => {
      if (this.state.step !== "awaitingClientFirst") {
        throw new ScramAuthenticationError(`start() called in step ${this.state.step}`);
      }
      const clientFirst = parseClientFirst(decodeMessage(payload, "client-first"));
      this.authenticatedAs = clientFirst.username;

      const credential = this.lookup(clientFirst.username);
      if (credential === undefined) {
        throw new ScramAuthenticationError(`Could not find user "${clientFirst.username}"`);
      }
      if (credential.mechanism !== this.mechanism) {
        throw new ScramAuthenticationError(
          `Unable to use ${this.mechanism} based authentication for user "${clientFirst.username}" ` +
            `without any ${this.mechanism} credentials registered`,
        );
      }

      const serverNonce = this.serverNonce();
      assertNonceSyntax(serverNonce, "server nonce");
      const nonce = clientFirst.clientNonce + serverNonce;
      const serverFirst = `r=${nonce},s=${credential.salt.toString("base64")},i=${credential.iterationCount}`;
      this.state = {
        step: "awaitingClientFinal",
        credential,
        gs2Header: clientFirst.gs2Header,
        nonce,
        authPrefix: `${clientFirst.bare},${serverFirst}`,
      };
      return Buffer.from(serverFirst, "utf8");
    });
  }

  /** Consumes client-final (or the trailing empty message), returns the next server message. */
  continue(payload: Buffer): ScramContinueResult {
    return this.guard(() => {
      const state = this.state;
      switch (state.step) {
        case "awaitingClientFinal":
          return this.verifyClientFinal(state, decodeMessage(payload, "client-final"));
        case "awaitingEmptyMessage":
          // Like mongod, the content of this last message is not inspected:
          // authentication was already decided by the proof.
          this.state = { step: "done" };
          return { payload: Buffer.alloc(0), done: true };
        default:
          throw new ScramAuthenticationError(`continue() called in step ${state.step}`);
      }
    });
  }

  private verifyClientFinal(
    state: Extract<ConversationState, { step: "awaitingClientFinal" }>,
    message: string,
  ): ScramContinueResult {
    const proofSeparator = message.lastIndexOf(",");
    if (proofSeparator < 0) {
      throw new ScramAuthenticationError(`Malformed client-final message: ${message}`);
    }
    const withoutProof = message.slice(0, proofSeparator);
    const proofField = message.slice(proofSeparator + 1);
    if (!proofField.startsWith("p=")) {
      throw new ScramAuthenticationError(`client-final message must end with the proof, got ${proofField}`);
    }
    const [channelBinding, nonceField] = withoutProof.split(",");
    if (channelBinding !== `c=${Buffer.from(state.gs2Header, "utf8").toString("base64")}`) {
      throw new ScramAuthenticationError(`Channel binding ${channelBinding} does not echo the gs2 header`);
    }
    if (nonceField !== `r=${state.nonce}`) {
      throw new ScramAuthenticationError(`Nonce mismatch: expected r=${state.nonce}, got ${nonceField}`);
    }

    const { credential } = state;
    const proof = decodeBase64(proofField.slice(2), "client proof");
    const authMessage = `${state.authPrefix},${withoutProof}`;
    const clientSignature = hmac(this.mechanism, credential.storedKey, authMessage);
    if (proof.length !== clientSignature.length) {
      throw new ScramAuthenticationError(
        `Client proof has ${proof.length} bytes, expected ${clientSignature.length}`,
      );
    }
    const clientKey = xor(proof, clientSignature);
    if (!timingSafeEqual(hash(this.mechanism, clientKey), credential.storedKey)) {
      throw new ScramAuthenticationError(`SCRAM authentication failed, storedKey mismatch`);
    }

    const serverSignature = hmac(this.mechanism, credential.serverKey, authMessage).toString("base64");
    this.state = this.skipEmptyExchange ? { step: "done" } : { step: "awaitingEmptyMessage" };
    return { payload: Buffer.from(`v=${serverSignature}`, "utf8"), done: this.skipEmptyExchange };
  }

  /** A conversation that failed once stays failed, like mongod discarding the session. */
  private guard<T>(step: () => T): T {
    if (this.state.step === "failed") {
      throw new ScramAuthenticationError("Conversation already failed");
    }
    try {
      return step();
    } catch (error) {
      // Anything else (e.g. a throwing lookup) is a server fault, not a bad
      // client, so it propagates unchanged for the command layer to report.
      this.state = { step: "failed" };
      throw error;
    }
  }
}

interface ClientFirst {
  gs2Header: string;
  bare: string;
  username: string;
  clientNonce: string;
}

/** client-first-message := gs2-cbind-flag "," [authzid] "," [reserved-mext ","] username "," nonce ["," extensions] */
function parseClientFirst(message: string): ClientFirst {
  const flagEnd = message.indexOf(",");
  const authzidEnd = flagEnd < 0 ? -1 : message.indexOf(",", flagEnd + 1);
  if (authzidEnd < 0) {
    throw new ScramAuthenticationError(`client-first message lacks a gs2 header: ${message}`);
  }
  const flag = message.slice(0, flagEnd);
  if (flag.startsWith("p=")) {
    throw new ScramAuthenticationError("Server does not support channel binding");
  }
  if (flag !== "n" && flag !== "y") {
    throw new ScramAuthenticationError(`Incorrect SCRAM client message prefix: ${flag}`);
  }
  const authzidField = message.slice(flagEnd + 1, authzidEnd);
  if (authzidField !== "" && !authzidField.startsWith("a=")) {
    throw new ScramAuthenticationError(`Incorrect SCRAM authzid: ${authzidField}`);
  }

  const bare = message.slice(authzidEnd + 1);
  if (bare.startsWith("m=")) {
    throw new ScramAuthenticationError("SCRAM mandatory extensions are not supported");
  }
  const [userField, nonceField] = bare.split(",");
  if (userField === undefined || !userField.startsWith("n=") || userField.length < 3) {
    throw new ScramAuthenticationError(`Invalid SCRAM user name field: ${userField ?? ""}`);
  }
  if (nonceField === undefined || !nonceField.startsWith("r=")) {
    throw new ScramAuthenticationError(`Invalid SCRAM client nonce field: ${nonceField ?? ""}`);
  }
  const username = decodeUsername(userField.slice(2));
  const clientNonce = nonceField.slice(2);
  assertNonceSyntax(clientNonce, "client nonce");

  if (authzidField !== "" && decodeUsername(authzidField.slice(2)) !== username) {
    throw new ScramAuthenticationError(`SCRAM user name ${username} does not match authzid ${authzidField}`);
  }
  return { gs2Header: message.slice(0, authzidEnd + 1), bare, username, clientNonce };
}

/**
 * Undoes the "=2C"/"=3D" escaping. Deliberately as lenient as mongod about
 * stray "=": the node driver only escapes the first occurrence of each.
 */
function decodeUsername(encoded: string): string {
  return encoded.replaceAll("=2C", ",").replaceAll("=3D", "=");
}

/** RFC 5802 nonces are printable ASCII without ","; mongod also wants at least 4 characters. */
function assertNonceSyntax(nonce: string, what: string): void {
  if (nonce.length < 4 || !/^[\x21-\x2b\x2d-\x7e]+$/.test(nonce)) {
    throw new ScramAuthenticationError(`Invalid ${what}: ${JSON.stringify(nonce)}`);
  }
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

function decodeMessage(payload: Buffer, what: string): string {
  if (payload.length === 0) {
    throw new ScramAuthenticationError(`Empty ${what} message`);
  }
  try {
    return utf8.decode(payload);
  } catch {
    throw new ScramAuthenticationError(`${what} message is not valid UTF-8`);
  }
}

/** Buffer.from(..., "base64") silently skips garbage; a proof must be exact. */
function decodeBase64(text: string, what: string): Buffer {
  if (text.length === 0 || text.length % 4 !== 0 || !/^[A-Za-z0-9+/]+={0,2}$/.test(text)) {
    throw new ScramAuthenticationError(`Invalid base64 in ${what}`);
  }
  return Buffer.from(text, "base64");
}

function hash(mechanism: ScramMechanism, data: Buffer): Buffer {
  return createHash(MECHANISM_PARAMETERS[mechanism].digest).update(data).digest();
}

function hmac(mechanism: ScramMechanism, key: Buffer, data: string): Buffer {
  return createHmac(MECHANISM_PARAMETERS[mechanism].digest, key).update(data, "utf8").digest();
}

function xor(a: Buffer, b: Buffer): Buffer {
  const result = Buffer.alloc(a.length);
  for (let i = 0; i < a.length; i++) {
    result[i] = a[i] ^ b[i];
  }
  return result;
}
