import { randomUUID } from "node:crypto";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { build } from "esbuild";
import { chromium, type Browser, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { App } from "../../services/app.js";
import { chromiumPath, launchChromium, withPage } from "../support/browser.js";
import { callIngest, clickhouseRows, drained } from "../support/ingest.js";
import { freePort } from "../support/ports.js";
import { ADMIN_TOKEN, eventually, startTestApp } from "../support/stores.js";

/** What the tests call on `window.funnel` (the SDK's own types need the DOM, which the test's tsconfig leaves out). */
interface PageFunnel {
  track(type: string, fields: Record<string, unknown>): string;
  flush(): Promise<void>;
  stats(): { queued: number; accepted: number; duplicates: number; rejected: number; dropped: number; retries: number };
  readonly sessionId: string;
  readonly deviceId: string;
  readonly seen: {
    mark(tag: string, id: string): Promise<{ created: boolean; firstSeenAt: Date }>;
    isSeen(tag: string, id: string): Promise<boolean>;
    list(options?: { tag?: string }): AsyncGenerator<{ tag: string; id: string }>;
  };
}
type Window = { funnel: PageFunnel; rejections: unknown[]; location: { href: string }; history: { pushState(state: unknown, unused: string, url: string): void } };

/** A page of another origin than the API, loading the SDK bundle and starting it with the options in its query. */
async function startPageServer(apiUrl: () => string): Promise<{ server: Server; origin: string }> {
  const bundle = await build({ entryPoints: ["clients/web/src/index.ts"], bundle: true, format: "esm", platform: "browser", write: false });
  const sdk = bundle.outputFiles[0]?.text ?? "";
  const server = createServer((req, res) => {
    const path = new URL(req.url ?? "/", "http://page").pathname;
    if (path === "/sdk.js") {
      res.writeHead(200, { "content-type": "text/javascript" }).end(sdk);
      return;
    }
    res.writeHead(200, { "content-type": "text/html; charset=utf-8" }).end(`<!doctype html><meta charset="utf-8"><title>shop</title>
<script type="module">
import { createFunnel } from "/sdk.js";
const options = JSON.parse(new URLSearchParams(location.search).get("options") ?? "{}");
// A token that takes its time holds a batch between its start and its request.
const delay = options.tokenDelayMs;
if (delay !== undefined) options.token = () => new Promise((resolve) => setTimeout(() => resolve(null), delay));
window.rejections = [];
window.funnel = createFunnel({ baseUrl: ${JSON.stringify(apiUrl())}, onReject: (r) => window.rejections.push(r), ...options });
</script>`);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { server, origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

describe("web SDK in Chromium against the real server", () => {
  let app: App;
  let browser: Browser;
  let pages: { server: Server; origin: string };
  let env: Record<string, string>;

  beforeAll(async () => {
    const port = await freePort();
    pages = await startPageServer(() => `http://127.0.0.1:${port}`);
    // A fixed port, so the restarted server answers where the pages keep sending.
    // Fewer events per batch than the SDK sends at most (100), to see it split what the server refuses whole.
    env = { PORT: String(port), CORS_ALLOWED_ORIGINS: pages.origin, INGEST_MAX_BATCH_EVENTS: "50" };
    app = await startTestApp({ env });
    browser = await launchChromium();
  });
  afterAll(async () => {
    await browser?.close();
    await app?.stop();
    await new Promise((resolve) => pages?.server.close(resolve));
  });

  /** Opens the SDK page with `options` and waits for the SDK to start. */
  const open = async (page: Page, options: Record<string, unknown> = {}, path = "/shop"): Promise<void> => {
    await page.goto(`${pages.origin}${path}?options=${encodeURIComponent(JSON.stringify(options))}`);
    await page.waitForFunction(() => (globalThis as unknown as Partial<Window>).funnel !== undefined);
  };
  const track = (page: Page, count: number, label: string): Promise<string[]> =>
    page.evaluate(
      ([n, what]) => Array.from({ length: n }, (_, i) => (globalThis as unknown as Window).funnel.track("element_click", { element_type: `${what}-${i}`, page_type: "category" })),
      [count, label] as const,
    );
  const stats = (page: Page) => page.evaluate(() => (globalThis as unknown as Window).funnel.stats());
  const sessionOf = (page: Page) => page.evaluate(() => (globalThis as unknown as Window).funnel.sessionId);

  /** Gaps and out-of-order events the server has counted so far, over every type and day. */
  const quality = async (): Promise<{ gaps: number; outOfOrder: number }> => {
    const { body } = await callIngest(app, "GetQuality", {}, { authorization: `Bearer ${ADMIN_TOKEN}` });
    const rows = (body.rows ?? []) as { gaps?: string; outOfOrder?: string }[];
    return { gaps: rows.reduce((n, row) => n + Number(row.gaps ?? 0), 0), outOfOrder: rows.reduce((n, row) => n + Number(row.outOfOrder ?? 0), 0) };
  };

  /** How many rows each of `ids` has in ClickHouse's `element_click`, once all of them are there and the stream is drained. */
  const landed = async (ids: readonly string[]): Promise<Map<string, number>> => {
    const counts = async () => {
      const result = await app.clickhouse.client.query({
        query: `SELECT toString(event_id) AS id, count() AS n FROM ${app.clickhouse.database}.element_click WHERE toString(event_id) IN ({ids:Array(String)}) GROUP BY id`,
        query_params: { ids },
        format: "JSONEachRow",
      });
      return new Map((await result.json<{ id: string; n: string }>()).map(({ id, n }) => [id, Number(n)]));
    };
    await eventually(async () => ((await counts()).size === ids.length ? true : undefined), 30_000, `${ids.length} events in ClickHouse`);
    await drained(app);
    return counts();
  };
  const exactlyOnce = (ids: readonly string[]) => new Map(ids.map((id) => [id, 1]));

  it("keeps events in the browser while offline and delivers each exactly once when back, with no seq gap", async () => {
    const before = await quality();
    const context = await browser.newContext();
    await withPage(context, "web-sdk-offline", async (page) => {
      await open(page, { pageViews: false, flushIntervalMs: 100, retryInitialMs: 100, retryMaxMs: 400 });
      const online = await track(page, 5, "before");
      await page.evaluate(() => (globalThis as unknown as Window).funnel.flush());
      await context.setOffline(true);
      const offline = [...(await track(page, 12, "offline-a")), ...(await track(page, 13, "offline-b"))];
      await eventually(async () => ((await stats(page)).retries >= 2 ? true : undefined), 10_000, "retries while offline");
      // The queue is in localStorage, under the session's key, while nothing can be sent.
      const stored = await page.evaluate(() => JSON.parse(localStorage.getItem(`funnel:q:${(globalThis as unknown as Window).funnel.sessionId}`) ?? "[]") as { eventId: string; seq: number }[]);
      expect(stored.map((event) => event.eventId)).toEqual(offline);
      expect(stored.map((event) => event.seq)).toEqual(Array.from({ length: 25 }, (_, i) => i + 6));
      await context.setOffline(false);
      await page.evaluate(() => (globalThis as unknown as Window).funnel.flush());
      expect(await stats(page)).toMatchObject({ queued: 0, accepted: 30, rejected: 0, dropped: 0 });
      expect(await landed([...online, ...offline])).toEqual(exactlyOnce([...online, ...offline]));
    });
    await context.close();
    expect(await quality()).toEqual(before);
  });

  it("sends a batch cut short by leaving the page with keepalive, each event exactly once", async () => {
    const before = await quality();
    const context = await browser.newContext();
    await withPage(context, "web-sdk-unload", async (page) => {
      // 20 events start a batch (held by a slow token); the page is left before it is sent and before the next 10 are due.
      await open(page, { pageViews: false, batchSize: 20, flushIntervalMs: 60_000, tokenDelayMs: 5_000 });
      const ids = await page.evaluate(() => {
        const made = Array.from({ length: 30 }, (_, i) => (globalThis as unknown as Window).funnel.track("element_click", { element_type: `unload-${i}`, page_type: "category" }));
        (globalThis as unknown as Window).location.href = "about:blank";
        return made;
      });
      await page.waitForURL("about:blank");
      expect(await landed(ids)).toEqual(exactlyOnce(ids));
    });
    await context.close();
    expect(await quality()).toEqual(before);
  });

  it("sends what a closed page left queued from the next page of the site", async () => {
    const before = await quality();
    const context = await browser.newContext();
    const ids = await withPage(context, "web-sdk-closed", async (page) => {
      await open(page, { pageViews: false, flushIntervalMs: 60_000 });
      await context.setOffline(true);
      const made = await track(page, 7, "closed");
      return made;
    });
    await context.setOffline(false);
    await withPage(context, "web-sdk-reopened", async (page) => {
      await open(page, { pageViews: false, flushIntervalMs: 100 });
      expect(await landed(ids)).toEqual(exactlyOnce(ids));
      await eventually(async () => ((await stats(page)).queued === 0 ? true : undefined), 10_000, "the adopted queue to empty");
      expect(await page.evaluate(() => Object.keys(localStorage).filter((key) => key.startsWith("funnel:q:")))).toEqual([]);
    });
    await context.close();
    expect(await quality()).toEqual(before);
  });

  it("queues through a server restart and delivers each event exactly once afterwards", async () => {
    const before = await quality();
    const context = await browser.newContext();
    await withPage(context, "web-sdk-restart", async (page) => {
      await open(page, { pageViews: false, flushIntervalMs: 100, retryInitialMs: 100, retryMaxMs: 500 });
      const first = await track(page, 10, "up");
      await page.evaluate(() => (globalThis as unknown as Window).funnel.flush());
      await app.stop();
      const during = [...(await track(page, 10, "down-a")), ...(await track(page, 10, "down-b"))];
      await eventually(async () => ((await stats(page)).retries >= 2 ? true : undefined), 10_000, "retries while the server is down");
      app = await startTestApp({ env });
      await page.evaluate(() => (globalThis as unknown as Window).funnel.flush());
      expect(await stats(page)).toMatchObject({ queued: 0, accepted: 30 });
      expect(await landed([...first, ...during])).toEqual(exactlyOnce([...first, ...during]));
    });
    await context.close();
    expect(await quality()).toEqual(before);
  });

  it("drops the oldest events past the queue's bound, counts them, and the server counts them as gaps", async () => {
    const before = await quality();
    const context = await browser.newContext();
    await withPage(context, "web-sdk-bound", async (page) => {
      await open(page, { pageViews: false, maxQueue: 5, flushIntervalMs: 100, retryInitialMs: 100, retryMaxMs: 400 });
      await context.setOffline(true);
      const ids = await track(page, 8, "bounded");
      expect(await stats(page)).toMatchObject({ queued: 5, dropped: 3 });
      await context.setOffline(false);
      await page.evaluate(() => (globalThis as unknown as Window).funnel.flush());
      expect(await landed(ids.slice(3))).toEqual(exactlyOnce(ids.slice(3)));
    });
    await context.close();
    expect(await quality()).toEqual({ ...before, gaps: before.gaps + 3 });
  });

  it("reports a rejected event without retrying it and sends the rest", async () => {
    const context = await browser.newContext();
    await withPage(context, "web-sdk-reject", async (page) => {
      await open(page, { pageViews: false, flushIntervalMs: 100 });
      const [good, bad] = await page.evaluate(() => [
        (globalThis as unknown as Window).funnel.track("element_click", { element_type: "fine", page_type: "category" }),
        (globalThis as unknown as Window).funnel.track("element_click", { element_type: "", page_type: "category" }),
      ]);
      await page.evaluate(() => (globalThis as unknown as Window).funnel.flush());
      expect(await stats(page)).toMatchObject({ queued: 0, accepted: 1, rejected: 1, retries: 0 });
      expect(await page.evaluate(() => (globalThis as unknown as Window).rejections)).toEqual([{ eventId: bad, type: "element_click", message: expect.stringMatching(/^data\.element_type: /) as unknown }]);
      expect(await landed([good ?? ""])).toEqual(exactlyOnce([good ?? ""]));
    });
    await context.close();
  });

  it("splits a batch the server refuses whole until it fits, losing nothing", async () => {
    const before = await quality();
    const context = await browser.newContext();
    await withPage(context, "web-sdk-split", async (page) => {
      await open(page, { pageViews: false, flushIntervalMs: 100, retryInitialMs: 100, retryMaxMs: 400 });
      await context.setOffline(true);
      const ids = await track(page, 80, "split");
      await context.setOffline(false);
      await page.evaluate(() => (globalThis as unknown as Window).funnel.flush());
      expect(await stats(page)).toMatchObject({ queued: 0, accepted: 80, rejected: 0 });
      expect(await landed(ids)).toEqual(exactlyOnce(ids));
    });
    await context.close();
    expect(await quality()).toEqual(before);
  });

  it("tracks page views on load, route changes and unload, each start paired with its end", async () => {
    const context = await browser.newContext();
    const session = await withPage(context, "web-sdk-page-views", async (page) => {
      await open(page, { pageViews: "spa", flushIntervalMs: 100 }, "/movies");
      const id = await sessionOf(page);
      await page.evaluate(() => (globalThis as unknown as Window).history.pushState({}, "", "/movies/42?tab=cast"));
      await page.goto("about:blank");
      return id;
    });
    await context.close();
    await eventually(async () => ((await clickhouseRows(app, "page_view_end", `session_id = '${session}'`)).length === 2 ? true : undefined), 30_000, "two page_view_end");
    await drained(app);
    const starts = await clickhouseRows(app, "page_view_start", `session_id = '${session}'`);
    expect(starts.map((row) => row.page_type)).toEqual(["/movies", "/movies/42"]);
    const ends = await clickhouseRows(app, "page_view_end", `session_id = '${session}'`);
    expect(ends.map((row) => row.page_view_id)).toEqual(starts.map((row) => row.page_view_id));
    expect([...starts, ...ends].map((row) => Number(row.seq)).sort()).toEqual([1, 2, 3, 4]);
    const views = await clickhouseRows(app, "page_view", `page_view_id IN (${starts.map((row) => `'${String(row.page_view_id)}'`).join(", ")})`);
    expect(views.map((row) => [row.page_type, row.paired])).toEqual([
      ["/movies", true],
      ["/movies/42", true],
    ]);
  });

  it("lets the back-forward cache keep the page, and starts a new page view when it is restored", async () => {
    // playwright-core turns the cache off unless told not to.
    const cached = await chromium.launch({ executablePath: chromiumPath(), headless: true, args: ["--no-sandbox", "--disable-dev-shm-usage"], ignoreDefaultArgs: ["--disable-back-forward-cache"] });
    const context = await cached.newContext();
    const session = await withPage(context, "web-sdk-bfcache", async (page) => {
      await open(page, { flushIntervalMs: 100 }, "/catalog");
      const id = await sessionOf(page);
      await open(page, { pageViews: false }, "/elsewhere");
      // A page restored from the cache fires no load event.
      await page.goBack({ waitUntil: "commit" });
      await page.waitForFunction(() => (globalThis as unknown as Partial<Window>).funnel !== undefined);
      // The same SDK instance, so the page came back from the cache instead of loading again.
      expect(await sessionOf(page)).toBe(id);
      await page.evaluate(() => (globalThis as unknown as Window).funnel.flush());
      return id;
    });
    await cached.close();
    await eventually(async () => ((await clickhouseRows(app, "page_view_start", `session_id = '${session}'`)).length === 2 ? true : undefined), 30_000, "two page_view_start");
    await drained(app);
    expect((await clickhouseRows(app, "page_view_end", `session_id = '${session}'`)).length).toBeGreaterThanOrEqual(1);
  });

  it("sends the tracker pixel's cookie with events when asked, so they carry its id as anonymous_id", async () => {
    const context = await browser.newContext();
    const pixelId = randomUUID();
    await context.addCookies([{ name: "user_id", value: pixelId, url: app.url }]);
    const sent = async (options: Record<string, unknown>) =>
      withPage(context, "web-sdk-credentials", async (page) => {
        await open(page, { pageViews: false, flushIntervalMs: 100, ...options });
        const [id = ""] = await track(page, 1, "joined");
        await page.evaluate(() => (globalThis as unknown as Window).funnel.flush());
        await landed([id]);
        return (await clickhouseRows(app, "element_click", `event_id = '${id}'`))[0]?.anonymous_id;
      });
    expect(await sent({ credentials: true })).toBe(pixelId);
    expect(await sent({})).toBeNull();
    await context.close();
  });

  it("keeps anonymous Seen marks per browser profile, under a device id that survives reloads", async () => {
    const [first, second] = [await browser.newContext(), await browser.newContext()];
    const tag = "promotions";
    const id = `promo-${Date.now()}`;
    const firstDevice = await withPage(first, "web-sdk-seen-a", async (page) => {
      await open(page, { pageViews: false });
      expect(await page.evaluate(([t, i]) => (globalThis as unknown as Window).funnel.seen.mark(t, i).then((mark) => mark.created), [tag, id] as const)).toBe(true);
      expect(await page.evaluate(([t, i]) => (globalThis as unknown as Window).funnel.seen.mark(t, i).then((mark) => mark.created), [tag, id] as const)).toBe(false);
      expect(await page.evaluate(([t, i]) => (globalThis as unknown as Window).funnel.seen.isSeen(t, i), [tag, id] as const)).toBe(true);
      return page.evaluate(() => (globalThis as unknown as Window).funnel.deviceId);
    });
    await withPage(first, "web-sdk-seen-a-again", async (page) => {
      await open(page, { pageViews: false });
      expect(await page.evaluate(() => (globalThis as unknown as Window).funnel.deviceId)).toBe(firstDevice);
      const listed = await page.evaluate(async (t) => {
        const marks: { tag: string; id: string }[] = [];
        for await (const mark of (globalThis as unknown as Window).funnel.seen.list({ tag: t })) marks.push({ tag: mark.tag, id: mark.id });
        return marks;
      }, tag);
      expect(listed).toEqual([{ tag, id }]);
    });
    await withPage(second, "web-sdk-seen-b", async (page) => {
      await open(page, { pageViews: false });
      expect(await page.evaluate(() => (globalThis as unknown as Window).funnel.deviceId)).not.toBe(firstDevice);
      expect(await page.evaluate(([t, i]) => (globalThis as unknown as Window).funnel.seen.isSeen(t, i), [tag, id] as const)).toBe(false);
      expect(await page.evaluate(([t, i]) => (globalThis as unknown as Window).funnel.seen.mark(t, i).then((mark) => mark.created), [tag, id] as const)).toBe(true);
    });
    await Promise.all([first.close(), second.close()]);
  });

  it("sends a mark made offline from the next page when the first one was closed", async () => {
    const context = await browser.newContext();
    const id = `offline-${Date.now()}`;
    await withPage(context, "web-sdk-seen-offline", async (page) => {
      await open(page, { pageViews: false, retryInitialMs: 100, retryMaxMs: 400 });
      await context.setOffline(true);
      await page.evaluate((i) => void (globalThis as unknown as Window).funnel.seen.mark("promotions", i).catch(() => undefined), id);
      expect(await page.evaluate(() => localStorage.getItem("funnel:marks"))).toBe(JSON.stringify([["promotions", id]]));
    });
    await context.setOffline(false);
    await withPage(context, "web-sdk-seen-next", async (page) => {
      await open(page, { pageViews: false });
      await eventually(async () => ((await page.evaluate((i) => (globalThis as unknown as Window).funnel.seen.isSeen("promotions", i), id)) ? true : undefined), 10_000, "the mark");
      expect(await page.evaluate(() => localStorage.getItem("funnel:marks"))).toBe("[]");
    });
    await context.close();
  });
});
