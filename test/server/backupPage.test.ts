/**
 * The Backup page in a real browser (Debian's Chromium, headless, through playwright-core) against
 * the real server over HTTP, with the emulator and an in-process agent for a backup that goes
 * through its phases. The page polls every 2 s, so waits here allow a few polls.
 */
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { Int32 } from "mongodb";
import { chromium, type Browser, type BrowserContextOptions, type Locator, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunningAgent } from "../../src/agent/agent.js";
import { PHASES } from "../../src/catalog/deployments.js";
import type { DeploymentView } from "../../src/server/deploymentView.js";
import { backupPageDir } from "../../src/server/routes/backupPage.js";
import { startTestAgent } from "../helpers/agent.js";
import { withEmulator, type AnyDoc, type EmulatorFixture } from "../helpers/emulator.js";
import { ADMIN_KEY, withServer, type ServerFixture } from "../helpers/server.js";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const UPDATE = { timeout: 10_000, interval: 100 };
/** The seed's phase names (backup-flow.rst), in its order. */
const SEED_PHASES = [
  "starting",
  "transferring",
  "building",
  "applying oplogs",
  "fetching missing documents",
  "creating indexes",
  "complete",
];

interface Seen {
  url: string;
  method: string;
  authorization?: string;
  postData: string | null;
}

describe("Backup page", () => {
  let fx: ServerFixture;
  let source: EmulatorFixture;
  let browser: Browser;
  let agent: RunningAgent | undefined;
  const requests: Seen[] = [];
  const pages: Page[] = [];
  const problems: string[] = [];

  beforeAll(async () => {
    source = await withEmulator();
    await source.client
      .db("shop")
      .collection<AnyDoc>("customers")
      .insertMany(
        Array.from({ length: 600 }, (_, i) => ({ _id: i, name: `customer ${i}`, n: new Int32(i) })),
      );
    fx = await withServer({ sliceMb: 0.02, oplogFlushSeconds: 0.2 });
    browser = await chromium.launch({
      executablePath: process.env.TIDEMARK_CHROMIUM ?? "/usr/bin/chromium",
      args: ["--no-sandbox"],
    });
  });

  afterAll(async () => {
    source?.emulator.faults.clear();
    await agent?.stop();
    await browser?.close();
    await fx?.close();
    await source?.close();
  });

  async function newPage(options: BrowserContextOptions = {}): Promise<Page> {
    const context = await browser.newContext(options);
    const page = await context.newPage();
    pages.push(page);
    page.on("request", (request) =>
      requests.push({
        url: request.url(),
        method: request.method(),
        authorization: request.headers().authorization,
        postData: request.postData(),
      }),
    );
    // CSP violations and script errors both end up here.
    page.on("console", (message) => {
      if (message.type() === "error") problems.push(message.text());
    });
    page.on("pageerror", (error) => problems.push(error.message));
    return page;
  }

  async function signIn(page: Page, key = ADMIN_KEY): Promise<void> {
    await page.goto(`${fx.server.url}/`);
    await page.getByLabel("API key").fill(key);
    await page.getByRole("button", { name: "Sign in" }).click();
  }

  const card = (page: Page, name: string): Locator =>
    page.locator("article.deployment").filter({ has: page.getByRole("heading", { name, exact: true }) });
  const storedKey = (page: Page) => page.evaluate<string | null>("sessionStorage.getItem('tidemark.apiKey')");

  async function create(name: string): Promise<{ id: string; agentKey: string }> {
    const created = await fx.api<{ id: string; agentKey: string }>("POST", "/api/v1/deployments", { name });
    expect(created.status).toBe(201);
    return created.body;
  }

  it("serves the page and its assets with their types, no-cache and a strict CSP, without a key", async () => {
    for (const [path, type] of [
      ["/", "text/html"],
      ["/assets/app.js", "text/javascript"],
      ["/assets/app.css", "text/css"],
    ]) {
      const response = await fetch(`${fx.server.url}${path}`);
      expect(response.status, path).toBe(200);
      expect(response.headers.get("content-type"), path).toContain(type);
      expect(response.headers.get("cache-control"), path).toBe("no-cache");
      const csp = response.headers.get("content-security-policy") ?? "";
      expect(csp).toContain("default-src 'none'");
      expect(csp).toContain("script-src 'self'");
      expect(csp).not.toContain("unsafe-inline");
    }
    const html = await (await fetch(`${fx.server.url}/`)).text();
    expect(html).toContain('src="/assets/app.js"');
    expect(html).toMatch(/<form[^>]*method="post"/);
    // The key input has no name, so no form submission could ever carry it.
    expect(html).toMatch(/<input\s+id="api-key"\s+type="password"(?![^>]*\sname=)[^>]*>/);
    expect((await fetch(`${fx.server.url}/assets/nope.js`)).status).toBe(404);
    // Found from the compiled module's place as well as from src/.
    expect(backupPageDir()).toBe(join(ROOT, "web", "backup"));
    const built = pathToFileURL(join(ROOT, "dist", "src", "server", "routes", "backupPage.js")).href;
    expect(backupPageDir(built)).toBe(join(ROOT, "web", "backup"));
  });

  it("signs in, shows the empty state, then refreshes itself as deployments appear and start", async () => {
    const page = await newPage();
    await signIn(page);
    const empty = page.locator("#empty");
    await expect.poll(() => empty.isVisible(), UPDATE).toBe(true);
    expect(await empty.textContent()).toContain("tidemark deployments add NAME");
    expect(await storedKey(page)).toBe(ADMIN_KEY);
    expect(await page.getByLabel("API key").isVisible()).toBe(false);
    // A reload would lose this.
    await page.evaluate("window.marker = 42");

    await create("alpha");
    const alpha = card(page, "alpha");
    await expect.poll(() => alpha.count(), UPDATE).toBe(1);
    expect(await empty.isVisible()).toBe(false);
    expect(await alpha.locator(".state").textContent()).toBe("inactive");
    expect(await alpha.locator(".phase-value").textContent()).toBe("not started");
    expect(await alpha.locator(".phase-name").allTextContents()).toEqual(SEED_PHASES);

    expect((await fx.api("POST", "/api/v1/deployments/alpha/backup/start")).status).toBe(200);
    await expect.poll(() => alpha.locator(".state").textContent(), UPDATE).toBe("initial sync");
    expect(await alpha.locator(".phase-value").textContent()).toBe("starting");
    expect(await alpha.locator('.phase-row[data-phase="starting"]').getAttribute("data-status")).toBe(
      "running",
    );
    expect(await page.evaluate("window.marker")).toBe(42);

    // The key survives a reload of the tab (sessionStorage), without signing in again.
    await page.reload();
    await expect.poll(() => card(page, "alpha").count(), UPDATE).toBe(1);
    expect(await page.getByLabel("API key").isVisible()).toBe(false);
  });

  it("refuses a wrong key with a clear message and shows no deployment data", async () => {
    const page = await newPage();
    const statuses: number[] = [];
    page.on("response", (response) => {
      if (response.url().includes("/api/v1/")) statuses.push(response.status());
    });
    await signIn(page, "wrong-key-0123456789");
    const error = page.locator("#sign-in-error");
    await expect.poll(() => error.isVisible(), UPDATE).toBe(true);
    expect(await error.textContent()).toMatch(/wrong key/i);
    expect(await error.getAttribute("role")).toBe("alert");
    expect(statuses).toEqual([401]);
    expect(await page.locator("#dashboard").isVisible()).toBe(false);
    expect(await page.locator("article.deployment").count()).toBe(0);
    expect(await page.content()).not.toContain("alpha");
    expect(await storedKey(page)).toBeNull();
    // Still there to try again.
    expect(await page.getByLabel("API key").isVisible()).toBe(true);
  });

  it("shows a deployment that needs a resync, and a daemon error, prominently", async () => {
    const gappy = await create("gappy");
    await fx.api("POST", "/api/v1/deployments/gappy/backup/start");
    const gap = await fetch(`${fx.server.url}/api/v1/agent/deployments/${gappy.id}/oplog-gap`, {
      method: "POST",
      headers: { authorization: `Bearer ${gappy.agentKey}`, "content-type": "application/json" },
      body: JSON.stringify({ resumeTs: { t: 1, i: 1 }, message: "resume point 1:1 rolled off the oplog" }),
    });
    expect(gap.status).toBe(200);

    const page = await newPage();
    // No real deployment can be made to fail in the daemon cheaply: add the error to the real
    // API answer. The text is markup on purpose, to show it is printed, never interpreted.
    const daemonError = `unknown oplog entry <img src=x onerror="document.title='pwned'"> in alpha`;
    await page.route("**/api/v1/deployments", async (route) => {
      const response = await route.fetch();
      const body = (await response.json()) as { deployments: DeploymentView[] };
      for (const d of body.deployments) if (d.name === "alpha") d.daemon.error = daemonError;
      await route.fulfill({ response, json: body });
    });
    await signIn(page);

    const gappyCard = card(page, "gappy");
    await expect.poll(() => gappyCard.count(), UPDATE).toBe(1);
    expect(await gappyCard.locator(".state").textContent()).toBe("resync required");
    const resyncAlert = gappyCard.getByRole("alert");
    expect(await resyncAlert.isVisible()).toBe(true);
    expect(await resyncAlert.textContent()).toContain("Resync required");
    expect(await resyncAlert.textContent()).toContain("resume point 1:1 rolled off the oplog");
    expect(await resyncAlert.textContent()).toContain("tidemark backup resync gappy");

    const alphaAlert = card(page, "alpha").getByRole("alert");
    expect(await alphaAlert.isVisible()).toBe(true);
    expect(await alphaAlert.textContent()).toContain(daemonError);
    expect(await card(page, "alpha").locator("img").count()).toBe(0);
    expect(await page.title()).not.toBe("pwned");
    expect(await card(page, "alpha").getAttribute("class")).toContain("has-problem");
  });

  it("follows a real backup through its phases to active, with bars matching the API", async () => {
    const page = await newPage();
    const { id, agentKey } = await create("live");
    expect((await fx.api("POST", "/api/v1/deployments/live/backup/start")).status).toBe(200);
    await signIn(page);
    const live = card(page, "live");
    await expect.poll(() => live.locator(".phase-value").textContent(), UPDATE).toBe("starting");

    // Slow replies make the clone last several of the page's polls, so it must show transferring.
    source.emulator.faults.delayReplies(150);
    agent = startTestAgent({
      serverUrl: fx.server.url,
      agentKey,
      deploymentId: id,
      sourceUri: source.emulator.uri,
      cloneParallelism: 2,
      cloneBatchSize: 20,
    });

    const seen: string[] = [];
    const watchUntil = async (what: string, done: () => Promise<boolean>) => {
      const deadline = Date.now() + 30_000;
      const sample = async () => {
        const phase = await live.locator(".phase-value").textContent();
        if (phase && seen.at(-1) !== phase) seen.push(phase);
      };
      while (true) {
        await sample();
        if (await done()) return sample();
        if (await live.getByRole("alert").isVisible()) {
          throw new Error(`the page shows an error: ${await live.getByRole("alert").textContent()}`);
        }
        if (Date.now() > deadline)
          throw new Error(`${what} not shown in time; phases seen: ${seen.join(", ")}`);
        await page.waitForTimeout(100);
      }
    };
    await watchUntil("transferring", async () => seen.at(-1) === "transferring");
    const transferring = live.locator('.phase-row[data-phase="transferring"]');
    expect(await transferring.getAttribute("data-status")).toBe("running");
    expect(await live.locator(".state").textContent()).toBe("initial sync");
    // Writes during the clone, so there is an oplog to receive and apply.
    const customers = source.client.db("shop").collection<AnyDoc>("customers");
    for (let i = 0; i < 5; i++) await customers.updateOne({ _id: i * 50 }, { $set: { touched: true } });
    source.emulator.faults.delayReplies(0);
    await watchUntil("active", async () => (await live.getAttribute("data-state")) === "active");

    if (process.env.TIDEMARK_TEST_VERBOSE) process.stderr.write(`phases seen: ${seen.join(", ")}\n`);
    expect(seen[0]).toBe("starting");
    expect(seen.at(-1)).toBe("complete");
    const order = seen.map((phase) => SEED_PHASES.indexOf(phase));
    expect(order.every((index) => index >= 0)).toBe(true);
    expect(order).toEqual([...order].sort((a, b) => a - b));
    expect(await live.locator(".state").textContent()).toBe("active");
    expect(
      await live.locator(".phase-row").evaluateAll((rows) => rows.map((row) => row.dataset.status)),
    ).toEqual(PHASES.map(() => "done"));

    // Head time, lag and the last oplog received come from the head database and the oplog store.
    await expect.poll(() => live.locator('[data-fact="last-oplog"] dd').textContent(), UPDATE).toMatch(/ago/);
    expect(await live.locator('[data-fact="head-time"] dd').textContent()).not.toBe("none yet");
    expect(await live.locator('[data-fact="lag"] dd').textContent()).toMatch(/^\d+ s$|min|h/);
    // The schedule takes a first snapshot once the job is active; the page shows it.
    await expect
      .poll(() => live.locator('[data-fact="last-snapshot"] dd').textContent(), { timeout: 30_000 })
      .toMatch(/ ago .*, blockstore$/);
    const view = (await fx.api<DeploymentView>("GET", "/api/v1/deployments/live")).body;
    expect(view.lastSnapshot?.storeKind).toBe("blockstore");
    // From that snapshot on, every point can be restored: the page shows the window.
    expect(view.restorable?.from).toBe(view.lastSnapshot?.wallTime);
    await expect
      .poll(() => live.locator('[data-fact="restorable"] dd').textContent(), UPDATE)
      .toContain(`${view.lastSnapshot!.wallTime} → `);
    expect(view.oplog.lastReceivedAt).not.toBeNull();
    expect(Date.parse(view.oplog.lastReceivedAt!)).toBeLessThanOrEqual(Date.now());

    // Every bar carries the API's done/total (compared until one poll of the page and one API
    // read agree, since continuous backup keeps moving the oplog figures).
    const barsMatchApi = async () => {
      const api = (await fx.api<DeploymentView>("GET", "/api/v1/deployments/live")).body.phases;
      const bars = await live.getByRole("progressbar").evaluateAll((nodes) =>
        nodes.map((node) => ({
          now: node.getAttribute("aria-valuenow"),
          max: node.getAttribute("aria-valuemax"),
          min: node.getAttribute("aria-valuemin"),
          label: node.getAttribute("aria-labelledby"),
        })),
      );
      if (bars.length !== api.length) return `bars ${bars.length}, phases ${api.length}`;
      const mismatches = api.flatMap((phase, i) => {
        const bar = bars[i];
        const expected =
          phase.total === null
            ? { now: "1", max: "1" }
            : { now: String(phase.done), max: String(phase.total) };
        return bar.now === expected.now && bar.max === expected.max && bar.min === "0" && bar.label
          ? []
          : [`${phase.name}: ${JSON.stringify(bar)} vs ${JSON.stringify(expected)}`];
      });
      return mismatches.join("; ");
    };
    await expect.poll(barsMatchApi, { timeout: 15_000, interval: 250 }).toBe("");
    const withTotals = view.phases.filter((phase) => phase.total !== null && phase.total > 0);
    expect(withTotals.map((phase) => phase.name)).toEqual(
      expect.arrayContaining(["transferring", "building", "applying_oplogs", "creating_indexes"]),
    );
    // Each phase's amounts in words, in the phase's own unit.
    const detail = (phase: string) =>
      live.locator(`.phase-row[data-phase="${phase}"] .phase-detail`).textContent();
    const indexes = view.phases.find((phase) => phase.name === "creating_indexes")!;
    expect(await detail("creating_indexes")).toBe(`${indexes.total} of ${indexes.total} indexes`);
    expect(await detail("fetching_missing_documents")).toMatch(
      /^no missing documents$|^\d+ of \d+ missing documents$/,
    );
    expect(await detail("building")).toMatch(/^\d+ of \d+ slices$/);
  }, 60_000);

  it("stays readable on a narrow window", async () => {
    const page = await newPage({ viewport: { width: 360, height: 740 } });
    await signIn(page);
    await expect.poll(() => card(page, "live").count(), UPDATE).toBe(1);
    const overflow = await page.evaluate<number>(
      "document.documentElement.scrollWidth - document.documentElement.clientWidth",
    );
    expect(overflow).toBeLessThanOrEqual(0);
    const bar = await card(page, "live").getByRole("progressbar").first().boundingBox();
    expect(bar!.width).toBeGreaterThan(200);
  });

  it("signs out: the key leaves sessionStorage and the data leaves the page", async () => {
    const page = await newPage();
    await signIn(page);
    await expect.poll(() => card(page, "alpha").count(), UPDATE).toBe(1);
    await page.getByRole("button", { name: "Sign out" }).click();
    expect(await storedKey(page)).toBeNull();
    expect(await page.getByLabel("API key").isVisible()).toBe(true);
    expect(await page.locator("article.deployment").count()).toBe(0);
    // No poll brings it back.
    await page.waitForTimeout(2500);
    expect(await page.locator("article.deployment").count()).toBe(0);
    await page.reload();
    expect(await page.getByLabel("API key").isVisible()).toBe(true);
    expect(await page.locator("article.deployment").count()).toBe(0);
  });

  it("never sends the key without JavaScript", async () => {
    const page = await newPage({ javaScriptEnabled: false });
    await page.goto(`${fx.server.url}/`);
    await page.getByLabel("API key").fill(ADMIN_KEY);
    const refused = page.waitForEvent("console", (message) => message.text().includes("form-action"));
    // noWaitAfter: the submission is refused by the CSP, so the navigation it schedules never ends.
    await page.getByRole("button", { name: "Sign in" }).click({ noWaitAfter: true });
    await refused;
    expect(page.url()).toBe(`${fx.server.url}/`);
  });

  it("never put the key in a URL or a request body; API calls carried it as a bearer header", () => {
    expect(requests.length).toBeGreaterThan(10);
    for (const request of requests) {
      expect(request.url).not.toContain(ADMIN_KEY);
      expect(request.postData ?? "").not.toContain(ADMIN_KEY);
    }
    for (const page of pages) expect(page.url()).not.toContain(ADMIN_KEY);
    const apiCalls = requests.filter((request) => new URL(request.url).pathname.startsWith("/api/"));
    expect(apiCalls.length).toBeGreaterThan(5);
    for (const call of apiCalls) expect(call.authorization).toMatch(/^Bearer /);
    expect(apiCalls.some((call) => call.authorization === `Bearer ${ADMIN_KEY}`)).toBe(true);
    // Nothing was ever submitted: the page only reads the API.
    expect(requests.filter((request) => request.method !== "GET")).toEqual([]);
  });

  it("ran without script errors or CSP violations", () => {
    // Expected: the refused submission without JavaScript, and the wrong key's 401.
    const expected = /form-action|status of 401/;
    expect(problems.filter((text) => !expected.test(text))).toEqual([]);
  });
});
