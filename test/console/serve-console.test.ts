import http from "node:http";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { App } from "../../services/app.js";
import { CONSOLE_CACHE_DIR } from "../../services/core/console.js";
import { startTestApp } from "../support/stores.js";

describe("the console served by the API process", () => {
  let app: App;
  beforeAll(async () => {
    app = await startTestApp({ roles: ["api"] });
  });
  afterAll(async () => {
    await app.stop();
  });

  it("redirects / and /console to /console/ with a 302", async () => {
    for (const path of ["/", "/console", "/?from=bookmark"]) {
      const res = await fetch(`${app.url}${path}`, { redirect: "manual" });
      expect(res.status, path).toBe(302);
      expect(res.headers.get("location"), path).toBe("/console/");
    }
    expect((await fetch(`${app.url}/`, { method: "HEAD", redirect: "manual" })).status).toBe(302);
  });

  it("serves the page with a strict policy and no inline script, revalidated every time", async () => {
    const res = await fetch(`${app.url}/console/`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("text/html; charset=utf-8");
    expect(res.headers.get("cache-control")).toBe("no-cache");
    const csp = res.headers.get("content-security-policy") ?? "";
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("connect-src 'self'");
    expect(csp).toContain("default-src 'none'");
    expect(csp).not.toContain("unsafe");
    expect(res.headers.get("x-content-type-options")).toBe("nosniff");
    const html = await res.text();
    const scripts = [...html.matchAll(/<script\b([^>]*)>([\s\S]*?)<\/script>/g)];
    expect(scripts.length).toBeGreaterThan(0);
    for (const [, attributes, body] of scripts) {
      expect(attributes).toMatch(/\ssrc="\.\/main-[A-Z0-9]{8}\.js"/);
      expect(body?.trim()).toBe("");
    }
    expect(html).not.toMatch(/<style\b|\sstyle="|\son[a-z]+="/i);
  });

  it("serves the bundle under hashed names, immutable, gzip when asked, HEAD without a body", async () => {
    const html = await (await fetch(`${app.url}/console/`)).text();
    const js = /src="\.\/(main-[A-Z0-9]{8}\.js)"/.exec(html)?.[1] ?? "";
    const css = /href="\.\/(main-[A-Z0-9]{8}\.css)"/.exec(html)?.[1] ?? "";
    expect(css).not.toBe("");
    const script = await fetch(`${app.url}/console/${js}`, { headers: { "accept-encoding": "identity" } });
    expect(script.status).toBe(200);
    expect(script.headers.get("content-type")).toBe("text/javascript; charset=utf-8");
    expect(script.headers.get("cache-control")).toBe("public, max-age=31536000, immutable");
    const plain = Buffer.from(await script.arrayBuffer());
    expect(plain.length).toBeGreaterThan(1000);
    expect(Number(script.headers.get("content-length"))).toBe(plain.length);

    const styles = await fetch(`${app.url}/console/${css}`);
    expect(styles.headers.get("content-type")).toBe("text/css; charset=utf-8");

    const zipped = await rawGetWith(app.url, `/console/${js}`, { "accept-encoding": "gzip, br" });
    expect(zipped.headers["content-encoding"]).toBe("gzip");
    expect(zipped.headers.vary).toBe("accept-encoding");
    expect(gunzipSync(zipped.body).equals(plain)).toBe(true);

    const head = await rawGetWith(app.url, `/console/${js}`, { "accept-encoding": "identity" }, "HEAD");
    expect(head.status).toBe(200);
    expect(Number(head.headers["content-length"])).toBe(plain.length);
    expect(head.body.length).toBe(0);

    const again = await fetch(`${app.url}/console/`, { headers: { "if-none-match": script.headers.get("etag") ?? "" } });
    expect(again.status).toBe(200);
    const page = await fetch(`${app.url}/console/`);
    const unchanged = await fetch(`${app.url}/console/`, { headers: { "if-none-match": page.headers.get("etag") ?? "" } });
    expect(unchanged.status).toBe(304);
    expect(await unchanged.text()).toBe("");
  });

  it("refuses paths outside the build and methods other than GET and HEAD", async () => {
    for (const path of [
      "/console/../package.json",
      "/console/..%2fpackage.json",
      "/console/%2e%2e/package.json",
      "/console/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
      "/console//etc/passwd",
      "/console/src/main.tsx",
      "/console/build.ts",
      "/console/main.js",
      "/console/.%00./package.json",
    ]) {
      const res = await rawGetWith(app.url, path, {});
      expect(res.status, path).toBe(404);
      expect(res.body.toString(), path).not.toContain("dependencies");
      expect(res.body.toString(), path).not.toContain("root:");
    }
    const post = await fetch(`${app.url}/console/`, { method: "POST", body: "x" });
    expect(post.status).toBe(405);
    expect(post.headers.get("allow")).toBe("GET, HEAD");
  });

  it("keeps the build in node_modules/.cache for the next start", () => {
    expect(existsSync(join(CONSOLE_CACHE_DIR, "manifest.json"))).toBe(true);
  });
});

/** A request sent with its path exactly as written (fetch would resolve `..`), its body as sent (not decompressed). */
function rawGetWith(base: string, path: string, headers: Record<string, string>, method = "GET"): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer }> {
  const url = new URL(base);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: url.hostname, port: url.port, path, method, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (chunk: Buffer) => chunks.push(chunk));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on("error", reject);
    req.end();
  });
}
