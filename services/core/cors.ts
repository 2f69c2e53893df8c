import type http from "node:http";

export interface CorsOptions {
  /**
   * Allowed origins (`https://www.example.com`), which may send credentials;
   * `*` lets any other origin call without them.
   */
  readonly origins: readonly string[];
  /** Paths (exact) that web pages may call from those origins. */
  readonly paths: ReadonlySet<string>;
}

// HTTP/2 requests arrive through Node's compatibility layer, which offers the same calls.
type Request = http.IncomingMessage;
type Response = http.ServerResponse;

/**
 * Request headers a browser client sends: Connect's and gRPC-Web's, a bearer
 * token, a request id, and the anonymous device id of Seen.
 */
const ALLOW_HEADERS = [
  "content-type",
  "connect-protocol-version",
  "connect-timeout-ms",
  "connect-accept-encoding",
  "connect-content-encoding",
  "grpc-timeout",
  "x-grpc-web",
  "x-user-agent",
  "authorization",
  "x-request-id",
  "x-funnel-device-id",
].join(", ");

/** Response headers a page may read: the request id, Connect's and gRPC-Web's status trailers and encodings. */
const EXPOSE_HEADERS = ["x-request-id", "grpc-status", "grpc-message", "grpc-status-details-bin", "content-encoding", "connect-content-encoding"].join(", ");

/**
 * Cross-origin access for browser-facing paths. Returns a function that adds
 * the CORS headers to a request from an allowed origin and answers preflight
 * requests itself; it returns true when it answered. Only the origins listed
 * by name may send credentials (cookies): one listed as `*` would let any
 * site act with a visitor's cookies.
 */
export function createCors(options: CorsOptions): (req: Request, res: Response, path: string) => boolean {
  const any = options.origins.includes("*");
  const listed = new Set(options.origins.filter((origin) => origin !== "*"));
  return (req, res, path) => {
    if (!options.paths.has(path)) return false;
    const origin = req.headers.origin;
    if (typeof origin !== "string") return false;
    const named = listed.has(origin);
    const permitted = named || any;
    // The answer depends on the origin whenever one is named: caches must keep them apart.
    if (listed.size > 0) res.setHeader("vary", "origin");
    if (permitted) {
      res.setHeader("access-control-allow-origin", named ? origin : "*");
      if (named) res.setHeader("access-control-allow-credentials", "true");
      res.setHeader("access-control-expose-headers", EXPOSE_HEADERS);
    }
    if (req.method !== "OPTIONS") return false;
    if (!permitted) {
      res.writeHead(403, { "content-type": "application/json" });
      res.end(JSON.stringify({ error: `origin ${origin} is not allowed (CORS_ALLOWED_ORIGINS)` }));
      return true;
    }
    res.writeHead(204, {
      "access-control-allow-methods": "POST, OPTIONS",
      "access-control-allow-headers": ALLOW_HEADERS,
      "access-control-max-age": "7200",
    });
    res.end();
    return true;
  };
}
