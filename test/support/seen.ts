import { createHmac } from "node:crypto";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { SeenAdminService } from "../../gen/funnel/seen/v1/admin_pb.js";
import { SeenFeedService } from "../../gen/funnel/seen/v1/feed_pb.js";
import { SeenService } from "../../gen/funnel/seen/v1/seen_pb.js";
import type { App } from "../../services/app.js";
import { ADMIN_TOKEN } from "./stores.js";

export const JWT_SECRET = "seen-test-jwt-secret-0123456789";

/** An HS256 token signed with {@link JWT_SECRET}, expiring in an hour unless the claims set `exp`. */
export function token(claims: Record<string, unknown>): string {
  const part = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url");
  const unsigned = `${part({ alg: "HS256", typ: "JWT" })}.${part({ exp: Math.floor(Date.now() / 1000) + 3600, ...claims })}`;
  return `${unsigned}.${createHmac("sha256", JWT_SECRET).update(unsigned).digest("base64url")}`;
}

/** One request a consumer received. */
export interface Received {
  readonly headers: http.IncomingHttpHeaders;
  readonly body: Record<string, unknown>;
  readonly at: number;
}

/** What the consumer answers: status, headers, body, and an optional delay. */
export interface Answer {
  readonly status: number;
  readonly headers?: Record<string, string>;
  readonly body?: string;
  readonly delayMs?: number;
}

/** A real HTTP consumer on port 0 whose answers a test scripts per request. */
export class Consumer {
  readonly received: Received[] = [];
  answer: (request: Received, index: number) => Answer = () => ({ status: 200, body: "ok" });
  url = "";
  readonly #server = http.createServer((req, res) => {
    let text = "";
    req.setEncoding("utf8");
    req.on("data", (chunk: string) => (text += chunk));
    req.on("end", () => {
      const request: Received = { headers: req.headers, body: JSON.parse(text) as Record<string, unknown>, at: Date.now() };
      const index = this.received.push(request) - 1;
      const answer = this.answer(request, index);
      const reply = () => {
        if (res.destroyed) return;
        res.writeHead(answer.status, answer.headers ?? {});
        res.end(answer.body ?? "");
      };
      if (answer.delayMs !== undefined) setTimeout(reply, answer.delayMs);
      else reply();
    });
  });

  async start(): Promise<this> {
    await new Promise<void>((resolve) => this.#server.listen(0, "127.0.0.1", resolve));
    this.url = `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}/seen`;
    return this;
  }

  async stop(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise((resolve) => this.#server.close(resolve));
  }
}

const withHeaders =
  (headers: Record<string, string>): Interceptor =>
  (next) =>
  (req) => {
    for (const [name, value] of Object.entries(headers)) req.header.set(name, value);
    return next(req);
  };

/** Connect clients of the Seen services with the given headers (HTTP/1.1, optionally from another loopback address). */
export function seenClients(app: App, headers: Record<string, string> = {}, from?: string) {
  const transport = createConnectTransport({
    baseUrl: app.url,
    httpVersion: "1.1",
    interceptors: [withHeaders(headers)],
    ...(from !== undefined ? { nodeOptions: { localAddress: from } } : {}),
  });
  return {
    seen: createClient(SeenService, transport),
    admin: createClient(SeenAdminService, transport),
    feed: createClient(SeenFeedService, transport),
  };
}

/** Clients carrying the admin token. */
export function adminClients(app: App): { seen: Client<typeof SeenService>; admin: Client<typeof SeenAdminService>; feed: Client<typeof SeenFeedService> } {
  return seenClients(app, { authorization: `Bearer ${ADMIN_TOKEN}` });
}

/** A plain `POST /v1/seen`, optionally from another loopback address. */
export function postSeen(
  app: App,
  body: string,
  options: { headers?: Record<string, string>; from?: string } = {},
): Promise<{ status: number; body: Record<string, unknown>; headers: http.IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      new URL("/v1/seen", app.url),
      { method: "POST", headers: { "content-type": "application/json", ...options.headers }, localAddress: options.from ?? "127.0.0.1", agent: false },
      (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => (text += chunk));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as Record<string, unknown>, headers: res.headers }));
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}

/** The api deliveries of a mark, with their state. */
export async function deliveriesOf(app: App, tag: string, itemId: string): Promise<{ id: string; integration: string; status: string; attempts: number; last_error: string }[]> {
  const { rows } = await app.pool.query<{ id: string; integration: string; status: string; attempts: number; last_error: string }>(
    "SELECT id::text, integration, status, attempts, last_error FROM seen_deliveries WHERE tag = $1 AND item_id = $2 ORDER BY integration",
    [tag, itemId],
  );
  return rows;
}
