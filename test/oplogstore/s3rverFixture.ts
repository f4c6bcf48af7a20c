import { fork, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import type { IncomingHttpHeaders } from "node:http";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { CreateBucketCommand, S3Client } from "@aws-sdk/client-s3";

/** s3rver's only key pair (node_modules/s3rver/lib/models/account.js). */
export const S3RVER_CREDENTIALS = { accessKeyId: "S3RVER", secretAccessKey: "S3RVER" } as const;

export interface RecordedRequest {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
}

export interface RunningS3rver {
  /** "http://127.0.0.1:<port>" */
  endpoint: string;
  /** The requests the server received (all, or from index `from`), for checking what the SDK sent. */
  requests(from?: number): Promise<RecordedRequest[]>;
  stop(): Promise<void>;
}

type ChildMessage = { type: "ready"; port: number } | { type: "requests"; requests: RecordedRequest[] };

const script = fileURLToPath(new URL("./s3rverProcess.mjs", import.meta.url));

/**
 * A real s3rver on 127.0.0.1, on a free port, storing into a fresh temp directory, in a child
 * process started with --openssl-legacy-provider (see s3rverProcess.mjs for why).
 */
export async function startS3rver(): Promise<RunningS3rver> {
  const directory = mkdtempSync(path.join(tmpdir(), "tidemark-s3rver-"));
  const child = fork(script, [directory], {
    execArgv: ["--openssl-legacy-provider"],
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  const { port } = await nextMessage<{ port: number }>(child, "ready");
  let stopped = false;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    async requests(from = 0) {
      const reply = nextMessage<{ requests: RecordedRequest[] }>(child, "requests");
      child.send({ type: "requests", from });
      const { requests } = await reply;
      return requests;
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
      if (child.connected) child.send({ type: "stop" });
      else child.kill();
      await exited;
      rmSync(directory, { recursive: true, force: true });
    },
  };
}

function nextMessage<T>(child: ChildProcess, type: ChildMessage["type"]): Promise<T> {
  return new Promise((resolve, reject) => {
    const onMessage = (message: ChildMessage): void => {
      if (message.type !== type) return;
      cleanup();
      resolve(message as T);
    };
    const onExit = (code: number | null): void => {
      cleanup();
      reject(new Error(`s3rver process exited (code ${code}) before sending "${type}"`));
    };
    const cleanup = (): void => {
      child.off("message", onMessage);
      child.off("exit", onExit);
    };
    child.on("message", onMessage);
    child.on("exit", onExit);
  });
}

export interface S3rverBucket {
  s3rver: RunningS3rver;
  /** A client talking to s3rver directly, to look at and change what the bucket holds. */
  admin: S3Client;
  /** Destroys the client and stops s3rver. */
  stop(): Promise<void>;
}

/** A real s3rver (see `startS3rver`) with `bucket` created in it, and a client to it. */
export async function startS3rverWithBucket(bucket: string): Promise<S3rverBucket> {
  const s3rver = await startS3rver();
  const admin = new S3Client({
    endpoint: s3rver.endpoint,
    region: "us-east-1",
    forcePathStyle: true,
    credentials: S3RVER_CREDENTIALS,
  });
  try {
    await admin.send(new CreateBucketCommand({ Bucket: bucket }));
  } catch (error) {
    admin.destroy();
    await s3rver.stop();
    throw error;
  }
  return {
    s3rver,
    admin,
    async stop() {
      admin.destroy();
      await s3rver.stop();
    },
  };
}
