/**
 * The CLI's reading of a collection download (src/cli/snapshotSource.ts `documentsFrom`) against
 * a stand-in server that ends the body the ways the real one can: whole, with the error trailer
 * then a cut connection (the CLI names the snapshot, the block and the namespace), or cut with no
 * trailer (the connection dropped: the error it always was).
 */
import { createServer, type Server, type ServerResponse } from "node:http";
import { serialize } from "bson";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ApiClient, CliError } from "../../src/cli/apiClient.js";
import { documentsFrom } from "../../src/cli/snapshotSource.js";
import { encodeTrailer, type StreamFailure } from "../../src/snapshot/streamTrailer.js";

const docs = Array.from({ length: 50 }, (_, i) => Buffer.from(serialize({ _id: i, pad: "x".repeat(100) })));
const HASH = "0f".repeat(32);
const failure = (code: string, block: string | null): StreamFailure => ({
  code,
  message: `the reader's words (${code})`,
  namespace: "shop.orders",
  block,
});

/** How the stand-in server ends each namespace's body. */
const endings: Record<string, (response: ServerResponse) => void> = {
  "shop.whole": (response) => response.end(Buffer.concat(docs)),
  "shop.damaged": (response) =>
    response.write(Buffer.concat([...docs.slice(0, 10), encodeTrailer(failure("CORRUPT_BLOCK", HASH))]), () =>
      response.destroy(),
    ),
  "shop.unreachable": (response) =>
    response.write(encodeTrailer(failure("UNAVAILABLE", HASH)), () => response.destroy()),
  "shop.unknown": (response) =>
    response.write(encodeTrailer(failure("READ_FAILED", null)), () => response.destroy()),
  "shop.dropped": (response) =>
    response.write(Buffer.concat(docs.slice(0, 10)).subarray(0, 500), () => response.destroy()),
};

describe("documentsFrom", () => {
  let server: Server;
  let api: ApiClient;

  beforeAll(async () => {
    server = createServer((request, response) => {
      const namespace = decodeURIComponent(request.url!.split("/").at(-1)!);
      response.writeHead(200, { "content-type": "application/octet-stream" });
      endings[namespace](response);
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const { port } = server.address() as { port: number };
    api = new ApiClient(`http://127.0.0.1:${port}`, "key");
  });
  afterAll(async () => {
    await new Promise((resolve) => server.close(resolve));
  });

  const read = async (namespace: string) => {
    const got: Uint8Array[] = [];
    try {
      for await (const doc of documentsFrom(api, "snap-1", namespace)()) got.push(doc);
      return { got, error: undefined };
    } catch (error) {
      return { got, error: error as CliError };
    }
  };

  it("reads a whole body", async () => {
    const { got, error } = await read("shop.whole");
    expect(error).toBeUndefined();
    expect(got.map((d) => Buffer.from(d))).toEqual(docs);
  });

  it("turns the trailer into an error naming the snapshot, the block and the namespace (exit 2)", async () => {
    const { got, error } = await read("shop.damaged");
    expect(got).toHaveLength(10);
    expect(error).toBeInstanceOf(CliError);
    expect(error!.message).toBe(
      `snapshot snap-1: block ${HASH} of shop.orders is damaged: the reader's words (CORRUPT_BLOCK)`,
    );
    expect(error!.hint).toBe("run tidemark snapshots verify snap-1; restore from another snapshot");
    expect(error!.exitCode).toBe(2);
  });

  it("says a store the server cannot reach, or an unknown failure, is not damage", async () => {
    const unreachable = (await read("shop.unreachable")).error!;
    expect(unreachable.message).toBe(
      `snapshot snap-1: block ${HASH} of shop.orders cannot be read now: the reader's words (UNAVAILABLE)`,
    );
    expect(unreachable.hint).toMatch(/cannot reach its snapshot store/);
    const unknown = (await read("shop.unknown")).error!;
    expect(unknown.message).toBe(
      "snapshot snap-1: shop.orders cannot be read: the reader's words (READ_FAILED)",
    );
    expect(unknown.exitCode).toBe(2);
  });

  it("keeps a body cut without a trailer the error it was", async () => {
    const { error } = await read("shop.dropped");
    expect(error).toBeInstanceOf(CliError);
    expect(error!.message).toMatch(/^the server stopped sending shop\.dropped of snapshot snap-1: /);
    expect(error!.hint).toMatch(/snapshots verify snap-1/);
    expect(error!.exitCode).toBe(2);
  });
});
