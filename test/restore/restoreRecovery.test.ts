/**
 * Restore jobs across a server restart: a job that was running when the server stopped is failed
 * as interrupted (never left looking alive) and its files removed; a point in time held for a
 * client is let go (its head database is not reopened); an archive job that completed keeps its
 * archive and download until it expires, then the sweep removes it.
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { RESTORE_INTERRUPTED } from "../../src/catalog/restores.js";
import { withServer, type ServerFixture } from "../helpers/server.js";

describe("restore jobs across a restart", () => {
  const dataDir = mkdtempSync(join(tmpdir(), "tidemark-restore-recovery-"));
  let fx: ServerFixture | undefined;
  afterAll(async () => {
    await fx?.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it("fails running jobs as interrupted, lets go of held points, keeps complete archives until they expire", async () => {
    fx = await withServer({ dataDir });
    const { catalog } = fx.server.context;
    const jobDir = (id: string) => join(dataDir, "restores", id);
    const withFiles = (id: string, file: string) => {
      mkdirSync(jobDir(id), { recursive: true });
      writeFileSync(join(jobDir(id), file), "x".repeat(1000));
    };
    const loading = catalog.restores.create(
      { kind: "snapshot", snapshotId: "s", deploymentName: "rs" },
      { kind: "deployment" },
    );
    catalog.restores.setStatus(loading.id, "loading");
    withFiles(loading.id, "partial");
    const held = catalog.restores.create({ kind: "pointInTime", deploymentName: "rs" }, { kind: "stream" });
    catalog.restores.finish(held.id, { status: "ready", expiresAt: Date.now() + 3600_000 });
    withFiles(held.id, "head");
    const archive = catalog.restores.create({ kind: "snapshot", deploymentName: "rs" }, { kind: "archive" });
    catalog.restores.finish(archive.id, {
      status: "complete",
      result: { bytes: 1000 },
      expiresAt: Date.now() + 3600_000,
    });
    withFiles(archive.id, "restore.archive");
    await fx.server.stop();

    fx = await withServer({ dataDir });
    const view = async (id: string) =>
      (
        await fx!.api<{ status: string; error: string | null; downloadUrl?: string }>(
          "GET",
          `/api/v1/restores/${id}`,
        )
      ).body;
    const interrupted = await view(loading.id);
    expect(interrupted.status).toBe("failed");
    expect(interrupted.error).toBe(RESTORE_INTERRUPTED);
    expect(existsSync(jobDir(loading.id))).toBe(false);
    expect((await view(held.id)).status).toBe("expired");
    expect(existsSync(jobDir(held.id))).toBe(false);

    const kept = await view(archive.id);
    expect(kept.status).toBe("complete");
    const download = await fetch(`${fx.server.url}${kept.downloadUrl}`);
    expect(download.status).toBe(200);
    expect((await download.arrayBuffer()).byteLength).toBe(1000);

    // Once its time is up, the sweep removes the archive; the link answers 410.
    expect(await fx.server.context.restores!.sweep(Date.now() + 2 * 3600_000)).toBe(1);
    expect(existsSync(jobDir(archive.id))).toBe(false);
    expect((await view(archive.id)).status).toBe("expired");
    expect((await fetch(`${fx.server.url}${kept.downloadUrl}`)).status).toBe(410);
  });
});
