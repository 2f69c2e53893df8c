import { Code, ConnectError } from "@connectrpc/connect";
import type { TrustedProxies } from "../core/client-address.js";
import { sendJson, type HttpRequest, type HttpResponse, type HttpRoute } from "../core/http-server.js";
import type { Logger } from "../core/logger.js";
import { requestLog } from "../core/request-scope.js";
import { downloadParams, LIMITS } from "./event-input.js";
import type { Recorder } from "./recorder.js";
import { parseStag } from "./stag.js";

/**
 * `GET /download?stag=…&…`: records the download with every query parameter
 * (the first value of a repeated one), then redirects to the APK: the
 * partner's `download_redirect_url`, else `DOWNLOAD_REDIRECT_URL`; `204` when
 * neither is set. A bad stag is a `400` and nothing is recorded. `HEAD`
 * answers the same without recording (link checkers and previews).
 */
export function createDownloadRoute(deps: {
  record: Recorder;
  redirectFor: (partnerId: string) => Promise<string>;
  /** Whose forwarding headers give the client's address and URL (`TRUSTED_PROXIES`). */
  proxies: TrustedProxies;
  log: Logger;
}): HttpRoute {
  return async (req: HttpRequest, res: HttpResponse) => {
    if (req.method !== "GET" && req.method !== "HEAD") {
      sendJson(res, 405, { error: "method: only GET and HEAD" }, { allow: "GET, HEAD" });
      return;
    }
    const query = new URL(req.url ?? "/", "http://funnel.invalid").searchParams;
    const params: Record<string, string> = {};
    for (const [name, value] of query) if (!(name in params)) params[name] = value;
    let redirect: string;
    try {
      const stag = parseStag(params.stag ?? "");
      if (req.method === "HEAD") {
        redirect = await deps.redirectFor(stag.partnerId);
      } else {
        const userAgent = req.headers["user-agent"] ?? "";
        const origin = deps.proxies.origin(req);
        const recorded = await deps.record({
          kind: "download",
          stag,
          occurredAt: new Date(),
          // Named as in the link: `utm: contains a NUL character`.
          params: downloadParams(params, ""),
          url: origin.url.slice(0, LIMITS.url),
          ip: origin.ip,
          userAgent: userAgent.slice(0, LIMITS.userAgent),
          userId: "",
          deviceId: "",
        });
        redirect = recorded.redirectUrl;
      }
    } catch (error) {
      if (error instanceof ConnectError && error.code === Code.InvalidArgument) {
        sendJson(res, 400, { error: error.rawMessage });
        return;
      }
      requestLog(req, deps.log).error({ err: error }, "could not record a download");
      sendJson(res, 503, { error: "the download could not be recorded, retry later" }, { "retry-after": "1" });
      return;
    }
    if (redirect === "") {
      res.writeHead(204, { "cache-control": "no-store" });
      res.end();
      return;
    }
    res.writeHead(302, { location: redirect, "cache-control": "no-store", "content-length": "0" });
    res.end();
  };
}
