/**
 * A restore that cannot finish, end to end (built CLI, real server, two emulators):
 * - a damaged block: the download of its collection ends with the error trailer (4 zero bytes,
 *   JSON naming the code, namespace and block) and the connection is cut, so a plain HTTP client
 *   sees an incomplete transfer; the CLI names the snapshot, the block and the namespace;
 * - the restore stops and says which namespaces are complete and which are not (also as JSON
 *   with --json), whether the snapshot (damaged block) or the target (an index build refused)
 *   stopped it; a rerun with --drop (narrowed to the incomplete ones, or not) then finishes and
 *   matches the source.
 */
import { request } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FramingError, splitDocuments } from "../../src/snapshot/fsStore/streams.js";
import { TRAILER_MARKER } from "../../src/snapshot/streamTrailer.js";
import { startActiveBackup, type ActiveBackup } from "../helpers/activeBackup.js";
import { killAll, runCliToEnd } from "../helpers/cli.js";
import { withEmulator, type EmulatorFixture } from "../helpers/emulator.js";
import { ADMIN_KEY, withServer, type ServerFixture } from "../helpers/server.js";
import {
  damageStoredBlock,
  manifestOf,
  seedCms,
  seedShop,
  snapshotServerOptions,
  SMALL_SNAPSHOT_BLOCKS,
  takeCaughtUpSnapshot,
  type SnapshotView,
} from "../helpers/snapshots.js";

describe("an interrupted tidemark restore", () => {
  let source: EmulatorFixture;
  let target: EmulatorFixture;
  let fx: ServerFixture;
  let backup: ActiveBackup;
  let snapshot: SnapshotView;
  let env: Record<string, string>;
  const serverLog: string[] = [];

  const restore = (...args: string[]) =>
    runCliToEnd(["restore", "--snapshot", snapshot.id, "--to", target.emulator.uri, ...args], env);
  const hashes = async (fixture: EmulatorFixture, db: string) => {
    const reply = await fixture.client.db(db).command({ dbHash: 1 });
    const { "system.views": _views, ...collections } = reply.collections as Record<string, string>;
    return collections;
  };
  const expectTargetEqualsSource = async () => {
    for (const db of ["shop", "cms"]) expect(await hashes(target, db), db).toEqual(await hashes(source, db));
  };
  /** The damaged block: the second of shop.orders' base run, so documents go out before it. */
  const ordersBlock = () =>
    manifestOf(snapshot).collections.find((c) => c.namespace === "shop.orders")!.runs![0].blocks[1].hash;

  beforeAll(async () => {
    source = await withEmulator();
    target = await withEmulator();
    fx = await withServer(
      snapshotServerOptions({ ...SMALL_SNAPSHOT_BLOCKS, log: (line) => serverLog.push(line) }),
    );
    env = { TIDEMARK_URL: fx.server.url, TIDEMARK_API_KEY: ADMIN_KEY };
    await seedShop(source.client, {
      orders: 2000,
      notePrefix: "order",
      withPrice: true,
      customers: 300,
      customer: (i) => ({ _id: i, name: `customer ${i}` }),
      byCustomerIndex: true,
    });
    await seedCms(source.client);
    backup = await startActiveBackup(fx, source, "rs");
    snapshot = await takeCaughtUpSnapshot(fx, backup);
    // The order the loader takes them in (--parallel 1): shop.orders, the damaged one, is last.
    expect(
      manifestOf(snapshot)
        .collections.filter((c) => c.type === "collection" && c.name !== "system.views")
        .map((c) => c.namespace),
    ).toEqual(["cms.pages", "shop.customers", "shop.orders"]);
  }, 120_000);

  afterAll(async () => {
    killAll();
    await backup?.agent.stop();
    await fx?.close();
    await target?.close();
    await source?.close();
  });

  it("a damaged block ends the download with a trailer naming it, and a cut connection", async () => {
    const hash = ordersBlock();
    const repair = damageStoredBlock(fx.dataDir, hash);
    try {
      const url = new URL(`${fx.server.url}/api/v1/snapshots/${snapshot.id}/collections/shop.orders`);
      const { status, body, ended } = await new Promise<{ status: number; body: Buffer; ended: string }>(
        (resolve, reject) => {
          const req = request(url, { headers: { authorization: `Bearer ${ADMIN_KEY}` } }, (response) => {
            const chunks: Buffer[] = [];
            const done = (ended: string) =>
              resolve({ status: response.statusCode!, body: Buffer.concat(chunks), ended });
            response.on("data", (chunk: Buffer) => chunks.push(chunk));
            response.on("end", () => done("complete"));
            response.on("aborted", () => done("aborted"));
            response.on("error", () => done("aborted"));
          });
          req.on("error", reject);
          req.end();
        },
      );
      expect(status).toBe(200);
      // Like curl's "transfer closed with outstanding read data remaining".
      expect(ended).toBe("aborted");

      // Whole documents, then the marker where the next length would be, then the JSON.
      const docs: Buffer[] = [];
      let offset = 0;
      while (body.readInt32LE(offset) !== 0) {
        const length = body.readInt32LE(offset);
        docs.push(body.subarray(offset, offset + length));
        offset += length;
      }
      expect(body.subarray(offset, offset + 4)).toEqual(TRAILER_MARKER);
      expect(docs.length).toBeGreaterThan(0);
      expect(docs.length).toBeLessThan(2000);
      const trailer = JSON.parse(body.subarray(offset + 4).toString("utf8")) as Record<string, unknown>;
      expect(trailer).toMatchObject({ code: "CORRUPT_BLOCK", namespace: "shop.orders", block: hash });
      expect(trailer.message).toMatch(/damaged/);
      // splitDocuments (fs store reads, imports) still refuses such a stream, as before.
      await expect(
        (async () => {
          for await (const _ of splitDocuments(
            (async function* () {
              yield body;
            })(),
          ));
        })(),
      ).rejects.toThrow(FramingError);
      expect(serverLog.join("\n")).toMatch(
        new RegExp(
          `snapshot ${snapshot.id}: shop\\.orders: reading for a download failed \\(CORRUPT_BLOCK, block ${hash}\\)`,
        ),
      );
    } finally {
      repair();
    }
  });

  it("a damaged block stops the restore naming it; complete and incomplete namespaces are listed; a rerun finishes", async () => {
    const hash = ordersBlock();
    const repair = damageStoredBlock(fx.dataDir, hash);
    let repaired = false;
    try {
      const run = await restore("--drop", "--parallel", "1");
      expect(run.code, run.stderr).toBe(2);
      expect(run.stderr).toContain(
        `tidemark: restore of snapshot ${snapshot.id} stopped: snapshot ${snapshot.id}: block ${hash} of shop.orders is damaged: `,
      );
      expect(run.stderr).toMatch(/^complete: cms\.home_page, cms\.pages, shop\.customers$/m);
      expect(run.stderr).toMatch(/^not complete: shop\.orders$/m);
      expect(run.stderr).toContain(
        `hint: run tidemark snapshots verify ${snapshot.id}; restore from another snapshot; ` +
          "rerun with --drop (optionally --ns-include for the incomplete ones: --ns-include 'shop.orders')",
      );
      // What it says is so: the complete ones equal the source, the incomplete one is short.
      expect((await hashes(target, "shop")).customers).toBe((await hashes(source, "shop")).customers);
      expect((await hashes(target, "cms")).pages).toBe((await hashes(source, "cms")).pages);
      expect(await target.client.db("shop").collection("orders").countDocuments()).toBeLessThan(2000);

      const json = await restore("--drop", "--parallel", "1", "--json");
      expect(json.code).toBe(2);
      expect(JSON.parse(json.stdout)).toEqual({
        error: expect.stringContaining(`block ${hash} of shop.orders is damaged`) as unknown,
        code: "SOURCE_FAILED",
        completed: ["cms.home_page", "cms.pages", "shop.customers"],
        incomplete: ["shop.orders"],
        hint: expect.stringContaining("rerun with --drop") as unknown,
      });
      expect(json.stderr).toMatch(/^not complete: shop\.orders$/m);

      repair();
      repaired = true;
      const rerun = await restore("--drop", "--ns-include", "shop.orders");
      expect(rerun.code, rerun.stderr).toBe(0);
      expect(rerun.stdout).toMatch(/matching the snapshot's dbHash/);
      await expectTargetEqualsSource();
    } finally {
      if (!repaired) repair();
    }
  });

  it("a target that refuses an index build stops the restore with the same account; a rerun with --drop finishes", async () => {
    target.emulator.faults.failCommand("createIndexes", 8 /* UnknownError */, 1);
    const run = await restore("--drop", "--parallel", "1", "--json");
    expect(run.code, run.stderr).toBe(2);
    const reported = JSON.parse(run.stdout) as Record<string, unknown>;
    expect(reported).toMatchObject({
      code: "TARGET_FAILED",
      completed: ["cms.home_page", "cms.pages", "shop.customers"],
      incomplete: ["shop.orders"],
    });
    expect(reported.error).toMatch(
      new RegExp(`^restore of snapshot ${snapshot.id} stopped: shop\\.orders: building indexes failed: `),
    );
    expect(run.stderr).toMatch(/^not complete: shop\.orders$/m);
    expect(run.stderr).toMatch(/^hint: rerun with --drop \(optionally --ns-include for the incomplete ones/m);

    const rerun = await restore("--drop");
    expect(rerun.code, rerun.stderr).toBe(0);
    expect(rerun.stdout).toMatch(/matching the snapshot's dbHash/);
    await expectTargetEqualsSource();
  });
});
