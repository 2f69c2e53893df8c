import { isUuid } from "../core/validate.js";
import { randomUUID } from "node:crypto";
import type { AnalyticsAppender } from "../core/analytics/appender.js";
import type { ClickHouse } from "../core/clickhouse.js";
import type { ClientOrigin, TrustedProxies } from "../core/client-address.js";
import { dayOf } from "../core/day.js";
import type { CookieSameSite } from "./settings.js";
import { sendJson, type HttpRequest, type HttpResponse, type HttpRoute } from "../core/http-server.js";
import type { Logger } from "../core/logger.js";
import { counter, type Registry } from "../core/metrics.js";
import { requestLog } from "../core/request-scope.js";
import type { TrackerCache } from "./cache.js";
import { countHits, parseRange, RangeParameterError } from "./stats.js";

/** The ClickHouse table (and analytics stream) of pixel hits. */
export const TRACKER_EVENTS = "tracker_events";

/** The cookie lives 400 days, the longest browsers keep one; every hit renews it. */
const COOKIE_MAX_AGE_SECONDS = 400 * 86_400;
const NO_STORE = { "cache-control": "no-store" };

/**
 * A transparent 1×1 GIF89a, for `?format=gif`: an `<img>` then fires `load`
 * and shows nothing. Header and logical screen (1×1, a two-colour table),
 * the table, a graphic control extension making colour 0 transparent, one
 * image of one pixel (LZW: clear, index 0, end) and the trailer.
 */
const TRANSPARENT_GIF = Buffer.from(
  "474946383961" + "01000100" + "800000" + "000000" + "ffffff" + "21f90401000000" + "00" + "2c000000000100010000" + "0202440100" + "3b",
  "hex",
);

/** How the `user_id` cookie is written (TRACKER_COOKIE_DOMAIN, TRACKER_COOKIE_SAMESITE). */
export interface PixelCookieOptions {
  /** `Domain` attribute; undefined: a host-only cookie. */
  readonly domain: string | undefined;
  /** Fixed `SameSite`; undefined: `None` over HTTPS, `Lax` over plain HTTP. */
  readonly sameSite: CookieSameSite | undefined;
}

const SAME_SITE_WORDS: Readonly<Record<CookieSameSite, string>> = { lax: "Lax", strict: "Strict", none: "None" };

/**
 * The `Set-Cookie` value for `userId`. Over HTTPS (the request's own TLS, or
 * `X-Forwarded-Proto: https` from a trusted proxy) it is `SameSite=None;
 * Secure` unless configured otherwise, so a page on another site that
 * embeds the pixel sends it back; over plain HTTP `SameSite=Lax`, as
 * browsers refuse `None` without `Secure` and `Secure` cookies from plain
 * HTTP. `SameSite=None` always carries `Secure`.
 */
export function pixelCookie(userId: string, origin: ClientOrigin, options: PixelCookieOptions): string {
  const sameSite = options.sameSite ?? (origin.scheme === "https" ? "none" : "lax");
  const secure = origin.scheme === "https" || sameSite === "none";
  const domain = options.domain === undefined ? "" : `; Domain=${options.domain}`;
  return `user_id=${userId}; Max-Age=${COOKIE_MAX_AGE_SECONDS}; Path=/${domain}; HttpOnly; SameSite=${SAME_SITE_WORDS[sameSite]}${secure ? "; Secure" : ""}`;
}

export interface PixelDeps {
  readonly cache: TrackerCache;
  readonly analytics: AnalyticsAppender;
  readonly clickhouse: ClickHouse;
  readonly proxies: TrustedProxies;
  readonly cookie: PixelCookieOptions;
  readonly log: Logger;
  readonly metrics: Registry;
}

function queryOf(req: HttpRequest): URLSearchParams {
  const url = req.url ?? "";
  const mark = url.indexOf("?");
  return new URLSearchParams(mark === -1 ? "" : url.slice(mark + 1));
}

/**
 * The `user_id` cookie when it holds one of our ids (a UUID, in lower case),
 * else undefined. Ingest reads it too, to join a browser's events to its hits.
 */
export function userIdCookie(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  for (const part of header.split(";")) {
    const eq = part.indexOf("=");
    if (eq !== -1 && part.slice(0, eq).trim() === "user_id") {
      const value = part.slice(eq + 1).trim();
      if (isUuid(value)) return value.toLowerCase();
    }
  }
  return undefined;
}

function onlyGet(req: HttpRequest, res: HttpResponse): boolean {
  if (req.method === "GET") return true;
  sendJson(res, 405, { error: `method ${req.method ?? ""} not allowed; use GET` }, { allow: "GET", ...NO_STORE });
  return false;
}

/** `GET /track` (the pixel) and `GET /stats`. */
export function createPixelRoutes(deps: PixelDeps): Map<string, HttpRoute> {
  const { cache, analytics, clickhouse, proxies, cookie, log } = deps;
  const hits = counter(deps.metrics, "funnel_tracker_hits_total", "Pixel requests by outcome.", ["result"]);
  // Bound once: the label lookup is not repeated on every hit.
  const outcome = {
    recorded: hits.labels("recorded"),
    badRequest: hits.labels("bad_request"),
    unknown: hits.labels("unknown"),
    unavailable: hits.labels("unavailable"),
  };

  const track: HttpRoute = async (req, res) => {
    if (!onlyGet(req, res)) return;
    const query = queryOf(req);
    const id = query.get("id");
    const format = query.get("format");
    // The URL alone chooses the answer: browsers send `Accept: image/*` for every <img>, so it says nothing.
    if (format !== null && format !== "gif") {
      outcome.badRequest.inc();
      return sendJson(res, 400, { error: 'format: must be "gif" or absent (204)' }, NO_STORE);
    }
    if (id === null || id === "") {
      outcome.badRequest.inc();
      return sendJson(res, 400, { error: "id: required (a tracker UUID)" }, NO_STORE);
    }
    if (!isUuid(id)) {
      outcome.badRequest.inc();
      return sendJson(res, 400, { error: "id: not a UUID" }, NO_STORE);
    }
    const trackerId = id.toLowerCase();
    let value = cache.get(trackerId);
    if (value === undefined) {
      try {
        value = await cache.lookup(trackerId);
      } catch (error) {
        requestLog(req, log).warn({ error: (error as Error).message }, "tracker lookup failed");
        outcome.unavailable.inc();
        return sendJson(res, 503, { error: "tracker lookup unavailable; retry" }, { "retry-after": "1", ...NO_STORE });
      }
      if (value === undefined) {
        outcome.unknown.inc();
        return sendJson(res, 404, { error: `id: no tracker ${trackerId}` }, NO_STORE);
      }
    }
    const userId = userIdCookie(req.headers.cookie) ?? randomUUID();
    const origin = proxies.origin(req);
    const at = new Date();
    try {
      await analytics.append(TRACKER_EVENTS, {
        date: dayOf(at),
        date_time: at.toISOString(),
        event_id: randomUUID(),
        tracker_id: trackerId,
        ip: origin.ip === "" ? "::" : origin.ip,
        user_id: userId,
        user_agent: req.headers["user-agent"] ?? "",
        url: origin.url,
        value,
      });
    } catch (error) {
      // Not durable, so not acknowledged: the browser (or the page) may retry.
      requestLog(req, log).warn({ error: (error as Error).message }, "pixel hit not recorded");
      outcome.unavailable.inc();
      return sendJson(res, 503, { error: "hit not recorded; retry" }, { "retry-after": "1", ...NO_STORE });
    }
    outcome.recorded.inc();
    const setCookie = pixelCookie(userId, origin, cookie);
    if (format === "gif") {
      res.writeHead(200, { "set-cookie": setCookie, "content-type": "image/gif", "content-length": TRANSPARENT_GIF.length, ...NO_STORE });
      res.end(TRANSPARENT_GIF);
      return;
    }
    res.writeHead(204, { "set-cookie": setCookie, ...NO_STORE });
    res.end();
  };

  const stats: HttpRoute = async (req, res) => {
    if (!onlyGet(req, res)) return;
    const query = queryOf(req);
    const trackerId = query.get("tracker_id") ?? "";
    if (trackerId === "") return sendJson(res, 400, { error: "tracker_id: required (a tracker UUID)" });
    if (!isUuid(trackerId)) return sendJson(res, 400, { error: "tracker_id: not a UUID" });
    const from = query.get("from") ?? undefined;
    const to = query.get("to") ?? undefined;
    let range;
    try {
      range = parseRange(from, to);
    } catch (error) {
      if (error instanceof RangeParameterError) return sendJson(res, 400, { error: error.message });
      throw error;
    }
    const id = trackerId.toLowerCase();
    let known: string | undefined;
    try {
      known = await cache.lookup(id);
    } catch {
      return sendJson(res, 503, { error: "tracker lookup unavailable; retry" }, { "retry-after": "1" });
    }
    if (known === undefined) return sendJson(res, 404, { error: `tracker_id: no tracker ${id}` });
    let count: number;
    try {
      count = (await countHits(clickhouse, id, range)).total;
    } catch (error) {
      requestLog(req, log).warn({ error: (error as Error).message }, "stats query failed");
      return sendJson(res, 503, { error: "statistics unavailable (ClickHouse); retry" }, { "retry-after": "5" });
    }
    sendJson(res, 200, { tracker_id: id, from, to, count });
  };

  return new Map([
    ["/track", track],
    ["/stats", stats],
  ]);
}
