// The dashboard in a real browser: Debian's Chromium, headless, driven by playwright-core (which
// never downloads a browser of its own), against `npm start` with its demo traffic. It checks
// what a person would see: the token handled as docs/dashboard.md says, a known metrics view
// drawn exactly (handed to the page in place of the mesh's answer), and the running mesh's own
// numbers — RPS on orders → payments, the service graph, the demo breaker tripped open. The
// screenshot is the run's artifact: test-results/dashboard.png.
//
// Without /usr/bin/chromium the whole file is skipped, loudly (npm test installs it where it
// runs as root with apt-get: scripts/test.mjs).
import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { chromium, type BrowserContext, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEV_ADMIN_TOKEN } from "../../scripts/workers.mjs";
import { startMesh, type RunningMesh } from "../e2e/mesh-process.mjs";
import { FIXTURE_EDGES, fixtureView } from "./metrics-fixture.ts";

const CHROMIUM = "/usr/bin/chromium";
const ARTIFACTS = resolve(import.meta.dirname, "..", "..", "test-results");
/** How long the page may take to show what the mesh did (reports flush within seconds). */
const SHOWS_WITHIN_MS = 60_000;
const COLORS = { good: "#1f9d55", warn: "#d98c00", bad: "#d64545", idle: "#9aa4b2" };

const hasChromium = existsSync(CHROMIUM);
if (!hasChromium) {
  console.warn(
    `\n⚠ ⚠ ⚠ test/browser SKIPPED: no Chromium at ${CHROMIUM}. Install Debian's package:\n` +
      "    sudo apt-get install -y --no-install-recommends chromium\n",
  );
}

let mesh: RunningMesh | undefined;
let context: BrowserContext | undefined;
let profile: string | undefined;

function running(): { mesh: RunningMesh; context: BrowserContext } {
  if (!mesh || !context) throw new Error("the mesh or the browser did not start (see beforeAll)");
  return { mesh, context };
}

const dashboardUrl = (fragment = "") =>
  `http://127.0.0.1:${running().mesh.policyPort}/dashboard${fragment}`;

/** A fresh tab (its own sessionStorage); `done` closes it and fails on anything the page threw. */
async function newPage(): Promise<{ page: Page; done: () => Promise<void> }> {
  const page = await running().context.newPage();
  const errors: string[] = [];
  page.on("pageerror", (error) => errors.push(error.message));
  const done = async () => {
    await page.close();
    expect(errors, "errors the page threw").toEqual([]);
  };
  return { page, done };
}

/** The texts the service graph drew (its SVG), node names and edge labels. */
async function graphTexts(page: Page): Promise<string[]> {
  return page.locator('[data-testid="service-graph"] svg text').allTextContents();
}

describe.skipIf(!hasChromium)("the dashboard in Chromium", () => {
  beforeAll(async () => {
    mesh = await startMesh({ preferredPort: 28787, traffic: true, rate: 10 });
    profile = mkdtempSync(join(tmpdir(), "meshwork-chromium-"));
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
      ],
      viewport: { width: 1280, height: 1100 },
    });
  });

  afterAll(async () => {
    await context?.close();
    await mesh?.stop();
    if (profile) rmSync(profile, { recursive: true, force: true });
  });

  it("asks for a token, says plainly when the admin API refuses one, and takes one from the fragment", async () => {
    const { page, done } = await newPage();
    await page.goto(dashboardUrl());
    await page.getByTestId("auth").waitFor({ state: "visible" });
    expect(await page.getByTestId("auth-message").textContent()).toContain("token");

    await page.fill("#token-input", "not-the-admin-token");
    await page.click('#token-form button[type="submit"]');
    await page.getByTestId("auth-message").filter({ hasText: "401" }).waitFor();
    expect(await page.getByTestId("auth-message").textContent()).toMatch(
      /did not accept this token \(401 unauthenticated\)/,
    );
    expect(await page.locator("#content").isHidden()).toBe(true);

    await page.goto(dashboardUrl(`#token=${DEV_ADMIN_TOKEN}`));
    await page.waitForSelector("#content", { state: "visible" });
    // The token left the address bar (and so the history), and stays in this tab only.
    expect(page.url()).toBe(dashboardUrl());
    expect(await page.evaluate(() => sessionStorage.getItem("meshwork.dashboard.token"))).toBe(
      DEV_ADMIN_TOKEN,
    );
    expect(await page.getByTestId("auth").isHidden()).toBe(true);
    await done();
  });

  it("draws a metrics view exactly: edges, health colours, the graph, breakers, splits, denials", async () => {
    const { page, done } = await newPage();
    // The mesh's /v1/status answers for real; /v1/metrics is the fixture.
    await page.route("**/v1/metrics?*", (route) =>
      route.fulfill({ json: fixtureView(Date.now()) }),
    );
    await page.goto(dashboardUrl(`#token=${DEV_ADMIN_TOKEN}`));
    await page.waitForSelector('[data-testid="edge-row"]');

    const rows = await page.locator('[data-testid="edge-row"]').evaluateAll((trs) =>
      trs.map((tr) => ({
        caller: tr.getAttribute("data-caller"),
        backend: tr.getAttribute("data-backend"),
        rps: Number(tr.getAttribute("data-rps")),
        health: tr.querySelectorAll("td")[5]?.className,
      })),
    );
    expect(rows).toEqual([
      { caller: "orders", backend: "payments-v1", rps: 4.5, health: "num good" },
      { caller: "unknown", backend: "echo-v1", rps: 2, health: "num warn" },
      { caller: "orders", backend: "payments-v2", rps: 0.5, health: "num bad" },
    ]);
    expect(rows.length).toBe(FIXTURE_EDGES.length);

    const texts = await graphTexts(page);
    for (const name of ["orders", "payments", "payments-v1", "payments-v2", "echo", "echo-v1"]) {
      expect(texts, name).toContain(name);
    }
    // echo-v2 is configured (50%) but had no calls: a grey edge at 0 rps.
    expect(texts).toContain("echo-v2");
    expect(texts).toContain("unknown (no identity)");
    expect(texts).toContain("5.00 rps"); // orders → payments
    expect(texts).toContain("0.00 rps"); // echo → echo-v2
    const strokes = await page
      .locator('[data-testid="service-graph"] svg path[stroke]')
      .evaluateAll((paths) => paths.map((p) => p.getAttribute("stroke")));
    for (const colour of Object.values(COLORS)) expect(strokes).toContain(colour);

    const breakers = await page
      .locator('[data-testid="breaker"]')
      .evaluateAll((lis) =>
        lis.map((li) => [li.getAttribute("data-backend"), li.getAttribute("data-state")]),
      );
    expect(breakers).toEqual([
      ["echo-v3", "open"],
      ["payments-v1", "closed"],
      ["payments-v2", "half-open"],
    ]);
    const open = page.locator('[data-testid="breaker"][data-backend="echo-v3"] .badge');
    expect(
      await open.evaluate((b) => b.ownerDocument.defaultView!.getComputedStyle(b).backgroundColor),
    ).toBe("rgb(214, 69, 69)");

    const split = page.locator('[data-testid="split-row"][data-backend="payments-v2"]');
    expect(await split.getAttribute("data-configured")).toBe("10");
    expect(await split.getAttribute("data-observed")).toBe("10");
    expect(await split.textContent()).toContain("10% / 10.0%");

    const denial = page.locator('[data-testid="denial"]');
    expect(await denial.count()).toBe(1);
    expect(await denial.getAttribute("data-caller")).toBe("reports");
    expect(await denial.getAttribute("data-code")).toBe("forbidden");

    // The config version and its propagation come from the mesh's own /v1/status.
    expect(await page.getByTestId("config-version").getAttribute("data-version")).toBe("1");
    await page.locator('#propagation[data-total]:not([data-total="0"])').waitFor();
    expect(await page.getByTestId("propagation").textContent()).toMatch(
      /^version 1 applied by \d+ of \d+ router isolates?$/,
    );
    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: join(ARTIFACTS, "dashboard-fixture.png"), fullPage: true });
    await done();
  });

  it("shows the running mesh: RPS on orders → payments, the service graph, the demo breaker open", async () => {
    const { mesh } = running();
    // The demo breaker on echo-v3: five failures in a row open it.
    for (let i = 0; i < 5; i++) {
      expect((await mesh.call("echo-v3", "/", { "x-echo-status": "500" })).status).toBe(500);
    }
    expect((await mesh.call("echo-v3", "/")).headers["x-mesh-error"]).toBe("circuit_open");

    const { page, done } = await newPage();
    await page.goto(dashboardUrl(`#token=${DEV_ADMIN_TOKEN}`));
    // The demo traffic: orders → payments, split between payments-v1 and payments-v2.
    await page.waitForSelector(
      '[data-testid="edge-row"][data-caller="orders"][data-destination="payments"]',
      { timeout: SHOWS_WITHIN_MS },
    );
    const demo = await page
      .locator('[data-testid="edge-row"][data-caller="orders"][data-destination="payments"]')
      .evaluateAll((trs) =>
        trs.map((tr) => [tr.getAttribute("data-backend"), Number(tr.getAttribute("data-rps"))]),
      );
    expect(demo.map(([backend]) => backend)).toContain("payments-v1");
    for (const [backend, rps] of demo) {
      expect(["payments-v1", "payments-v2"]).toContain(backend);
      expect(rps).toBeGreaterThan(0);
    }
    const texts = await graphTexts(page);
    expect(texts).toContain("orders");
    expect(texts).toContain("payments");
    // The orders → payments edge carries the RPS of its backends' rows (as the page rounds it).
    const total = demo.reduce((sum, [, rps]) => sum + Number(rps), 0);
    const shown =
      total >= 100 ? total.toFixed(0) : total >= 10 ? total.toFixed(1) : total.toFixed(2);
    expect(texts).toContain(`${shown} rps`);

    await page.waitForSelector(
      '[data-testid="breaker"][data-backend="echo-v3"][data-state="open"]',
      {
        timeout: SHOWS_WITHIN_MS,
      },
    );
    expect(await page.getByTestId("config-version").getAttribute("data-version")).toBe("1");
    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: join(ARTIFACTS, "dashboard.png"), fullPage: true });
    await done();
  });
});
