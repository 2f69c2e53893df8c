import http from "node:http";
import http2 from "node:http2";
import net from "node:net";
import type { AddressInfo } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { createContextKey, createContextValues, type ConnectRouter, type Interceptor } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { createCors, type CorsOptions } from "./cors.js";
import { MAX_TIMEOUT_MS, UnaryJsonRoutes } from "./unary-json.js";
import type { Logger } from "./logger.js";

/**
 * Plain routes see the HTTP/1.1 request and response API; HTTP/2 requests
 * arrive through Node's compatibility layer, which offers the same calls.
 */
export type HttpRequest = http.IncomingMessage;
export type HttpResponse = http.ServerResponse;

/** A plain HTTP route (pixel, health, metrics): keyed by path, any method it accepts. */
export type HttpRoute = (req: HttpRequest, res: HttpResponse) => void | Promise<void>;

export interface HttpServerOptions {
  readonly port: number;
  readonly host: string;
  readonly log: Logger;
  /** Registers every Connect service (the `routes(router)` of STYLE). */
  readonly rpc: (router: ConnectRouter) => void;
  readonly interceptors: readonly Interceptor[];
  /** Plain routes by exact path. */
  readonly routes: ReadonlyMap<string, HttpRoute>;
  /** Largest accepted RPC message, in bytes. */
  readonly readMaxBytes: number;
  /** Cross-origin access for browser-facing paths. */
  readonly cors?: CorsOptions;
}

export interface HttpServer {
  /** Base URL, e.g. `http://127.0.0.1:8080`. */
  readonly url: string;
  readonly port: number;
  /**
   * Stops accepting connections, lets in-flight requests finish for up to
   * `timeoutMs`, then closes whatever is left.
   */
  close(timeoutMs: number): Promise<void>;
}

/**
 * The TCP peer address of an RPC (read with `context.values.get(peerAddressKey)`),
 * for handlers that believe some headers only from trusted proxies.
 */
export const peerAddressKey = createContextKey<string>("", { description: "TCP peer address" });

/** The connection preface every HTTP/2 client sends first (RFC 9113 §3.4). */
const H2_PREFACE = "PRI * HTTP/2.0";

/** Writes a small JSON answer on a plain route. */
export function sendJson(res: HttpResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text), ...headers });
  res.end(text);
}

/**
 * One server for every protocol on one port: HTTP/1.1 (Connect, gRPC-Web, plain
 * routes) and HTTP/2 cleartext (gRPC and Connect), told apart by the client's
 * first bytes.
 */
export async function startHttpServer(options: HttpServerOptions): Promise<HttpServer> {
  const { log } = options;
  let active = 0;
  const runRoute = (route: HttpRoute, path: string, request: HttpRequest, response: HttpResponse): void => {
    Promise.resolve(route(request, response)).catch((error: unknown) => {
      log.error({ err: error, path }, "plain route failed");
      if (!response.headersSent) sendJson(response, 500, { error: "internal error" });
      else response.end();
    });
  };
  const contextValues = (req: http.IncomingMessage | http2.Http2ServerRequest) => createContextValues().set(peerAddressKey, req.socket.remoteAddress ?? "");
  const interceptors = [...options.interceptors];
  const unaryJson = new UnaryJsonRoutes({ log, interceptors, readMaxBytes: options.readMaxBytes, contextValues });
  const connectHandler = connectNodeAdapter({
    routes: (router) => options.rpc(unaryJson.recording(router)),
    interceptors,
    readMaxBytes: options.readMaxBytes,
    maxTimeoutMs: MAX_TIMEOUT_MS,
    contextValues,
    fallback: (req, res) => {
      const path = (req.url ?? "/").split("?", 1)[0] ?? "/";
      sendJson(res as unknown as HttpResponse, 404, { error: `no route for ${path}` });
    },
  });
  const cors = options.cors !== undefined ? createCors(options.cors) : undefined;
  const handle = (req: http.IncomingMessage | http2.Http2ServerRequest, res: http.ServerResponse | http2.Http2ServerResponse): void => {
    active += 1;
    res.once("close", () => {
      active -= 1;
    });
    // Plain routes (pixel, health, metrics) first: they are the hot path and
    // need nothing from the RPC router.
    const url = req.url ?? "/";
    const query = url.indexOf("?");
    const path = query === -1 ? url : url.slice(0, query);
    if (cors?.(req as HttpRequest, res as unknown as HttpResponse, path) === true) return;
    const route = options.routes.get(path);
    if (route !== undefined) runRoute(route, path, req as HttpRequest, res as unknown as HttpResponse);
    else if (!unaryJson.take(req as HttpRequest, res as unknown as HttpResponse, path)) connectHandler(req, res);
  };

  const h1 = http.createServer({ keepAliveTimeout: 65_000 }, handle);
  const h2 = http2.createServer({}, handle);
  const sessions = new Set<http2.ServerHttp2Session>();
  h2.on("session", (session) => {
    sessions.add(session);
    session.once("close", () => sessions.delete(session));
  });
  const sockets = new Set<net.Socket>();
  // No Nagle: an answer written in two pieces (headers, then body) must not
  // wait for the client's delayed ACK. http.createServer sets this for its
  // own sockets; this server owns the sockets, so it sets it here.
  const server = net.createServer({ noDelay: true }, (socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    socket.once("error", () => socket.destroy());
    socket.once("data", (chunk: Buffer) => {
      socket.pause();
      socket.unshift(chunk);
      // "PRI" starts only the HTTP/2 preface; no HTTP/1.1 method is spelled so.
      if (chunk.toString("latin1", 0, 3) === H2_PREFACE.slice(0, 3)) {
        // The HTTP/2 session reads the socket itself, starting with the unshifted bytes.
        h2.emit("connection", socket);
      } else {
        h1.emit("connection", socket);
        socket.resume();
      }
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, options.host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  const host = options.host === "0.0.0.0" || options.host === "::" ? "127.0.0.1" : options.host;

  return {
    url: `http://${host}:${port}`,
    port,
    async close(timeoutMs: number) {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      h1.closeIdleConnections();
      for (const session of sessions) session.close();
      const deadline = Date.now() + timeoutMs;
      while (active > 0 && Date.now() < deadline) {
        h1.closeIdleConnections();
        await sleep(20);
      }
      if (active > 0) log.warn({ requests: active }, "shutdown timed out; closing in-flight requests");
      h1.closeAllConnections();
      for (const session of sessions) session.destroy();
      for (const socket of sockets) socket.destroy();
      await closed;
    },
  };
}
