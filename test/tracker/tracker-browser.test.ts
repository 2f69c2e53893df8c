import { execFile } from "node:child_process";
import http from "node:http";
import https from "node:https";
import { mkdir, mkdtemp, readFile, writeFile } from "node:fs/promises";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { chromium, type Browser, type BrowserContext } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TrackerService } from "../../gen/funnel/tracker/v1/tracker_pb.js";
import type { App } from "../../services/app.js";
import { chromiumPath, launchChromium, withPage } from "../support/browser.js";
import { ADMIN_TOKEN, eventually, startTestApp } from "../support/stores.js";

/** The pixel's site and the site of the page that embeds it: two registrable domains, so the pixel is third-party. */
const PIXEL_HOST = "pixel.example";
const SHOP_HOST = "shop.example";
/** A site whose pixel answers on several subdomains, served by a second app with TRACKER_COOKIE_DOMAIN set to it. */
const SHARED_DOMAIN = "pixels.example";
/** The TLS proxy's address as the app sees it: its only trusted proxy. */
const PROXY_ADDRESS = "127.0.0.3";
/** Every name resolves to the test's servers; the test's own certificate is accepted. */
const BROWSER_FLAGS = ["--host-resolver-rules=MAP * 127.0.0.1", "--ignore-certificate-errors"];

/** A self-signed certificate for both names, made by openssl for this run only. */
async function selfSignedCertificate(): Promise<{ key: string; cert: string }> {
  const dir = await mkdtemp(join(tmpdir(), "funnel-tls-"));
  await promisify(execFile)("openssl", [
    "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1",
    "-keyout", join(dir, "key.pem"), "-out", join(dir, "cert.pem"),
    "-subj", `/CN=${PIXEL_HOST}`, "-addext", `subjectAltName=DNS:${PIXEL_HOST},DNS:${SHOP_HOST},DNS:*.${SHARED_DOMAIN}`,
  ]);
  return { key: await readFile(join(dir, "key.pem"), "utf8"), cert: await readFile(join(dir, "cert.pem"), "utf8") };
}

/**
 * Chromium with a profile of its own whose settings allow third-party cookies,
 * as a normal window of Chrome does by default. Playwright's contexts are
 * incognito-like, and this Chromium build blocks them there (and in a fresh
 * profile): the cookie would be refused whatever its attributes.
 */
async function profileAllowingThirdPartyCookies(): Promise<BrowserContext> {
  const profile = await mkdtemp(join(tmpdir(), "funnel-profile-"));
  await mkdir(join(profile, "Default"));
  await writeFile(join(profile, "Default", "Preferences"), JSON.stringify({ profile: { cookie_controls_mode: 0, block_third_party_cookies: false } }));
  return chromium.launchPersistentContext(profile, {
    executablePath: chromiumPath(),
    headless: true,
    args: ["--no-sandbox", "--disable-dev-shm-usage", ...BROWSER_FLAGS],
  });
}

/** The shop's page: one pixel `<img>`, whose load or error it writes to `window.pixel`. */
function shopPage(pixelUrl: string): string {
  return `<!doctype html><html><body>
<img id="pixel" alt="" src="${pixelUrl}">
<script>
  const img = document.getElementById("pixel");
  const done = (event) => { window.pixel = { event, width: img.naturalWidth, height: img.naturalHeight }; };
  if (img.complete) done(img.naturalWidth > 0 ? "load" : "error");
  img.addEventListener("load", () => done("load"));
  img.addEventListener("error", () => done("error"));
</script></body></html>`;
}

describe("the pixel in Chromium, over HTTPS, embedded by another site", () => {
  let app: App;
  let shared: App;
  let server: https.Server;
  let port: number;
  let browser: Browser;
  const trackers = () =>
    createClient(
      TrackerService,
      createConnectTransport({ baseUrl: app.url, httpVersion: "1.1", interceptors: [(next) => (req) => (req.header.set("authorization", `Bearer ${ADMIN_TOKEN}`), next(req))] }),
    );
  const userIds = async (trackerId: string, count: number): Promise<string[]> =>
    eventually(
      async () => {
        const result = await app.clickhouse.client.query({
          query: `SELECT toString(user_id) AS user_id FROM ${app.clickhouse.database}.tracker_events WHERE tracker_id = {id:UUID} ORDER BY date_time`,
          query_params: { id: trackerId },
          format: "JSONEachRow",
        });
        const rows = await result.json<{ user_id: string }>();
        return rows.length >= count ? rows.map((row) => row.user_id) : undefined;
      },
      10_000,
      `${count} hits in ClickHouse`,
    );
  /** Opens the shop's page in `context` and waits for its pixel to load or fail. */
  const visit = async (context: Parameters<typeof withPage>[0], name: string, query: string) =>
    withPage(context, name, async (page) => {
      await page.goto(`https://${SHOP_HOST}:${port}/?${query}`);
      await page.waitForFunction(() => (globalThis as { pixel?: unknown }).pixel !== undefined);
      return page.evaluate(() => (globalThis as unknown as { pixel: { event: string; width: number; height: number } }).pixel);
    });

  beforeAll(async () => {
    app = await startTestApp({ env: { TRUSTED_PROXIES: PROXY_ADDRESS } });
    shared = await startTestApp({ roles: ["api"], env: { TRUSTED_PROXIES: PROXY_ADDRESS, TRACKER_COOKIE_DOMAIN: SHARED_DOMAIN } });
    // Terminates TLS like a production proxy: the shop's page for its host, everything else to Funnel with X-Forwarded-*.
    server = https.createServer(await selfSignedCertificate(), (req, res) => {
      const host = req.headers.host ?? "";
      if (host.startsWith(`${SHOP_HOST}:`)) {
        const query = new URLSearchParams((req.url ?? "").split("?")[1] ?? "");
        const format = query.get("format");
        const pixel = `https://${PIXEL_HOST}:${port}/track?id=${query.get("tracker") ?? ""}${format === null ? "" : `&format=${format}`}`;
        res.writeHead(200, { "content-type": "text/html; charset=utf-8" }).end(shopPage(pixel));
        return;
      }
      const target = new URL(host.split(":")[0]?.endsWith(`.${SHARED_DOMAIN}`) === true ? shared.url : app.url);
      const upstream = http.request(
        { host: target.hostname, port: target.port, path: req.url, method: req.method, localAddress: PROXY_ADDRESS, headers: {
          ...req.headers,
          "x-forwarded-for": req.socket.remoteAddress ?? "",
          "x-forwarded-proto": "https",
          "x-forwarded-host": host,
        } },
        (answer) => {
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          answer.pipe(res);
        },
      );
      upstream.on("error", () => res.writeHead(502).end());
      req.pipe(upstream);
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    port = (server.address() as AddressInfo).port;
    browser = await launchChromium(BROWSER_FLAGS);
  });
  afterAll(async () => {
    await browser?.close();
    await new Promise((resolve) => server?.close(resolve));
    await shared?.stop();
    await app?.stop();
  });

  it("keeps one user_id across two visits of a page on another site (SameSite=None; Secure)", async () => {
    const id = (await trackers().createTracker({ value: "cross-site" })).tracker!.uuid;
    const context = await profileAllowingThirdPartyCookies();
    try {
      await visit(context, "pixel-cross-site-1", `tracker=${id}&format=gif`);
      await visit(context, "pixel-cross-site-2", `tracker=${id}&format=gif`);
      const cookies = await context.cookies(`https://${PIXEL_HOST}:${port}/`);
      expect(cookies.find((cookie) => cookie.name === "user_id")).toMatchObject({ sameSite: "None", secure: true, httpOnly: true });
    } finally {
      await context.close();
    }
    const [first, second] = await userIds(id, 2);
    expect(first).toBeDefined();
    expect(second).toBe(first);
  });

  it("fires onload for an <img> of format=gif (a 1×1 picture) and records the hit once; the default 204 fires onerror", async () => {
    const gif = (await trackers().createTracker({ value: "img-gif" })).tracker!.uuid;
    const plain = (await trackers().createTracker({ value: "img-204" })).tracker!.uuid;
    const context = await browser.newContext();
    try {
      expect(await visit(context, "pixel-gif", `tracker=${gif}&format=gif`)).toEqual({ event: "load", width: 1, height: 1 });
      expect(await visit(context, "pixel-204", `tracker=${plain}`)).toMatchObject({ event: "error" });
    } finally {
      await context.close();
    }
    expect(await userIds(gif, 1)).toHaveLength(1);
    await app.streamer?.drain();
    expect(await userIds(gif, 1)).toHaveLength(1);
    expect(await userIds(plain, 1)).toHaveLength(1);
  });

  it("shares one user_id between subdomains with TRACKER_COOKIE_DOMAIN", async () => {
    const id = (await trackers().createTracker({ value: "subdomains" })).tracker!.uuid;
    const context = await browser.newContext();
    try {
      for (const host of [`a.${SHARED_DOMAIN}`, `b.${SHARED_DOMAIN}`]) {
        await withPage(context, `pixel-domain-${host}`, async (page) => {
          const answer = await page.goto(`https://${host}:${port}/track?id=${id}&format=gif`);
          expect(answer?.status()).toBe(200);
        });
      }
      const cookies = await context.cookies(`https://b.${SHARED_DOMAIN}:${port}/`);
      expect(cookies.filter((cookie) => cookie.name === "user_id")).toMatchObject([{ domain: `.${SHARED_DOMAIN}`, sameSite: "None", secure: true }]);
    } finally {
      await context.close();
    }
    const [first, second] = await userIds(id, 2);
    expect(first).toBeDefined();
    expect(second).toBe(first);
  });
});
