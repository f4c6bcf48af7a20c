/**
 * The server keeping slices in an S3-compatible store: a real s3rver over HTTP, the real server
 * configured with --oplog-store s3://..., and the agent cloning the emulator into it.
 */
import { CreateBucketCommand, GetObjectCommand, ListObjectsV2Command, S3Client } from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startAgent, type RunningAgent } from "../../src/agent/agent.js";
import type { DeploymentView } from "../../src/server/deploymentView.js";
import { decodeSlice } from "../../src/slice/format.js";
import { withEmulator, type AnyDoc, type EmulatorFixture } from "../helpers/emulator.js";
import { withServer, type ServerFixture } from "../helpers/server.js";
import { S3RVER_CREDENTIALS, startS3rver, type RunningS3rver } from "../oplogstore/s3rverFixture.js";

describe("server with an S3 oplog store (s3rver over HTTP)", () => {
  let s3rver: RunningS3rver;
  let s3: S3Client;
  let source: EmulatorFixture;
  let fx: ServerFixture;
  let agent: RunningAgent | undefined;

  beforeAll(async () => {
    s3rver = await startS3rver();
    s3 = new S3Client({
      endpoint: s3rver.endpoint,
      region: "us-east-1",
      forcePathStyle: true,
      credentials: S3RVER_CREDENTIALS,
    });
    await s3.send(new CreateBucketCommand({ Bucket: "backups" }));
    source = await withEmulator();
    await source.client
      .db("shop")
      .collection<AnyDoc>("orders")
      .insertMany(Array.from({ length: 2000 }, (_, i) => ({ _id: i, total: i * 1.5, note: `order ${i}` })));
    fx = await withServer({
      oplogStore: "s3://backups/tidemark",
      s3: { endpoint: s3rver.endpoint, region: "us-east-1", forcePathStyle: true, ...S3RVER_CREDENTIALS },
      sliceMb: 0.02,
      // This test is about the S3 store; the daemon has its own test (test/daemon).
      daemon: false,
      oplogFlushSeconds: 0.3,
    });
  });
  afterAll(async () => {
    await agent?.stop();
    await fx?.close();
    await source?.close();
    s3.destroy();
    await s3rver?.stop();
  });

  it("stores every acknowledged slice as an object in the bucket, intact", async () => {
    const { id, agentKey } = (
      await fx.api<{ id: string; agentKey: string }>("POST", "/api/v1/deployments", { name: "s3" })
    ).body;
    await fx.api("POST", "/api/v1/deployments/s3/backup/start");
    agent = startAgent({
      serverUrl: fx.server.url,
      agentKey,
      deploymentId: id,
      sourceUri: source.emulator.uri,
      log: () => {},
    });
    const deadline = Date.now() + 30_000;
    let view: DeploymentView;
    do {
      await new Promise((resolve) => setTimeout(resolve, 100));
      view = (await fx.api<DeploymentView>("GET", "/api/v1/deployments/s3")).body;
    } while (!view.initialSync.cloneCompleteAt && Date.now() < deadline);
    expect(view.initialSync.cloneCompleteAt).not.toBeNull();
    expect(view.slices.documents.documents).toBe(2000);
    expect(view.slices.documents.count).toBeGreaterThan(1);

    const listed = await fx.api<{ slices: Array<{ storeKey: string; sha256: string }> }>(
      "GET",
      "/api/v1/deployments/s3/slices",
    );
    const objects = await s3.send(new ListObjectsV2Command({ Bucket: "backups", Prefix: "tidemark/" }));
    const keys = (objects.Contents ?? []).map((o) => o.Key);
    for (const slice of listed.body.slices) {
      expect(keys).toContain(`tidemark/${slice.storeKey}`);
      const object = await s3.send(
        new GetObjectCommand({ Bucket: "backups", Key: `tidemark/${slice.storeKey}` }),
      );
      const bytes = Buffer.from(await object.Body!.transformToByteArray());
      expect(decodeSlice(bytes).header.bodySha256.toString("hex")).toBe(slice.sha256);
    }
  });
});
