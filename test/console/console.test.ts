import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import path from "node:path";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TrackerService } from "../../gen/funnel/tracker/v1/tracker_pb.js";
import type { App } from "../../services/app.js";
import { defineQueue } from "../../services/core/jobs/queue.js";
import { launchChromium, withPage } from "../support/browser.js";
import { startPartnerServer, type PartnerServer } from "../support/partner-server.js";
import { postbackClients, type PostbackClients } from "../support/postback-clients.js";
import { ADMIN_TOKEN, eventually, startTestApp } from "../support/stores.js";

/** With CONSOLE_SCREENSHOTS=1 the run refreshes the pictures in docs/console.md. */
const SCREENSHOTS = process.env.CONSOLE_SCREENSHOTS === "1";
const IMAGES = path.resolve(import.meta.dirname, "../../docs/images");

/** A queue whose jobs always fail, dead-lettered at once: the Jobs page's material. */
const doomed = defineQueue<{ n: number }>("test.console-doomed", { retry: { limit: 0, delay: 1, backoff: false } });

const axeSource = readFile(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");

interface AxeViolation {
  readonly id: string;
  readonly impact: string | null;
  readonly help: string;
  readonly nodes: readonly { readonly target: readonly unknown[] }[];
}

describe("ops console in Chromium", () => {
  let app: App;
  let browser: Browser;
  let partner: PartnerServer;
  let api: PostbackClients;
  let consoleUrl: string;
  /** Problems the browser reported on any page: CSP refusals, uncaught errors. */
  const browserProblems: string[] = [];

  beforeAll(async () => {
    app = await startTestApp({ queues: [doomed as never], env: { POSTBACK_ALLOW_PRIVATE: "true", JOBS_POLL_SECONDS: "1" } });
    await app.jobs.work(doomed, async ({ n }) => {
      throw new Error(`job ${n} cannot be done`);
    });
    api = postbackClients(app.url);
    partner = await startPartnerServer();
    browser = await launchChromium();
    consoleUrl = `${app.url}/console/`;
  });

  afterAll(async () => {
    await browser?.close();
    await partner?.close();
    await app?.stop();
  });

  /** A fresh page that records what the browser refuses or throws. */
  async function open(name: string, body: (page: Page) => Promise<void>): Promise<void> {
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    try {
      await withPage(context, name, async (page) => {
        page.on("console", (message) => {
          if (message.type() === "error" && /Content Security Policy|Refused to/i.test(message.text())) browserProblems.push(`${name}: ${message.text()}`);
        });
        page.on("pageerror", (error) => browserProblems.push(`${name}: ${error.message}`));
        // Init scripts run through the DevTools protocol, outside the page's CSP.
        await page.addInitScript(
          `document.addEventListener("securitypolicyviolation", (event) => console.error("Refused by Content Security Policy: " + event.violatedDirective + " (" + event.blockedURI + ")"))`,
        );
        await body(page);
      });
    } finally {
      await context.close();
    }
  }

  async function signIn(page: Page, route = ""): Promise<void> {
    await page.goto(`${consoleUrl}#/${route}`);
    await page.getByLabel("Admin token").fill(ADMIN_TOKEN);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("navigation", { name: "Pages" }).waitFor();
  }

  /** axe-core on the page as it stands: no serious or critical violation. */
  async function expectAccessible(page: Page, what: string): Promise<void> {
    // Evaluated through the DevTools protocol, which the page's CSP does not govern.
    await page.evaluate(await axeSource);
    const violations = await page.evaluate<AxeViolation[]>(`axe.run(document, { resultTypes: ["violations"] }).then((result) => result.violations)`);
    const serious = violations.filter((v) => v.impact === "serious" || v.impact === "critical").map((v) => `${v.id} (${v.impact}): ${v.help} at ${v.nodes.map((n) => JSON.stringify(n.target)).join(", ")}`);
    expect(serious, `accessibility of ${what}`).toEqual([]);
  }

  async function screenshot(page: Page, name: string): Promise<void> {
    if (!SCREENSHOTS) return;
    await page.evaluate("scrollTo(0, 0)");
    await page.screenshot({ path: path.join(IMAGES, `console-${name}.png`) });
  }

  it("redirects / to the console, refuses a wrong token with a clear message and keeps the right one out of the URL", async () => {
    await open("console-sign-in", async (page) => {
      const answer = await page.goto(`${app.url}/`);
      expect(new URL(page.url()).pathname).toBe("/console/");
      expect(answer?.headers()["content-security-policy"]).toMatch(/script-src 'self'/);
      await page.getByLabel("Admin token").fill("not-the-token");
      await page.getByRole("button", { name: "Sign in" }).click();
      await expect.poll(() => page.getByRole("alert").textContent()).toMatch(/token was refused/);
      await screenshot(page, "sign-in");
      await expectAccessible(page, "the sign-in screen");
      await page.getByLabel("Admin token").fill(ADMIN_TOKEN);
      await page.keyboard.press("Enter");
      await page.getByRole("heading", { name: "Overview" }).waitFor();
      expect(page.url()).not.toContain(ADMIN_TOKEN);
      // By keyboard alone: the skip link comes first, then the pages.
      const focused = () => page.evaluate<string>("document.activeElement.textContent");
      await page.keyboard.press("Tab");
      expect(await focused()).toBe("Skip to content");
      await page.keyboard.press("Tab");
      expect(await focused()).toBe("Overview");
      await page.keyboard.press("Tab");
      expect(await focused()).toBe("Partners");
      await page.keyboard.press("Enter");
      await page.getByRole("heading", { name: "Partners" }).waitFor();
      expect(await page.evaluate(() => sessionStorage.getItem("funnel.console.token"))).toBe(ADMIN_TOKEN);
      // A token the server stops accepting (rotated) sends the tab back to sign in, saying why.
      await page.evaluate(() => sessionStorage.setItem("funnel.console.token", "rotated-away"));
      await page.reload();
      await expect.poll(() => page.getByRole("alert").textContent()).toMatch(/refused the token/);
      expect(await page.evaluate(() => sessionStorage.getItem("funnel.console.token"))).toBeNull();
    });
  });

  it("creates a partner through the form, the preview showing the rendered URL and a bad template's error at its field", async () => {
    await open("console-partner-form", async (page) => {
      await signIn(page, "partners/new");
      await page.getByLabel("Partner id").fill("acme");
      await page.getByLabel("Name", { exact: true }).fill("Acme Ads");
      const url = page.getByLabel("install URL template");
      await url.fill(`${partner.url}/install?click={stag_clickID}&ev={evnt}`);
      await expect.poll(() => page.locator("[data-field-error='install URL template']").textContent()).toMatch(/unknown placeholder \{evnt\}/);
      await url.fill(`${partner.url}/install?click={stag_clickID}&ev={event}`);
      await expect.poll(() => page.getByTestId("preview-url").textContent()).toBe(`${partner.url}/install?click=CLICK&ev=install`);
      await page.getByLabel("Sample click id").fill("abc-1");
      await expect.poll(() => page.getByTestId("preview-url").textContent()).toBe(`${partner.url}/install?click=abc-1&ev=install`);
      await page.getByLabel("First retry delay (ms)").fill("50");
      await page.getByLabel("Longest retry delay (ms)").fill("200");
      await screenshot(page, "partner-form");
      await expectAccessible(page, "the partner form");
      await page.getByRole("button", { name: "Create partner" }).click();
      await page.getByRole("heading", { name: "Partner acme" }).waitFor();
      const stored = (await api.partners.getPartner({ id: "acme" })).partner;
      expect(stored).toMatchObject({ name: "Acme Ads", install: { enabled: true, urlTemplate: `${partner.url}/install?click={stag_clickID}&ev={event}` } });
      await page.goto(`${consoleUrl}#/partners`);
      await page.getByRole("link", { name: "acme" }).waitFor();
      await expectAccessible(page, "the partner list");
    });
  });

  it("shows a postback that fails once with its two attempts, and replays it", async () => {
    partner.answer((_req, index) => (index === 0 ? { status: 503, body: "busy, try later" } : { status: 200, body: "ok" }));
    const recorded = await api.events.recordInstall({ stag: "acme_click-42", deviceId: "d-1" });
    expect(recorded.deliveryId).not.toBe("");
    await open("console-delivery", async (page) => {
      await signIn(page, `deliveries/postback/${recorded.deliveryId}`);
      const attempts = page.getByTestId("attempts").locator("li");
      await expect.poll(() => attempts.count(), { timeout: 20_000 }).toBe(2);
      expect(await attempts.nth(0).getAttribute("data-outcome")).toBe("retry");
      expect(await attempts.nth(0).textContent()).toContain("HTTP 503");
      expect(await attempts.nth(0).textContent()).toContain("busy, try later");
      expect(await attempts.nth(1).getAttribute("data-outcome")).toBe("delivered");
      await expect.poll(() => page.getByTestId("delivery-status").textContent()).toBe("delivered");
      await screenshot(page, "delivery");
      await expectAccessible(page, "a delivery's attempt timeline");
      await page.getByRole("button", { name: "Replay", exact: true }).click();
      const dialog = page.getByRole("dialog", { name: "Replay this postback?" });
      await dialog.waitFor();
      await dialog.getByRole("button", { name: "Replay 1 postback" }).click();
      await expect.poll(() => page.getByRole("status").filter({ hasText: "Replayed" }).textContent()).toContain("Replayed 1 postback");
      await expect.poll(() => attempts.count(), { timeout: 20_000 }).toBe(3);
      expect(partner.received("/install")).toHaveLength(3);
      // From the filtered list: tick it, replay the selection after a dialog that counts it.
      await page.goto(`${consoleUrl}#/deliveries?partner=acme`);
      await page.getByLabel(`Select postback ${recorded.deliveryId}`).check();
      await expectAccessible(page, "the delivery list");
      await page.getByRole("button", { name: "Replay selected (1)" }).click();
      const selection = page.getByRole("dialog", { name: "Replay 1 postback?" });
      await selection.getByRole("button", { name: "Replay 1" }).click();
      await expect.poll(() => page.getByRole("status").filter({ hasText: "Replayed" }).textContent()).toContain("Replayed 1 postback");
      await eventually(async () => (partner.received("/install").length === 4 ? true : undefined), 20_000, "the fourth request");
    });
  });

  it("imports a CSV after a dry run that lists what it would change", async () => {
    const csv = ["partner_id,name,enabled,install_enabled,install_url", "beta,Beta,true,true,https://b.example/i?c={stag_clickID}", "gamma,Gamma,false,true,https://g.example/{stag}"].join("\n");
    await open("console-import", async (page) => {
      await signIn(page, "partners/import");
      await page.getByLabel("CSV text").fill(csv);
      await page.getByRole("button", { name: "Dry run" }).click();
      const report = page.getByTestId("import-report");
      await expect.poll(() => report.locator("[data-kind='created']").textContent()).toMatch(/^2 created \(beta, gamma\)/);
      expect(await report.locator("[data-kind='unchanged']").textContent()).toMatch(/^0 unchanged/);
      expect((await api.partners.listPartners({})).partners.map((p) => p.id)).toEqual(["acme"]);
      await screenshot(page, "import");
      await expectAccessible(page, "the import page");
      await page.getByRole("button", { name: "Apply import" }).click();
      await page.getByRole("heading", { name: "Applied" }).waitFor();
      expect(await page.getByLabel(/Imported/).getAttribute("value")).toBe("2");
      expect((await api.partners.listPartners({})).partners.map((p) => p.id)).toEqual(["acme", "beta", "gamma"]);
    });
  });

  it("draws the overview charts from the server's time series", async () => {
    await open("console-overview", async (page) => {
      await signIn(page);
      const chart = page.locator("figure.chart", { hasText: "Postback attempts by outcome" });
      await eventually(
        async () => {
          const total = Number(await chart.getAttribute("data-total"));
          if (total >= 3) return total;
          await page.getByRole("button", { name: "Last day" }).click();
          await page.getByRole("button", { name: "Last hour" }).click();
          return undefined;
        },
        30_000,
        "the postback attempts chart to count the three attempts",
      );
      // The canvas has pixels of more than one colour: something was drawn.
      // (In-page code as text: the test files are typed without the DOM library.)
      const colours = await page.evaluate<number>(`(() => {
        const figure = [...document.querySelectorAll("figure.chart")].find((f) => f.textContent.includes("Postback attempts by outcome"));
        const canvas = figure.querySelector("canvas");
        const { data } = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height);
        const seen = new Set();
        for (let i = 0; i < data.length; i += 4) seen.add(data[i] * 16777216 + data[i + 1] * 65536 + data[i + 2] * 256 + data[i + 3]);
        return seen.size;
      })()`);
      expect(colours).toBeGreaterThan(2);
      expect(Number(await page.locator("figure.chart", { hasText: "Funnel events by outcome" }).getAttribute("data-total"))).toBeGreaterThanOrEqual(1);
      await screenshot(page, "overview");
      await expectAccessible(page, "the overview");
    });
  });

  it("shows a failed job with its error, retries it, and redrives its dead letters, each after a confirmation", async () => {
    const id = await app.jobs.send(doomed, { n: 7 });
    await eventually(async () => ((await app.jobs.list(doomed.name, "failed", 10)).some((job) => job.id === id) ? true : undefined), 20_000, "the job to fail");
    await open("console-jobs", async (page) => {
      await signIn(page, `jobs?queue=${doomed.name}&state=failed`);
      const row = page.getByRole("row").filter({ hasText: "job 7 cannot be done" });
      await row.waitFor();
      await screenshot(page, "jobs");
      await expectAccessible(page, "the jobs page");
      await row.getByRole("checkbox").check();
      await page.getByRole("button", { name: "Retry selected (1)" }).click();
      await page.getByRole("dialog", { name: "Retry 1 job?" }).getByRole("button", { name: "Retry 1" }).click();
      await expect.poll(() => page.getByRole("status").filter({ hasText: "Retried" }).textContent()).toBe("Retried 1 job.");
      await page.goto(`${consoleUrl}#/jobs/${id}`);
      await page.getByRole("heading", { name: "Error" }).waitFor();
      expect(await page.locator("pre.error-text").textContent()).toContain("job 7 cannot be done");
      await expectAccessible(page, "a job");
      await page.goto(`${consoleUrl}#/jobs?queue=${doomed.name}.dead&state=created`);
      await expect.poll(() => page.getByRole("row").filter({ hasText: `${doomed.name}.dead` }).count()).toBeGreaterThan(1);
      await page.getByRole("button", { name: "Redrive all dead letters" }).click();
      await page.getByRole("dialog").getByRole("button", { name: "Go back" }).click();
      await page.goto(`${consoleUrl}#/jobs?queue=${doomed.name}&state=failed`);
      await page.getByRole("button", { name: "Redrive all dead letters" }).click();
      await page.getByRole("dialog").getByRole("button", { name: "Redrive all" }).click();
      await expect.poll(() => page.getByRole("status").filter({ hasText: "Redrove" }).textContent()).toMatch(/^Redrove [1-9]\d* dead letters?\.$/);
    });
  });

  it("shows trackers, jobs, ingest quality and Seen without accessibility or CSP problems", async () => {
    await open("console-other-pages", async (page) => {
      await signIn(page, "trackers");
      await page.getByLabel("New tracker's value").fill("campaign-7");
      await page.getByRole("button", { name: "Create tracker" }).click();
      await page.getByRole("cell", { name: "campaign-7" }).waitFor();
      await expectAccessible(page, "the tracker list");
      await page.getByRole("status").getByRole("link").click();
      await page.locator("figure.chart", { hasText: "Hits per day" }).waitFor();
      await expectAccessible(page, "a tracker");
      for (const [route, heading] of [
        ["jobs", "Jobs"],
        ["quality", "Ingest quality"],
        ["seen", "Seen"],
        ["seen/new", "New integration"],
      ] as const) {
        await page.goto(`${consoleUrl}#/${route}`);
        await page.getByRole("heading", { name: heading, exact: true }).waitFor();
        await page.waitForLoadState("networkidle");
        await expectAccessible(page, `the ${route} page`);
      }
    });
    expect(browserProblems).toEqual([]);
  });

  it("pages the tracker list back and forth, and filters and ticks postbacks through the filter bar", async () => {
    const trackers = createClient(TrackerService, createConnectTransport({ baseUrl: app.url, httpVersion: "1.1", interceptors: [(next) => (req) => (req.header.set("authorization", `Bearer ${ADMIN_TOKEN}`), next(req))] }));
    const before = (await trackers.listTrackers({ pageSize: 1000 })).trackers.length;
    const created: string[] = [];
    for (let i = 0; i < 51; i++) created.push((await trackers.createTracker({ value: `paged-${i}` })).tracker?.uuid ?? "");
    const onSecondPage = before + created.length - 50;
    // The lists refresh on a timer; give each change a few of its rounds.
    const POLL = { timeout: 10_000 };
    await open("console-pages", async (page) => {
      await signIn(page, "trackers");
      const rows = page.getByRole("table", { name: "Trackers, oldest first" }).locator("tbody tr");
      await expect.poll(() => rows.count(), POLL).toBe(50);
      const previous = page.getByRole("button", { name: "Previous page" });
      const next = page.getByRole("button", { name: "Next page" });
      expect(await previous.isDisabled()).toBe(true);
      await next.click();
      await expect.poll(() => rows.count(), POLL).toBe(onSecondPage);
      expect(await rows.last().textContent()).toContain(created.at(-1));
      expect(await page.getByText("Page 2").count()).toBe(1);
      expect(await next.isDisabled()).toBe(true);
      await previous.click();
      await expect.poll(() => rows.count(), POLL).toBe(50);
      expect(await page.getByText("Page 1").count()).toBe(1);

      await page.goto(`${consoleUrl}#/deliveries`);
      const postbacks = page.getByRole("table", { name: "Postbacks, newest first" }).locator("tbody tr");
      await expect.poll(() => postbacks.count(), POLL).toBeGreaterThan(0);
      const filters = page.getByRole("form", { name: "Filter postbacks" });
      await filters.getByLabel("Status").selectOption({ label: "dead" });
      await expect.poll(() => page.url(), POLL).toMatch(/status=4/);
      await page.getByText("No postback matches.").waitFor();
      await filters.getByLabel("Status").selectOption({ label: "delivered" });
      // Typed at once, while the list re-renders for the new status: the box keeps it.
      await filters.getByLabel("Partner id").fill("acme");
      await filters.getByLabel("Partner id").press("Enter");
      await expect.poll(() => page.url(), POLL).toMatch(/partner=acme/);
      await expect.poll(() => postbacks.count(), POLL).toBe(1);
      const box = postbacks.first().getByRole("checkbox");
      await box.check();
      expect(await page.getByRole("button", { name: "Replay selected (1)" }).isEnabled()).toBe(true);
      await box.uncheck();
      expect(await page.getByRole("button", { name: "Replay selected (0)" }).isDisabled()).toBe(true);
      await expectAccessible(page, "a filtered delivery list");

      await page.getByRole("link", { name: "Seen api deliveries" }).click();
      await page.getByRole("form", { name: "Filter Seen deliveries" }).waitFor();
      await page.getByText("No delivery matches.").waitFor();
      await expectAccessible(page, "the Seen delivery list");
    });
    expect(browserProblems).toEqual([]);
  });
});
