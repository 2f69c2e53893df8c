import { readdir, readFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import type { DescService } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import type { Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TrackerService } from "../../gen/funnel/tracker/v1/tracker_pb.js";
import type { App } from "../../services/app.js";
import { launchChromium, withPage } from "../support/browser.js";
import { clickhouseRows, drained } from "../support/ingest.js";
import { ADMIN_TOKEN, startTestApp } from "../support/stores.js";

const root = fileURLToPath(new URL("../..", import.meta.url));

/** Every header a browser client of Funnel sends: Connect's, gRPC-Web's, a token, a request id, the device id. */
const BROWSER_HEADERS = [
  "content-type",
  "connect-protocol-version",
  "connect-timeout-ms",
  "authorization",
  "x-request-id",
  "x-funnel-device-id",
  "x-grpc-web",
  "x-user-agent",
  "grpc-timeout",
];

/** Every RPC path of the generated services. */
async function rpcPaths(): Promise<string[]> {
  const dir = join(root, "gen");
  const files = (await readdir(dir, { recursive: true })).filter((file) => file.endsWith("_pb.ts"));
  const paths: string[] = [];
  for (const file of files) {
    const module = (await import(pathToFileURL(join(dir, file)).href)) as Record<string, unknown>;
    for (const value of Object.values(module)) {
      if (typeof value !== "object" || value === null || (value as { kind?: unknown }).kind !== "service") continue;
      const service = value as DescService;
      for (const method of service.methods) paths.push(`/${service.typeName}/${method.name}`);
    }
  }
  return paths;
}

/** The rows of the CORS table in docs/cors.md: `METHOD /path`. */
async function documentedPaths(): Promise<string[]> {
  const text = await readFile(join(root, "docs/cors.md"), "utf8");
  return [...text.matchAll(/^\| `(?:POST|GET) (\/[^`]+)` \|/gm)].map((match) => match[1] as string);
}

function preflight(url: string, origin: string, headers = BROWSER_HEADERS): Promise<Response> {
  return fetch(url, {
    method: "OPTIONS",
    headers: { origin, "access-control-request-method": "POST", "access-control-request-headers": headers.join(",") },
  });
}

/** The value of a comma-separated header as a lower-case list. */
const listOf = (value: string | null): string[] => (value ?? "").split(",").map((item) => item.trim().toLowerCase()).filter((item) => item !== "");

describe("CORS", () => {
  let app: App;
  let pages: Server;
  let allowed: string;
  let other: string;
  beforeAll(async () => {
    // One page server, two origins: 127.0.0.1 is listed, localhost is not.
    pages = createServer((req, res) => {
      res.writeHead(200, { "content-type": "text/html; charset=utf-8" }).end("<!doctype html><title>shop</title>");
    });
    await new Promise<void>((resolve) => pages.listen(0, "127.0.0.1", resolve));
    const port = (pages.address() as AddressInfo).port;
    allowed = `http://127.0.0.1:${port}`;
    other = `http://localhost:${port}`;
    app = await startTestApp({ env: { CORS_ALLOWED_ORIGINS: `https://shop.example,${allowed}` } });
  });
  afterAll(async () => {
    await app?.stop();
    await new Promise((resolve) => pages?.close(resolve));
  });

  it("answers preflights of every documented path, allowing every header a browser client sends, with credentials", async () => {
    const documented = await documentedPaths();
    expect(documented.length).toBeGreaterThan(0);
    for (const path of documented) {
      const answer = await preflight(`${app.url}${path}`, "https://shop.example");
      expect(answer.status, path).toBe(204);
      expect(answer.headers.get("access-control-allow-origin"), path).toBe("https://shop.example");
      expect(answer.headers.get("access-control-allow-credentials"), path).toBe("true");
      expect(listOf(answer.headers.get("access-control-allow-methods")), path).toContain("post");
      expect(listOf(answer.headers.get("access-control-allow-headers")), path).toEqual(expect.arrayContaining(BROWSER_HEADERS));
      expect(listOf(answer.headers.get("vary")), path).toContain("origin");
    }
  });

  it("answers CORS on exactly the paths the docs' table lists", async () => {
    const candidates = [...(await rpcPaths()), "/v1/seen", "/track", "/download", "/healthz", "/readyz", "/"];
    const answering: string[] = [];
    for (const path of candidates) {
      const answer = await preflight(`${app.url}${path}`, "https://shop.example", ["content-type"]);
      if (answer.headers.get("access-control-allow-origin") !== null) answering.push(path);
    }
    expect(answering.sort()).toEqual((await documentedPaths()).sort());
  });

  it("refuses the preflight of an origin not listed, and adds no CORS headers to its calls", async () => {
    const url = `${app.url}/funnel.ingest.v1.IngestService/Send`;
    const refused = await preflight(url, "https://evil.example");
    expect(refused.status).toBe(403);
    expect(refused.headers.get("access-control-allow-origin")).toBeNull();
    expect(refused.headers.get("access-control-allow-credentials")).toBeNull();
    const call = await fetch(url, { method: "POST", headers: { origin: "https://evil.example", "content-type": "application/json" }, body: "{}" });
    expect(call.headers.get("access-control-allow-origin")).toBeNull();
    expect(call.headers.get("access-control-allow-credentials")).toBeNull();
  });

  describe("in Chromium", () => {
    let browser: Browser;
    beforeAll(async () => {
      browser = await launchChromium();
    });
    afterAll(async () => {
      await browser?.close();
    });

    /** From a page of `origin`: Send (Connect JSON) and POST /v1/seen with the device id, with credentials. */
    const callFrom = (origin: string, name: string) =>
      withPage(browser, name, async (page) => {
        await page.goto(`${origin}/shop`);
        return page.evaluate(async (api) => {
          const outcome = async (call: Promise<Response>) => {
            try {
              const res = await call;
              return { status: res.status, body: await res.json() };
            } catch (error) {
              return { error: String(error) };
            }
          };
          const common = { method: "POST", credentials: "include", mode: "cors" } as const;
          const send = await outcome(
            fetch(`${api}/funnel.ingest.v1.IngestService/Send`, {
              ...common,
              headers: { "content-type": "application/json", "connect-protocol-version": "1", "connect-timeout-ms": "5000", "x-request-id": "from-the-page" },
              body: JSON.stringify({ element_click: { element_type: "movie", page_type: "category" } }),
            }),
          );
          const seen = await outcome(
            fetch(`${api}/v1/seen`, { ...common, headers: { "content-type": "application/json", "x-funnel-device-id": "device-in-chromium" }, body: JSON.stringify({ tag: "promo", id: "p-1" }) }),
          );
          return { send, seen };
        }, app.url);
      });

    it("lets a page on an allowed origin call Send and /v1/seen with the device id and credentials; a page elsewhere cannot", async () => {
      const fromAllowed = await callFrom(allowed, "cors-allowed");
      expect(fromAllowed.send).toMatchObject({ status: 200, body: { status: "EVENT_STATUS_ACCEPTED" } });
      expect(fromAllowed.seen).toMatchObject({ status: 200, body: { created: true, identity: { unauthorized: { deviceId: "device-in-chromium" } } } });
      const fromOther = await callFrom(other, "cors-refused");
      expect(fromOther.send).toMatchObject({ error: expect.stringMatching(/TypeError/) as unknown });
      expect(fromOther.seen).toMatchObject({ error: expect.stringMatching(/TypeError/) as unknown });
    });

    it("records the pixel's user_id cookie with events the page sends with credentials, not without", async () => {
      const trackers = createClient(TrackerService, createConnectTransport({ baseUrl: app.url, httpVersion: "1.1", interceptors: [(next) => (req) => (req.header.set("authorization", `Bearer ${ADMIN_TOKEN}`), next(req))] }));
      const trackerId = (await trackers.createTracker({ value: "chromium-join" })).tracker?.uuid ?? "";
      const sent = await withPage(browser, "cors-cookie-join", async (page) => {
        await page.goto(`${allowed}/shop`);
        return page.evaluate(
          async ([api, tracker]) => {
            // The pixel as a page embeds it: the browser keeps the cookie it sets.
            // The test's tsconfig has no DOM types: the little of the DOM used here, typed.
            type Img = { onload: (() => void) | null; onerror: (() => void) | null; src: string };
            const { document } = globalThis as unknown as { document: { createElement(tag: "img"): Img; body: { append(node: Img): void } } };
            await new Promise<void>((resolve, reject) => {
              const img = document.createElement("img");
              img.onload = () => resolve();
              img.onerror = () => reject(new Error("the pixel did not load"));
              img.src = `${api}/track?id=${tracker}&format=gif`;
              document.body.append(img);
            });
            const send = async (credentials: "include" | "omit") => {
              const res = await fetch(`${api}/funnel.ingest.v1.IngestService/Send`, {
                method: "POST",
                credentials,
                headers: { "content-type": "application/json" },
                body: JSON.stringify({ element_click: { element_type: credentials, page_type: "category" } }),
              });
              return ((await res.json()) as { eventId: string }).eventId;
            };
            return { included: await send("include"), omitted: await send("omit") };
          },
          [app.url, trackerId] as const,
        );
      });
      await drained(app);
      const hits = await app.clickhouse.client.query({
        query: `SELECT toString(user_id) AS user_id FROM ${app.clickhouse.database}.tracker_events WHERE tracker_id = {tracker:UUID}`,
        query_params: { tracker: trackerId },
        format: "JSONEachRow",
      });
      const visitors = await hits.json<{ user_id: string }>();
      expect(visitors).toHaveLength(1);
      expect(await clickhouseRows(app, "element_click", `event_id = '${sent.included}'`)).toMatchObject([{ anonymous_id: visitors[0]?.user_id }]);
      expect(await clickhouseRows(app, "element_click", `event_id = '${sent.omitted}'`)).toMatchObject([{ anonymous_id: null }]);
    });
  });
});
