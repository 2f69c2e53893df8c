import http from "node:http";
import { listen, sendJson } from "./http-server.js";
import type { Logger } from "./logger.js";
import type { Registry } from "./metrics.js";

export interface MetricsServerOptions {
  readonly port: number;
  readonly host: string;
  readonly metrics: Registry;
  readonly log: Logger;
}

export interface MetricsServer {
  /** Base URL, e.g. `http://127.0.0.1:9464`; the registry is at `${url}/metrics`. */
  readonly url: string;
  /** Stops accepting and closes every connection (a scrape in flight is cut short). */
  close(): Promise<void>;
}

/**
 * Serves the registry as `GET /metrics` on a port of its own and nothing
 * else: series name partners and integrations, which the public API port must
 * not list. Only a scraper talks to it, so its limits are tight: a few
 * seconds for a request, a few dozen connections.
 */
export async function startMetricsServer(options: MetricsServerOptions): Promise<MetricsServer> {
  const { metrics, log } = options;
  const server = http.createServer({ headersTimeout: 5_000, requestTimeout: 10_000, keepAliveTimeout: 30_000 }, (req, res) => {
    const path = (req.url ?? "/").split("?", 1)[0] ?? "/";
    if (path !== "/metrics") {
      sendJson(res, 404, { error: `no route for ${path}` });
      return;
    }
    if (req.method !== "GET" && req.method !== "HEAD") {
      sendJson(res, 405, { error: "GET or HEAD only" }, { allow: "GET, HEAD" });
      return;
    }
    metrics.metrics().then(
      (text) => {
        res.writeHead(200, { "content-type": metrics.contentType, "content-length": Buffer.byteLength(text) });
        res.end(req.method === "HEAD" ? undefined : text);
      },
      (error: unknown) => {
        log.error({ err: error }, "collecting metrics failed");
        if (!res.headersSent) sendJson(res, 500, { error: "internal error" });
        else res.end();
      },
    );
  });
  server.maxConnections = 64;
  const { url } = await listen(server, options.port, options.host);
  return {
    url,
    async close() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
    },
  };
}
