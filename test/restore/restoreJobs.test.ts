/**
 * Restore jobs over HTTP: `POST /api/v1/restores` of a snapshot delivered as a mongodump archive
 * (downloaded behind an expiring signed link, whole and by Range, then imported by the CLI into a
 * second emulator and compared with the source), or into a deployment by the server; progress
 * and status; bad requests refused before any work; deleting a job removes its files, and stops it
 * if it is loading; a damaged block fails the job naming the block and the namespaces that are
 * complete; `tidemark restore jobs` lists, shows and deletes them.
 */
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadOrCreateLinkSecret, DownloadLinks } from "../../src/server/download/index.js";
import type { restoreView } from "../../src/server/routes/restores.js";
import { startActiveBackup, type ActiveBackup } from "../helpers/activeBackup.js";
import { runCliToEnd } from "../helpers/cli.js";
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
import { waitFor } from "../helpers/wait.js";

type RestoreView = ReturnType<typeof restoreView>;

describe("restore jobs (HTTP)", () => {
  let source: EmulatorFixture;
  let target: EmulatorFixture;
  let fx: ServerFixture;
  let backup: ActiveBackup;
  let snapshot: SnapshotView;

  const create = (body: unknown) =>
    fx.api<RestoreView & { code?: string; error?: string }>("POST", "/api/v1/restores", body);
  const ended = (id: string) =>
    waitFor(
      `restore ${id} to end`,
      async () => {
        const view = (await fx.api<RestoreView>("GET", `/api/v1/restores/${id}`)).body;
        return ["complete", "failed"].includes(view.status) ? view : undefined;
      },
      60_000,
    );
  /** A restore into `target` that loads one batch at a time (slow while replies are delayed). */
  const createSlowLoad = async () =>
    (
      await create({
        snapshotId: snapshot.id,
        delivery: { kind: "deployment", uri: target.emulator.uri, drop: true, parallel: 1 },
      })
    ).body;
  const loading = (id: string) =>
    waitFor(`restore ${id} to be loading`, async () =>
      (await fx.api<RestoreView>("GET", `/api/v1/restores/${id}`)).body.status === "loading"
        ? true
        : undefined,
    );
  const hashes = async (fixture: EmulatorFixture, db: string) => {
    const { collections } = await fixture.client.db(db).command({ dbHash: 1 });
    const { "system.views": _views, ...rest } = collections as Record<string, string>;
    return rest;
  };

  beforeAll(async () => {
    source = await withEmulator();
    target = await withEmulator();
    // One job at a time: the queue is tested below, and the other tests wait for each job anyway.
    fx = await withServer(snapshotServerOptions({ ...SMALL_SNAPSHOT_BLOCKS, restoreJobs: 1 }));
    await seedShop(source.client, {
      orders: 2500,
      notePrefix: "order",
      withPrice: true,
      customers: 300,
      customer: (i) => ({ _id: i, name: `customer ${i}` }),
      byCustomerIndex: true,
    });
    await seedCms(source.client);
    backup = await startActiveBackup(fx, source, "rs");
    snapshot = await takeCaughtUpSnapshot(fx, backup);
  }, 120_000);

  afterAll(async () => {
    await backup?.agent.stop();
    await fx?.close();
    await target?.close();
    await source?.close();
  });

  it("writes an archive, downloadable whole and by range through a signed link, that imports equal to the source", async () => {
    const created = await create({ snapshotId: snapshot.id, delivery: { kind: "archive", gzip: true } });
    expect(created.status, JSON.stringify(created.body)).toBe(202);
    const job = await ended(created.body.id);
    expect(job.status, job.error ?? "").toBe("complete");
    expect(job.downloadUrl).toMatch(/^\/api\/v1\/restores\/[^/]+\/download\?expires=\d+&signature=/);

    // The link works without the admin key.
    const whole = await fetch(`${fx.server.url}${job.downloadUrl}`);
    expect(whole.status).toBe(200);
    expect(whole.headers.get("content-type")).toBe("application/gzip");
    const archive = Buffer.from(await whole.arrayBuffer());
    expect(archive.length).toBe((job.result as { bytes: number }).bytes);
    const part = await fetch(`${fx.server.url}${job.downloadUrl}`, { headers: { range: "bytes=100-1099" } });
    expect(part.status).toBe(206);
    expect(part.headers.get("content-range")).toBe(`bytes 100-1099/${archive.length}`);
    expect(Buffer.from(await part.arrayBuffer())).toEqual(archive.subarray(100, 1100));

    const file = join(mkdtempSync(join(tmpdir(), "tidemark-download-")), "rs.archive.gz");
    writeFileSync(file, archive);
    const env = { TIDEMARK_URL: fx.server.url, TIDEMARK_API_KEY: ADMIN_KEY };
    const imported = await runCliToEnd(
      ["import", file, "--to", target.emulator.uri, "--drop", "--json"],
      env,
    );
    expect(imported.code, imported.stderr).toBe(0);
    for (const db of ["shop", "cms"]) expect(await hashes(target, db)).toEqual(await hashes(source, db));
  }, 60_000);

  it("refuses an expired, altered or missing link, and the download without one or the key", async () => {
    const created = await create({ snapshotId: snapshot.id, delivery: { kind: "archive" } });
    const job = await ended(created.body.id);
    const links = new DownloadLinks(loadOrCreateLinkSecret(fx.dataDir).secret);
    const path = `/api/v1/restores/${job.id}/download`;
    const expired = await fetch(
      `${fx.server.url}${links.sign({ path, expiresAt: new Date(Date.now() - 1000) })}`,
    );
    expect(expired.status).toBe(403);
    expect(((await expired.json()) as { code: string }).code).toBe("LINK_EXPIRED");
    // One character of the signature changed (to another one: "A" would leave an "A" as it is).
    const alteredUrl = job.downloadUrl!.replace(
      /signature=(.)/,
      (_, c: string) => `signature=${c === "A" ? "B" : "A"}`,
    );
    const altered = await fetch(`${fx.server.url}${alteredUrl}`);
    expect(altered.status).toBe(403);
    expect(((await altered.json()) as { code: string }).code).toBe("LINK_INVALID");
    expect((await fetch(`${fx.server.url}${path}`)).status).toBe(401);
    const withKey = await fetch(`${fx.server.url}${path}`, {
      headers: { authorization: `Bearer ${ADMIN_KEY}` },
    });
    expect(withKey.status).toBe(200);
    await withKey.arrayBuffer();
  }, 60_000);

  it("restores a snapshot into a deployment, verified, with progress and a redacted target", async () => {
    await target.client.db("shop").dropDatabase();
    await target.client.db("cms").dropDatabase();
    const created = await create({
      snapshotId: snapshot.id,
      delivery: { kind: "deployment", uri: target.emulator.uri, nsInclude: ["shop.*"] },
    });
    expect(created.status).toBe(202);
    expect(created.body.delivery).not.toHaveProperty("uri");
    const job = await ended(created.body.id);
    expect(job.status, job.error ?? "").toBe("complete");
    const result = job.result as { verified: boolean; collections: Array<{ namespace: string }> };
    expect(result.verified).toBe(true);
    expect(result.collections.map((c) => c.namespace).sort()).toEqual(["shop.customers", "shop.orders"]);
    expect(await hashes(target, "shop")).toEqual(await hashes(source, "shop"));
    // The namespaces exist now: without drop the next restore refuses before writing.
    const again = await ended(
      (await create({ snapshotId: snapshot.id, delivery: { kind: "deployment", uri: target.emulator.uri } }))
        .body.id,
    );
    expect(again.status).toBe("failed");
    expect(again.error).toContain("shop.customers");
  }, 60_000);

  it("asks for the admin key however the route is spelled", async () => {
    const { restores } = (await fx.api<{ restores: RestoreView[] }>("GET", "/api/v1/restores")).body;
    const id = restores[0]?.id ?? "x";
    const unauthenticated: Array<[string, string]> = [
      ["GET", "/api/v1/%72estores"],
      ["POST", "/api/v1/%72estores"],
      ["GET", `/api/v1/restores/${id}?x=/download`],
      ["DELETE", `/api/v1/restores/${id}?x=/download`],
      ["GET", "/api/v1/%64eployments"],
      ["GET", `/api/v1/%73napshots/${snapshot.id}`],
      ["GET", `/api/v1/deployments/rs/restore-ranges`],
    ];
    for (const [method, path] of unauthenticated) {
      const response = await fetch(`${fx.server.url}${path}`, {
        method,
        ...(method === "POST" ? { headers: { "content-type": "application/json" }, body: "{}" } : {}),
      });
      expect(response.status, `${method} ${path}`).toBe(401);
    }
  });

  it("refuses bad requests before any work", async () => {
    const cases: Array<[unknown, number, string]> = [
      [{ delivery: { kind: "archive" } }, 400, "either snapshotId"],
      [{ snapshotId: "nope", delivery: { kind: "archive" } }, 404, "no snapshot nope"],
      [{ deployment: "rs", delivery: { kind: "archive" } }, 400, "exactly one of at and atTs"],
      [{ deployment: "rs", at: "yesterday", delivery: { kind: "archive" } }, 400, "ISO 8601"],
      [{ deployment: "rs", atTs: "12", delivery: { kind: "archive" } }, 400, "seconds:increment"],
      [{ deployment: "nope", atTs: "1:1", delivery: { kind: "archive" } }, 404, "no deployment 'nope'"],
      [{ snapshotId: snapshot.id, delivery: { kind: "deployment", uri: "localhost" } }, 400, "mongodb://"],
      [{ snapshotId: snapshot.id, delivery: { kind: "stream" } }, 400, "GET /api/v1/snapshots"],
      [{ snapshotId: snapshot.id, delivery: { kind: "tape" } }, 400, "delivery"],
    ];
    const before = fx.server.context.catalog.restores.list().length;
    for (const [body, status, text] of cases) {
      const refused = await create(body);
      expect(refused.status, JSON.stringify(body)).toBe(status);
      expect(refused.body.error, JSON.stringify(body)).toContain(text);
    }
    expect(fx.server.context.catalog.restores.list()).toHaveLength(before);
  });

  it("deleting a job removes its files and its download", async () => {
    const job = await ended(
      (await create({ snapshotId: snapshot.id, delivery: { kind: "archive" } })).body.id,
    );
    const dir = join(fx.dataDir, "restores", job.id);
    expect(existsSync(join(dir, "restore.archive"))).toBe(true);
    const deleted = await fx.api<RestoreView>("DELETE", `/api/v1/restores/${job.id}`);
    expect(deleted.body.status).toBe("expired");
    expect(existsSync(dir)).toBe(false);
    const gone = await fetch(`${fx.server.url}${job.downloadUrl}`);
    expect(gone.status).toBe(410);
  }, 60_000);

  it("deleting a job while it loads stops it at its next document, saying which namespaces are complete", async () => {
    // Slow replies from the target keep the job loading long enough to be deleted on the way.
    target.emulator.faults.delayReplies(200);
    try {
      const { id } = await createSlowLoad();
      await loading(id);
      const deleted = await fx.api<RestoreView>("DELETE", `/api/v1/restores/${id}`);
      expect(deleted.body.status).toBe("failed");
      expect(deleted.body.error).toBe("deleted while it ran");
      const result = deleted.body.result as { completed: string[]; incomplete: string[] };
      expect(result.incomplete.length).toBeGreaterThan(0);
      expect(existsSync(join(fx.dataDir, "restores", id))).toBe(false);
    } finally {
      target.emulator.faults.delayReplies(0);
    }
  }, 60_000);

  it("keeps a job queued while another works, then runs it (--restore-jobs 1)", async () => {
    target.emulator.faults.delayReplies(100);
    let first: RestoreView;
    let second: RestoreView;
    try {
      first = await createSlowLoad();
      second = (await create({ snapshotId: snapshot.id, delivery: { kind: "archive" } })).body;
      await loading(first.id);
      expect((await fx.api<RestoreView>("GET", `/api/v1/restores/${second.id}`)).body.status).toBe("queued");
    } finally {
      target.emulator.faults.delayReplies(0);
    }
    expect((await ended(first.id)).status).toBe("complete");
    expect((await ended(second.id)).status).toBe("complete");
  }, 60_000);

  it("tidemark restore jobs lists, shows and deletes the jobs, a working one included", async () => {
    const env = { TIDEMARK_URL: fx.server.url, TIDEMARK_API_KEY: ADMIN_KEY };
    const cli = (...args: string[]) => runCliToEnd(["restore", "jobs", ...args], env);
    const archive = await ended(
      (await create({ snapshotId: snapshot.id, delivery: { kind: "archive", gzip: true } })).body.id,
    );
    target.emulator.faults.delayReplies(200);
    try {
      const { id: loadingId } = await createSlowLoad();
      await loading(loadingId);

      const listed = await cli("--json");
      expect(listed.code, listed.stderr).toBe(0);
      const jobs = JSON.parse(listed.stdout) as RestoreView[];
      expect(jobs.find((j) => j.id === archive.id)?.status).toBe("complete");
      expect(jobs.find((j) => j.id === loadingId)?.status).toBe("loading");
      const table = await cli();
      const rowOf = (id: string) => table.stdout.split("\n").find((line) => line.startsWith(id)) ?? "";
      expect(rowOf(archive.id)).toMatch(new RegExp(`complete +snapshot ${snapshot.id} +archive \\(gzip\\)`));
      expect(rowOf(loadingId)).toMatch(/loading +snapshot \S+ +to mongodb:\/\/127\.0\.0\.1/);

      const shown = await cli("show", archive.id);
      expect(shown.code, shown.stderr).toBe(0);
      expect(shown.stdout).toContain(`restore ${archive.id}: complete`);
      // A fresh signed link each time: the same path, another expiry maybe.
      const link = new RegExp(`download: (${fx.server.url}/api/v1/restores/${archive.id}/download\\?\\S+)`);
      expect(shown.stdout).toMatch(link);
      expect((await fetch(link.exec(shown.stdout)![1])).status).toBe(200);
      const shownJson = JSON.parse((await cli("show", archive.id, "--json")).stdout) as RestoreView;
      const { downloadUrl: _link, ...view } = shownJson;
      const { downloadUrl: _apiLink, ...apiView } = (
        await fx.api<RestoreView>("GET", `/api/v1/restores/${archive.id}`)
      ).body;
      expect(view).toEqual(apiView);
      expect(shownJson.downloadUrl).toMatch(/^\/api\/v1\/restores\/\S+\/download\?expires=/);

      // Deleting the working job stops it; deleting the archive removes its file.
      const stopped = await cli("delete", loadingId);
      expect(stopped.code, stopped.stderr).toBe(0);
      expect(stopped.stdout).toContain(
        `restore ${loadingId}: failed (deleted while it ran), its files removed`,
      );
      expect((await fx.api<RestoreView>("GET", `/api/v1/restores/${loadingId}`)).body.status).toBe("failed");
    } finally {
      target.emulator.faults.delayReplies(0);
    }
    const deleted = await cli("delete", archive.id, "--json");
    expect((JSON.parse(deleted.stdout) as RestoreView).status).toBe("expired");
    expect(existsSync(join(fx.dataDir, "restores", archive.id))).toBe(false);

    const missing = await cli("show", "no-such-job");
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toContain("restore 'no-such-job'");
    expect(missing.stderr).toContain("tidemark restore jobs");
    const help = await runCliToEnd(["restore", "jobs", "--help"]);
    expect(help.stdout).toContain("$ tidemark restore jobs show");
  }, 60_000);

  it("fails on a damaged block, naming the block, and says which namespaces are complete", async () => {
    const manifest = manifestOf(snapshot);
    const orders = manifest.collections.find((c) => c.namespace === "shop.orders")!;
    const block = orders.runs![0].blocks[1].hash;
    const repair = damageStoredBlock(fx.dataDir, block);
    try {
      const job = await ended((await createSlowLoad()).id);
      expect(job.status).toBe("failed");
      expect(job.error).toContain(block.slice(0, 16));
      expect(job.error).toContain("shop.orders");
      const result = job.result as { completed: string[]; incomplete: string[] };
      expect(result.incomplete).toContain("shop.orders");
      expect(result.completed).not.toContain("shop.orders");
      expect(existsSync(join(fx.dataDir, "restores", job.id))).toBe(false);
    } finally {
      repair();
    }
    expect(readFileSync(join(fx.dataDir, "download-secret")).length).toBe(32);
  }, 60_000);
});
