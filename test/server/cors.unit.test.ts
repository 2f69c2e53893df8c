import { IncomingMessage, ServerResponse } from "node:http";
import { Socket } from "node:net";
import { PassThrough } from "node:stream";
import { describe, expect, it } from "vitest";
import { createCors, type CorsOptions } from "../../services/core/cors.js";

interface Answer {
  /** Whether the CORS layer answered the request itself. */
  readonly answered: boolean;
  readonly status: number;
  /** Response headers by lower-case name (Date and Connection left out). */
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string;
}

/**
 * Runs one request through `createCors` and, unless it answered, a handler
 * that answers 200 "ok". Node's own response object writes the answer's
 * bytes into memory: what a client would receive, without a server.
 */
async function request(options: CorsOptions, method: string, path: string, headers: Record<string, string>): Promise<Answer> {
  const req = new IncomingMessage(new Socket());
  req.method = method;
  req.url = path;
  req.headers = headers;
  const res = new ServerResponse(req);
  const wire = new PassThrough();
  const chunks: Buffer[] = [];
  wire.on("data", (chunk: Buffer) => chunks.push(chunk));
  res.assignSocket(wire as unknown as Socket);
  const finished = new Promise((resolve) => res.on("finish", resolve));
  const answered = createCors(options)(req, res, path);
  if (!answered) res.writeHead(200).end("ok");
  await finished;
  const raw = Buffer.concat(chunks).toString();
  const [head = "", body = ""] = raw.split("\r\n\r\n", 2);
  const [statusLine = "", ...lines] = head.split("\r\n");
  const fields = lines.map((line) => [line.slice(0, line.indexOf(":")).toLowerCase(), line.slice(line.indexOf(":") + 1).trim()] as const);
  return {
    answered,
    status: Number(statusLine.split(" ")[1]),
    headers: Object.fromEntries(fields.filter(([name]) => name !== "date" && name !== "connection")),
    body,
  };
}

const shop = "https://shop.example";
const listed: CorsOptions = { origins: [shop, "https://admin.example"], paths: new Set(["/funnel.ingest.v1.IngestService/Send", "/v1/seen"]) };
const send = "/funnel.ingest.v1.IngestService/Send";
const preflight = { "access-control-request-method": "POST", "access-control-request-headers": "content-type,authorization" };

describe("CORS", () => {
  it("answers a listed origin's preflight itself: its origin with credentials, the methods and headers a client sends", async () => {
    const answer = await request(listed, "OPTIONS", send, { origin: shop, ...preflight });
    expect(answer).toMatchObject({ answered: true, status: 204, body: "" });
    expect(answer.headers).toMatchObject({
      vary: "origin",
      "access-control-allow-origin": shop,
      "access-control-allow-credentials": "true",
      "access-control-allow-methods": "POST, OPTIONS",
      "access-control-max-age": "7200",
    });
    const allowed = answer.headers["access-control-allow-headers"]?.split(", ");
    for (const header of ["content-type", "connect-protocol-version", "authorization", "x-request-id", "x-funnel-device-id", "x-grpc-web", "grpc-timeout"]) {
      expect(allowed, header).toContain(header);
    }
  });

  it("adds the headers to a listed origin's call and lets the handler answer it, exposing what a page reads", async () => {
    const answer = await request(listed, "POST", "/v1/seen", { origin: "https://admin.example" });
    expect(answer).toMatchObject({ answered: false, status: 200, body: "ok" });
    expect(answer.headers["access-control-allow-origin"]).toBe("https://admin.example");
    expect(answer.headers["access-control-allow-credentials"]).toBe("true");
    expect(answer.headers["access-control-expose-headers"]?.split(", ")).toEqual(expect.arrayContaining(["x-request-id", "grpc-status", "grpc-message", "grpc-status-details-bin"]));
    expect(answer.headers["access-control-allow-methods"]).toBeUndefined();
  });

  it("refuses the preflight of an origin not listed with 403 naming it and the setting, and adds nothing to its calls", async () => {
    const refused = await request(listed, "OPTIONS", send, { origin: "https://evil.example", ...preflight });
    expect(refused).toMatchObject({ answered: true, status: 403 });
    expect(JSON.parse(refused.body)).toEqual({ error: "origin https://evil.example is not allowed (CORS_ALLOWED_ORIGINS)" });
    expect(Object.keys(refused.headers).filter((name) => name.startsWith("access-control-"))).toEqual([]);
    const call = await request(listed, "POST", send, { origin: "https://evil.example" });
    expect(call).toMatchObject({ answered: false, status: 200 });
    expect(Object.keys(call.headers).filter((name) => name.startsWith("access-control-"))).toEqual([]);
    // Caches keep the answers to different origins apart.
    expect(call.headers.vary).toBe("origin");
  });

  it("matches origins exactly: no prefix, suffix, other scheme or port, and not the string null", async () => {
    for (const origin of ["https://shop.example.evil", "http://shop.example", "https://shop.example:444", "https://SHOP.example", "null", ""]) {
      const answer = await request(listed, "OPTIONS", send, { origin, ...preflight });
      expect(answer.status, origin).toBe(403);
      expect(answer.headers["access-control-allow-origin"], origin).toBeUndefined();
    }
  });

  it("leaves paths not listed and requests without an origin to the handler, untouched", async () => {
    for (const [path, headers] of [
      ["/funnel.ops.v1.OpsService/QueryAnalytics", { origin: shop, ...preflight }],
      [`${send}/`, { origin: shop, ...preflight }],
      [send, preflight],
    ] as const) {
      const answer = await request(listed, "OPTIONS", path, headers);
      expect(answer, path).toMatchObject({ answered: false, status: 200, body: "ok" });
      expect(Object.keys(answer.headers).filter((name) => name.startsWith("access-control-") || name === "vary"), path).toEqual([]);
    }
  });

  it("gives `*` to any origin but never credentials, and credentials only to the origins listed beside it", async () => {
    const open: CorsOptions = { origins: ["*", shop], paths: new Set([send]) };
    const anyone = await request(open, "OPTIONS", send, { origin: "https://anyone.example", ...preflight });
    expect(anyone).toMatchObject({ answered: true, status: 204 });
    expect(anyone.headers["access-control-allow-origin"]).toBe("*");
    expect(anyone.headers["access-control-allow-credentials"]).toBeUndefined();
    const named = await request(open, "POST", send, { origin: shop });
    expect([named.headers["access-control-allow-origin"], named.headers["access-control-allow-credentials"]]).toEqual([shop, "true"]);
    // With `*` alone the answer is the same for every origin: nothing to vary on.
    const starOnly = await request({ origins: ["*"], paths: new Set([send]) }, "POST", send, { origin: "https://anyone.example" });
    expect([starOnly.headers["access-control-allow-origin"], starOnly.headers.vary]).toEqual(["*", undefined]);
  });

  it("refuses every cross-origin preflight when no origin is allowed", async () => {
    const closed = await request({ origins: [], paths: new Set([send]) }, "OPTIONS", send, { origin: shop, ...preflight });
    expect(closed).toMatchObject({ answered: true, status: 403, headers: { "content-type": "application/json" } });
    expect(closed.headers.vary).toBeUndefined();
  });
});
