import http from "node:http";
import http2 from "node:http2";
import net from "node:net";
import type { AddressInfo } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { createContextKey, createContextValues, type ConnectRouter, type Interceptor } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { createCors, type CorsOptions } from "./cors.js";
import { counter, gauge, histogram, type Registry } from "./metrics.js";
import { answerRequestFaults, createRequestFaultInterceptor, requestParsing } from "./request-faults.js";
import { bindRequestScope, RequestScope, requestId, requestScopeKey, requestScopeOf } from "./request-scope.js";
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
  /** Plain routes for every path that starts with the key (e.g. `/console/`), tried after `routes`. */
  readonly prefixRoutes?: ReadonlyMap<string, HttpRoute>;
  /** Largest accepted RPC message, in bytes. */
  readonly readMaxBytes: number;
  /** Cross-origin access for browser-facing paths. */
  readonly cors?: CorsOptions;
  /** Where the connection metrics go. */
  readonly metrics: Registry;
  /** The share of `/track` requests that get an access log line (0..1); every other request gets one. */
  readonly accessLogTrackSample?: number;
  /**
   * Longest wait for a request's headers, counted from its first byte (or,
   * for a new connection, from the connect: one that sends nothing is closed
   * too). An HTTP/2 session that opens no stream in this time is closed.
   */
  readonly headersTimeoutMs: number;
  /** Longest wait for a whole request, body included (HTTP/1.1 and HTTP/2 streams). */
  readonly requestTimeoutMs: number;
  /** How long an idle keep-alive connection (an HTTP/2 session with no stream) is kept. */
  readonly keepAliveTimeoutMs: number;
  /** Open connections at most; the server closes any more at once. */
  readonly maxConnections: number;
}

export interface HttpServer {
  /** Base URL, e.g. `http://127.0.0.1:8080`. */
  readonly url: string;
  readonly port: number;
  /**
   * Drains: stops accepting connections, closes idle ones, answers requests
   * that arrive on open connections with `503` (HTTP/1.1: and `Connection:
   * close`; HTTP/2 sessions get a GOAWAY), lets in-flight requests finish for
   * up to `timeoutMs`, then closes whatever is left.
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

/**
 * Binds `server` to `host`:`port` (0 picks a free port) and returns its base
 * URL: a wildcard host is reached on loopback, an IPv6 host in brackets.
 */
export async function listen(server: net.Server, port: number, host: string): Promise<{ url: string; port: number }> {
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const bound = (server.address() as AddressInfo).port;
  const reachable = host === "0.0.0.0" || host === "::" ? "127.0.0.1" : host.includes(":") ? `[${host}]` : host;
  return { url: `http://${reachable}:${bound}`, port: bound };
}

/** Writes a small JSON answer on a plain route. */
export function sendJson(res: HttpResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text), ...headers });
  res.end(text);
}

/** The public plain routes whose answer time `funnel_http_request_duration_seconds` records. */
const TIMED_ROUTES = new Set(["/track", "/download", "/v1/seen"]);

/** Content types of Connect calls (unary and streaming), with or without parameters. */
const CONNECT_CONTENT_TYPE = /^application\/(connect\+)?(json|proto)(;|$)/i;

/**
 * Answers a path that is neither a plain route nor a method. A gRPC or
 * gRPC-Web call gets the protocol's own unimplemented (grpc-status 12, in
 * trailers-only form), a Connect call Connect's unimplemented error (HTTP
 * 404), anything else a 404 with a JSON body.
 */
function answerNoRoute(req: http.IncomingMessage | http2.Http2ServerRequest, res: HttpResponse): void {
  // The path is the caller's text: quoted short, in every answer.
  const path = ((req.url ?? "/").split("?", 1)[0] ?? "/").slice(0, 200);
  const contentType = req.headers["content-type"] ?? "";
  if (contentType.startsWith("application/grpc")) {
    const web = contentType.startsWith("application/grpc-web");
    res.writeHead(200, {
      "content-type": web ? "application/grpc-web+proto" : "application/grpc+proto",
      "grpc-status": "12",
      "grpc-message": encodeURIComponent(`${path} is not a method of this server`),
    });
    res.end();
  } else if (req.method === "POST" && CONNECT_CONTENT_TYPE.test(contentType)) {
    sendJson(res, 404, { code: "unimplemented", message: `${path} is not a method of this server` });
  } else {
    sendJson(res, 404, { error: `no route for ${path}` });
  }
}

/**
 * Closes an HTTP/2 session (GOAWAY) whenever it has no stream for a while:
 * `firstMs` if it never opened one (a client that connects and stalls),
 * `idleMs` once it did (an idle keep-alive session).
 */
function closeWhenIdle(session: http2.ServerHttp2Session, firstMs: number, idleMs: number): void {
  let open = 0;
  let timer: NodeJS.Timeout | undefined;
  const wait = (ms: number): void => {
    timer = setTimeout(() => session.close(), ms);
    timer.unref();
  };
  session.on("stream", (stream) => {
    open += 1;
    clearTimeout(timer);
    stream.once("close", () => {
      open -= 1;
      if (open === 0 && !session.closed) wait(idleMs);
    });
  });
  session.once("close", () => clearTimeout(timer));
  wait(firstMs);
}

/**
 * Resets an HTTP/2 stream whose client has not finished sending its request
 * within `timeoutMs` (what `requestTimeout` does for HTTP/1.1). A stream whose
 * request is complete is never cut, however long its answer runs.
 */
function cutUnlessSent(stream: http2.ServerHttp2Stream, timeoutMs: number): void {
  if (stream.state.remoteClose === 1) return;
  const timer = setTimeout(() => {
    if (!stream.destroyed && stream.state.remoteClose !== 1) stream.close(http2.constants.NGHTTP2_CANCEL);
  }, timeoutMs);
  timer.unref();
  stream.once("close", () => clearTimeout(timer));
}

/**
 * Ends an HTTP/2 stream once its answer is sent, when the client has not sent
 * all of its request yet (an answer that refuses a body over `readMaxBytes`):
 * nothing reads the rest, so the client could never finish, and the stream
 * would stay open. RFC 9113 §8.1 ends it so: RST_STREAM with NO_ERROR, which
 * Node sends after what is queued.
 */
function endWhenAnswered(stream: http2.ServerHttp2Stream): void {
  // The compatibility layer sends every answer's trailers last; this listener
  // runs after it has queued them, so the answer is whole.
  stream.once("wantTrailers", () => {
    if (!stream.destroyed && stream.state.remoteClose !== 1) stream.close(http2.constants.NGHTTP2_NO_ERROR);
  });
}

/**
 * The answer to a request that arrives after the drain began. Nothing of it
 * was done, and a `503` says so for certain (a connection closed unread would
 * look to the client like one cut after the work), so any client may send it
 * again: HTTP/1.1 on a new connection, which reaches another process.
 */
function refuseWhileDraining(req: http.IncomingMessage | http2.Http2ServerRequest, res: HttpResponse): void {
  // HTTP/2 forbids the Connection header; its GOAWAY already says it.
  const connection: Record<string, string> = req.httpVersionMajor === 1 ? { connection: "close" } : {};
  sendJson(res, 503, { error: "the server is shutting down; retry" }, { "retry-after": "1", ...connection });
}

/**
 * One server for every protocol on one port: HTTP/1.1 (Connect, gRPC-Web, plain
 * routes) and HTTP/2 cleartext (gRPC and Connect), told apart by the client's
 * first bytes.
 */
export async function startHttpServer(options: HttpServerOptions): Promise<HttpServer> {
  const { log } = options;
  /** Requests being answered, on either protocol. */
  const inFlight = new Set<HttpResponse | http2.Http2ServerResponse>();
  let draining = false;
  const trackSample = options.accessLogTrackSample ?? 1;
  const latency = histogram(options.metrics, "funnel_http_request_duration_seconds", "Time to answer the public plain routes (/track, /download, /v1/seen), by route.", ["route"]);
  const runRoute = (route: HttpRoute, path: string, request: HttpRequest, response: HttpResponse): void => {
    Promise.resolve(route(request, response)).catch((error: unknown) => {
      (requestScopeOf(request)?.log ?? log).error({ err: error, path }, "plain route failed");
      if (!response.headersSent) sendJson(response, 500, { error: "internal error" });
      else response.end();
    });
  };
  const contextValues = (req: http.IncomingMessage | http2.Http2ServerRequest) =>
    createContextValues().set(peerAddressKey, req.socket.remoteAddress ?? "").set(requestScopeKey, requestScopeOf(req));
  // The request-fault interceptor goes first: it marks the calls whose
  // interceptors ran, which tells a request that could not be read from a
  // server fault (see request-faults.ts).
  const interceptors = [createRequestFaultInterceptor(), ...options.interceptors];
  const unaryJson = new UnaryJsonRoutes({ log, interceptors, readMaxBytes: options.readMaxBytes, contextValues, jsonOptions: requestParsing.jsonOptions });
  const connectHandler = connectNodeAdapter({
    routes: (router) => {
      options.rpc(unaryJson.recording(router));
      // The adapter reads the handlers once this returns. Services are
      // registered without options of their own, so all run the interceptors above.
      router.handlers.splice(0, router.handlers.length, ...router.handlers.map(answerRequestFaults));
    },
    interceptors,
    readMaxBytes: options.readMaxBytes,
    ...requestParsing,
    maxTimeoutMs: MAX_TIMEOUT_MS,
    contextValues,
    fallback: (req, res) => answerNoRoute(req, res as unknown as HttpResponse),
  });
  const cors = options.cors !== undefined ? createCors(options.cors) : undefined;
  const prefixes = [...(options.prefixRoutes ?? [])];
  const prefixRoute = (path: string): HttpRoute | undefined => prefixes.find(([prefix]) => path.startsWith(prefix))?.[1];
  const handle = (req: http.IncomingMessage | http2.Http2ServerRequest, res: http.ServerResponse | http2.Http2ServerResponse): void => {
    const url = req.url ?? "/";
    const query = url.indexOf("?");
    const path = query === -1 ? url : url.slice(0, query);
    const scope = new RequestScope(requestId(req.headers["x-request-id"]), log);
    bindRequestScope(req, scope);
    res.setHeader("x-request-id", scope.id);
    const started = performance.now();
    // /track is the hot path: only a sample of it is logged.
    const logged = path !== "/track" || Math.random() < trackSample;
    const timed = TIMED_ROUTES.has(path);
    inFlight.add(res);
    res.once("close", () => {
      inFlight.delete(res);
      if (timed) latency.observe({ route: path }, (performance.now() - started) / 1000);
      if (logged) {
        scope.log.info(
          { method: req.method, route: path.slice(0, 200), status: res.statusCode, code: scope.code, ms: Math.round((performance.now() - started) * 10) / 10 },
          "request",
        );
      }
    });
    if (draining) {
      refuseWhileDraining(req, res as unknown as HttpResponse);
      return;
    }
    // Plain routes (pixel, health, metrics) first: they are the hot path and
    // need nothing from the RPC router.
    if (cors?.(req as HttpRequest, res as unknown as HttpResponse, path) === true) return;
    const route = options.routes.get(path) ?? prefixRoute(path);
    if (route !== undefined) runRoute(route, path, req as HttpRequest, res as unknown as HttpResponse);
    // connect-es throws, uncaught, on a request that names no authority
    // (HTTP/1.0 without Host, HTTP/2 without :authority); both RPC paths refuse it.
    else if (("authority" in req ? req.authority : req.headers.host) === undefined) sendJson(res as unknown as HttpResponse, 400, { error: "an RPC needs a Host header" });
    else if (!unaryJson.take(req as HttpRequest, res as unknown as HttpResponse, path)) connectHandler(req, res);
  };

  const h1 = http.createServer(
    {
      keepAliveTimeout: options.keepAliveTimeoutMs,
      headersTimeout: options.headersTimeoutMs,
      requestTimeout: options.requestTimeoutMs,
      // Node enforces the two timeouts above by a periodic check: this one
      // cuts a stalled request at most a quarter of the header timeout late.
      connectionsCheckingInterval: Math.min(1_000, options.headersTimeoutMs / 4),
    },
    handle,
  );
  // http.Server starts tracking its connections (the timeout checks, and what
  // closeIdleConnections closes) when it starts listening. This one never
  // listens, the port is the net server's below, so it is told it does.
  h1.emit("listening");
  const h2 = http2.createServer({}, handle);
  const sessions = new Set<http2.ServerHttp2Session>();
  h2.on("session", (session) => {
    sessions.add(session);
    session.once("close", () => sessions.delete(session));
    closeWhenIdle(session, options.headersTimeoutMs, options.keepAliveTimeoutMs);
    // A client that connected just before the drain began gets its GOAWAY too.
    if (draining) session.close();
  });
  h2.on("stream", (stream) => cutUnlessSent(stream, options.requestTimeoutMs));
  h2.on("stream", endWhenAnswered);

  const dropped = counter(options.metrics, "funnel_http_connections_dropped_total", "Connections closed on arrival because HTTP_MAX_CONNECTIONS were open");
  const connections = gauge(options.metrics, "funnel_http_connections", "Open client connections of the HTTP server");
  const sockets = new Set<net.Socket>();
  /** Connections that have sent nothing yet, so belong to neither protocol. */
  const unread = new Set<net.Socket>();
  // No Nagle: an answer written in two pieces (headers, then body) must not
  // wait for the client's delayed ACK. http.createServer sets this for its
  // own sockets; this server owns the sockets, so it sets it here.
  const server = net.createServer({ noDelay: true }, (socket) => {
    sockets.add(socket);
    unread.add(socket);
    connections.inc();
    socket.once("close", () => {
      sockets.delete(socket);
      unread.delete(socket);
      connections.dec();
    });
    socket.once("error", () => socket.destroy());
    // Neither protocol's timeouts run before the first byte: a connection
    // that never sends one is closed here.
    const silent = (): void => {
      socket.destroy();
    };
    socket.setTimeout(options.headersTimeoutMs, silent);
    socket.once("data", (chunk: Buffer) => {
      socket.setTimeout(0);
      socket.off("timeout", silent);
      unread.delete(socket);
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
  // Over the cap, Node closes a new connection as soon as it is accepted.
  server.maxConnections = options.maxConnections;
  server.on("drop", () => dropped.inc());
  const { url, port } = await listen(server, options.port, options.host);

  return {
    url,
    port,
    async close(timeoutMs: number) {
      draining = true;
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      // Requests being answered finish; an HTTP/1.1 connection closes after its answer.
      for (const res of inFlight) {
        if (res instanceof http.ServerResponse && !res.headersSent) res.setHeader("connection", "close");
      }
      h1.closeIdleConnections();
      for (const socket of unread) socket.destroy();
      for (const session of sessions) session.close();
      const deadline = Date.now() + timeoutMs;
      while (inFlight.size > 0 && Date.now() < deadline) {
        // A connection whose answer had gone out keep-alive is idle once it is sent.
        h1.closeIdleConnections();
        await sleep(20);
      }
      if (inFlight.size > 0) log.warn({ requests: inFlight.size }, "shutdown timed out; cutting the requests still in flight");
      h1.closeAllConnections();
      // Stops the timeout checks that emitting "listening" started.
      h1.close();
      for (const session of sessions) session.destroy();
      for (const socket of sockets) socket.destroy();
      await closed;
    },
  };
}
