/**
 * `tidemark snapshots` end to end: the emulator as the deployment, the server with its daemon and
 * the agent in-process, the built CLI as an operator runs it. Take (waiting, as JSON), list, show,
 * verify (intact, then with a damaged block: exit 1 naming the block), delete and groom, another
 * store through settings, bad input with clear messages, and an example in every command's help.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ObjectId } from "mongodb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { GroomReport } from "../../src/daemon/groom.js";
import type { SnapshotVerification } from "../../src/snapshot/verify.js";
import { startActiveBackup, type ActiveBackup } from "../helpers/activeBackup.js";
import { killAll, runCliToEnd } from "../helpers/cli.js";
import { withEmulator, type AnyDoc, type EmulatorFixture } from "../helpers/emulator.js";
import { ADMIN_KEY, withServer, type ServerFixture } from "../helpers/server.js";
import {
  damageStoredBlock,
  snapshotServerOptions,
  SMALL_SNAPSHOT_BLOCKS,
  type SnapshotView,
} from "../helpers/snapshots.js";

describe("tidemark snapshots", () => {
  let source: EmulatorFixture;
  let fx: ServerFixture;
  let backup: ActiveBackup;
  let env: Record<string, string>;
  const fsStore = mkdtempSync(join(tmpdir(), "tidemark-cli-fs-store-"));
  const logLines: string[] = [];

  const cli = (...args: string[]) => runCliToEnd(["snapshots", ...args], env);

  beforeAll(async () => {
    source = await withEmulator();
    fx = await withServer(
      snapshotServerOptions({
        ...SMALL_SNAPSHOT_BLOCKS,
        log: (line) => logLines.push(line),
      }),
    );
    env = { TIDEMARK_URL: fx.server.url, TIDEMARK_API_KEY: ADMIN_KEY };
    const shop = source.client.db("shop");
    await shop
      .collection<AnyDoc>("orders")
      .insertMany(
        Array.from({ length: 3000 }, (_, i) => ({ _id: new ObjectId(), n: i, note: `order ${i}` })),
      );
    await shop
      .collection<AnyDoc>("customers")
      .insertMany(Array.from({ length: 500 }, (_, i) => ({ _id: i, name: `customer ${i}` })));
    backup = await startActiveBackup(fx, source, "rs", (line) => logLines.push(line));
    await backup.caughtUp();
  }, 60_000);

  afterAll(async () => {
    killAll();
    await backup?.agent.stop();
    await fx?.close();
    await source?.close();
    rmSync(fsStore, { recursive: true, force: true });
    if (process.env.TIDEMARK_TEST_LOG) process.stderr.write(`${logLines.join("\n")}\n`);
  });

  let snapshot: SnapshotView;

  it("take --wait --json prints the complete snapshot", async () => {
    const taken = await cli("take", "rs", "--wait", "--json");
    expect(taken.code, taken.stderr).toBe(0);
    snapshot = JSON.parse(taken.stdout) as SnapshotView;
    expect(snapshot).toMatchObject({
      id: expect.stringMatching(/^[0-9a-f-]{36}$/),
      deploymentId: backup.id,
      deploymentName: "rs",
      trigger: "on_demand",
      ts: { t: expect.any(Number), i: expect.any(Number) },
      wallTime: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
      store: expect.stringMatching(/^file:\/\/.*blockstore\.sqlite$/),
      storeKind: "blockstore",
      status: "complete",
      error: null,
    });
    expect(snapshot.collections.map((c) => c.namespace)).toEqual(
      expect.arrayContaining(["shop.orders", "shop.customers"]),
    );
    expect(snapshot.collections.find((c) => c.namespace === "shop.orders")!.count).toBe(3000);
    expect(snapshot.logicalBytes).toBeGreaterThan(0);
    expect(snapshot.storedBytes).toBeGreaterThan(0);
    // Without --json: what the snapshot is, in words.
    await backup.caughtUp();
    const text = await cli("take", "rs", "--wait");
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toMatch(/^snapshot [0-9a-f-]{36} of rs: complete$/m);
    expect(text.stdout).toMatch(/collections, .* of documents, .* stored/);
    expect(text.stdout).toMatch(/expires \d{4}-/);
  }, 30_000);

  it("list shows it, as JSON and as a table", async () => {
    const json = await cli("list", "rs", "--json");
    expect(json.code, json.stderr).toBe(0);
    const listed = JSON.parse(json.stdout) as SnapshotView[];
    expect(listed).toHaveLength(2);
    expect(listed[0]).toMatchObject({
      id: snapshot.id,
      status: "complete",
      ts: snapshot.ts,
      storedBytes: snapshot.storedBytes,
    });

    const text = await cli("list", "rs");
    expect(text.code, text.stderr).toBe(0);
    const lines = text.stdout.trimEnd().split("\n");
    expect(lines[0]).toMatch(/^ID\s+STATUS\s+TS\s+WALL TIME\s+TRIGGER\s+STORE\s+DOCUMENTS\s+STORED$/);
    expect(lines).toHaveLength(3);
    expect(lines[1]).toMatch(
      new RegExp(`^${snapshot.id}\\s+complete\\s+\\d+:\\d+\\s+\\S+\\s+on_demand\\s+blockstore`),
    );
  });

  it("show prints one snapshot, in words or as JSON", async () => {
    const text = await cli("show", snapshot.id);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toContain(`snapshot ${snapshot.id} of rs: complete`);
    expect(text.stdout).toContain(`at ${snapshot.ts!.t}:${snapshot.ts!.i}`);
    expect(text.stdout).toContain(`store ${snapshot.store}`);
    const json = await cli("show", snapshot.id, "--json");
    expect(json.code).toBe(0);
    expect(JSON.parse(json.stdout)).toMatchObject({ id: snapshot.id, status: "complete", ts: snapshot.ts });
    const manifest = await cli("show", snapshot.id, "--manifest");
    expect(manifest.code).toBe(0);
    expect(JSON.parse(manifest.stdout)).toMatchObject({ manifest: { snapshotId: snapshot.id } });
    const missing = await cli("show", "no-such-snapshot");
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toContain("snapshot 'no-such-snapshot' not found");
    expect(missing.stderr).toContain("hint: list a deployment's snapshots with: tidemark snapshots list");
  });

  it("verify reads it back: exit 0 with an ok line per collection; --json gives ok: true", async () => {
    const text = await cli("verify", snapshot.id);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toMatch(/^COLLECTION\s+RESULT\s+DOCUMENTS\s+MD5$/m);
    expect(text.stdout).toMatch(/^shop\.orders\s+ok\s+3000\s+[0-9a-f]{32}$/m);
    expect(text.stdout).toMatch(/^shop\.customers\s+ok\s+500\s+[0-9a-f]{32}$/m);
    expect(text.stdout).toContain(`snapshot ${snapshot.id}: every block and hash checks out`);

    const json = await cli("verify", snapshot.id, "--json");
    expect(json.code, json.stderr).toBe(0);
    const result = JSON.parse(json.stdout) as SnapshotVerification;
    expect(result).toMatchObject({ snapshotId: snapshot.id, ok: true });
    expect(result.collections.every((c) => c.ok)).toBe(true);
  }, 20_000);

  it("a damaged block: verify exits 1 and names it", async () => {
    // One byte flipped in a block of the orders collection, in the blockstore's own SQLite file.
    const manifest = (
      await fx.api<{
        manifest: {
          collections: Array<{ namespace: string; runs: Array<{ blocks: Array<{ hash: string }> }> }>;
        };
      }>("GET", `/api/v1/snapshots/${snapshot.id}?manifest=true`)
    ).body.manifest;
    const orders = manifest.collections.find((c) => c.namespace === "shop.orders")!;
    const hash = orders.runs[0].blocks[0].hash;
    damageStoredBlock(fx.dataDir, hash);

    const text = await cli("verify", snapshot.id);
    expect(text.code, text.stdout + text.stderr).toBe(1);
    expect(text.stdout).toMatch(/^shop\.orders\s+BAD\s/m);
    expect(text.stdout).toContain(`snapshot ${snapshot.id}: DAMAGED:`);
    expect(text.stdout).toContain(hash);
    const json = await cli("verify", snapshot.id, "--json");
    expect(json.code).toBe(1);
    const result = JSON.parse(json.stdout) as SnapshotVerification;
    expect(result.ok).toBe(false);
    expect(result.firstProblem).toContain(hash);
    const shown = await cli("show", snapshot.id);
    expect(shown.stdout).toContain("verification: failed");
  }, 20_000);

  it("delete, then groom reports the blocks it removed", async () => {
    const [, second] = JSON.parse((await cli("list", "rs", "--json")).stdout) as SnapshotView[];
    for (const s of [snapshot, second]) {
      const deleted = await cli("delete", s.id);
      expect(deleted.code, deleted.stderr).toBe(0);
      expect(deleted.stdout).toContain(`snapshot ${s.id} deleted`);
    }
    const again = await cli("delete", snapshot.id, "--json");
    expect(again.code).not.toBe(0);
    expect(again.stderr).toContain(`snapshot '${snapshot.id}' not found`);

    const groomed = await cli("groom", "--json");
    expect(groomed.code, groomed.stderr).toBe(0);
    const report = JSON.parse(groomed.stdout) as GroomReport;
    expect(report.blocksRemoved).toBeGreaterThan(0);
    expect(report.bytesReclaimed).toBeGreaterThan(0);
    expect(report.errors).toEqual([]);
    const text = await cli("groom");
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toMatch(/^groom: 0 expired snapshots removed, 0 blocks removed/);
    const list = await cli("list", "rs");
    expect(list.stdout).toContain("no snapshots of rs yet; take one with: tidemark snapshots take rs --wait");
  }, 20_000);

  it("settings --store fs:PATH: the next snapshot goes there", async () => {
    const set = await cli("settings", "rs", "--store", `fs:${fsStore}`);
    expect(set.code, set.stderr).toBe(0);
    expect(set.stdout).toContain(`rs: snapshot store fs:${fsStore}`);
    const taken = await cli("take", "rs", "--wait", "--json");
    expect(taken.code, taken.stderr).toBe(0);
    const view = JSON.parse(taken.stdout) as SnapshotView;
    expect(view).toMatchObject({ status: "complete", storeKind: "fs" });
    expect(view.store).toContain(fsStore);
    const verified = await cli("verify", view.id);
    expect(verified.code, verified.stdout + verified.stderr).toBe(0);
    const back = await cli("settings", "rs", "--store", "default", "--json");
    expect(back.code, back.stderr).toBe(0);
    expect(JSON.parse(back.stdout)).toMatchObject({ snapshotStore: null });
  }, 30_000);

  it("settings --schedule sets the deployment's schedule; bad values are refused by name", async () => {
    const set = await cli("settings", "rs", "--schedule", '{"enabled": false, "keepDays": 3}', "--json");
    expect(set.code, set.stderr).toBe(0);
    expect(JSON.parse(set.stdout)).toMatchObject({ snapshotSchedule: { enabled: false, keepDays: 3 } });
    const bad = await cli("settings", "rs", "--schedule", '{"intervalHours": -1}');
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain("intervalHours");
    const typo = await cli("settings", "rs", "--schedule", '{"intervalHour": 12}');
    expect(typo.code).not.toBe(0);
    expect(typo.stderr).toContain("intervalHour");
    expect(typo.stderr).toContain('schedule: Unrecognized key: "intervalHour"');
  });

  it("bad input: an unknown deployment, a schedule that is not JSON", async () => {
    const nosuch = await cli("take", "nosuch");
    expect(nosuch.code).not.toBe(0);
    expect(nosuch.stderr).toContain("deployment 'nosuch' not found");
    expect(nosuch.stderr).toContain("hint: list the deployments with: tidemark deployments list");
    expect(nosuch.stdout).toBe("");
    const listNosuch = await cli("list", "nosuch");
    expect(listNosuch.code).not.toBe(0);
    expect(listNosuch.stderr).toContain("hint: list the deployments with: tidemark deployments list");

    // verify: 1 says damaged, so a snapshot that cannot be checked at all exits 2.
    const verifyNosuch = await cli("verify", "no-such-snapshot");
    expect(verifyNosuch.code).toBe(2);
    expect(verifyNosuch.stderr).toContain("snapshot 'no-such-snapshot' not found");
    expect(verifyNosuch.stderr).toContain(
      "hint: list a deployment's snapshots with: tidemark snapshots list",
    );

    const notJson = await cli("settings", "rs", "--schedule", "notjson");
    expect(notJson.code).not.toBe(0);
    expect(notJson.stderr).toContain("--schedule takes JSON");
    expect(notJson.stderr).toContain(`hint: for example --schedule '{"intervalHours": 12, "keepDays": 3}'`);

    const keepDays = await cli("take", "rs", "--keep-days", "-1");
    expect(keepDays.code).not.toBe(0);
    expect(keepDays.stderr).toContain("expected a positive number");
  });

  it("every subcommand's --help has an example", async () => {
    const subcommands = ["take", "list", "show", "delete", "verify", "groom", "settings"];
    const helps = await Promise.all(subcommands.map((sub) => cli(sub, "--help")));
    subcommands.forEach((sub, k) => {
      expect(helps[k].code, sub).toBe(0);
      expect(helps[k].stdout, sub).toMatch(/Examples?:\n\s+\$ tidemark snapshots /);
      expect(helps[k].stdout, sub).toContain(`tidemark snapshots ${sub}`);
    });
    const top = await runCliToEnd(["snapshots", "--help"], env);
    expect(top.stdout).toContain("Example");
  });
});
