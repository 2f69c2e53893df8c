import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { App } from "../../services/app.js";
import { version } from "../../services/core/version.js";
import { startTestApp } from "../support/stores.js";

/** Each series name in a text exposition, with its declared type. */
function types(text: string): Map<string, string> {
  return new Map([...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map(([, name = "", type = ""]) => [name, type]));
}

describe("the metrics every process exposes", () => {
  let app: App;
  beforeAll(async () => {
    app = await startTestApp({ roles: ["api", "worker"] });
  });
  afterAll(async () => {
    await app?.stop();
  });

  const scrape = async (): Promise<string> => (await fetch(`${app.metricsUrl}/metrics`)).text();

  it("names no gauge like a counter (…_total), and counters keep _total", async () => {
    const declared = types(await scrape());
    const gaugesNamedAsCounters = [...declared].filter(([name, type]) => type === "gauge" && name.endsWith("_total")).map(([name]) => name);
    expect(gaugesNamedAsCounters).toEqual([]);
    expect(declared.get("funnel_rpc_requests_total")).toBe("counter");
    expect(declared.get("funnel_nodejs_active_handles")).toBe("gauge");
  });

  it("exposes funnel_build_info with the version and the Node.js version", async () => {
    const text = await scrape();
    expect(types(text).get("funnel_build_info")).toBe("gauge");
    expect(text).toContain(`funnel_build_info{version="${version}",node="${process.version}"} 1`);
  });

  it("times /track, /download and /v1/seen in one histogram, by route", async () => {
    await fetch(`${app.url}/track?id=00000000-0000-4000-8000-000000000000`);
    await fetch(`${app.url}/download?utm=x`);
    await fetch(`${app.url}/v1/seen`, { method: "POST", body: "{}" });
    await fetch(`${app.url}/healthz`);
    const text = await scrape();
    expect(types(text).get("funnel_http_request_duration_seconds")).toBe("histogram");
    for (const route of ["/track", "/download", "/v1/seen"]) {
      expect(text).toMatch(new RegExp(`^funnel_http_request_duration_seconds_count\\{route="${route.replace(/\//g, "\\/")}"\\} [1-9]`, "m"));
    }
    expect(text).not.toContain('funnel_http_request_duration_seconds_count{route="/healthz"}');
  });
});
