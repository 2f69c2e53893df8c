import { toJson } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { MarkSeenRequestSchema, MarkSeenResponseSchema } from "../../gen/funnel/seen/v1/seen_pb.js";
import { isStoreUnavailable } from "../core/errors.js";
import { sendJson, type HttpRequest, type HttpRoute } from "../core/http-server.js";
import type { Logger } from "../core/logger.js";
import { findUnknownKey } from "../core/request-faults.js";
import { requestLog } from "../core/request-scope.js";
import type { CallerIdentity } from "./identity.js";
import type { Marker } from "./marker.js";
import type { SeenMetrics } from "./metrics.js";
import { failureResult, markResponse } from "./service.js";
import { requireItemId, requireTag } from "./validation.js";

/** `POST /v1/seen`: MarkSeen for clients that speak plain HTTP. */
export const SEEN_PATH = "/v1/seen";

/** Largest accepted body: a tag and an id are far smaller. */
const MAX_BODY = 16 * 1024;

class BodyTooLarge extends Error {}

/** Refuses bytes that are not UTF-8 instead of turning them into U+FFFD. */
const utf8 = new TextDecoder("utf-8", { fatal: true });

async function readBody(req: HttpRequest): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY) throw new BodyTooLarge();
    chunks.push(chunk);
  }
  try {
    return utf8.decode(Buffer.concat(chunks));
  } catch {
    throw new ConnectError("body: not valid UTF-8", Code.InvalidArgument);
  }
}

/** `{tag, id}` from the JSON body; errors name the field. */
function parseMark(text: string): { tag: string; id: string } {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new ConnectError("body: not JSON (expected {\"tag\": …, \"id\": …})", Code.InvalidArgument);
  }
  if (body === null || typeof body !== "object" || Array.isArray(body)) throw new ConnectError("body: must be a JSON object", Code.InvalidArgument);
  // As on the RPC paths: a misspelled key is refused, never silently dropped.
  const unknown = findUnknownKey(MarkSeenRequestSchema, body);
  if (unknown !== undefined) throw new ConnectError(`${unknown}: unknown field`, Code.InvalidArgument);
  const { tag, id } = body as Record<string, unknown>;
  if (tag !== undefined && typeof tag !== "string") throw new ConnectError("tag: must be a string", Code.InvalidArgument);
  if (id !== undefined && typeof id !== "string") throw new ConnectError("id: must be a string", Code.InvalidArgument);
  return { tag: requireTag(tag ?? ""), id: requireItemId(id ?? "") };
}

const HTTP_STATUS: Partial<Record<Code, number>> = {
  [Code.InvalidArgument]: 400,
  [Code.Unauthenticated]: 401,
  [Code.PermissionDenied]: 403,
  [Code.Unavailable]: 503,
};

export function createSeenRoute(deps: { mark: Marker; caller: CallerIdentity; metrics: SeenMetrics; log: Logger }): HttpRoute {
  const { metrics } = deps;
  return async (req, res) => {
    if (req.method !== "POST") {
      sendJson(res, 405, { error: `method ${req.method ?? ""} not allowed; use POST` }, { allow: "POST" });
      return;
    }
    try {
      let text: string;
      try {
        text = await readBody(req);
      } catch (error) {
        if (error instanceof BodyTooLarge) {
          metrics.requests.inc({ result: "invalid_argument" });
          sendJson(res, 413, { error: `body: larger than ${MAX_BODY} bytes` }, { connection: "close" });
          return;
        }
        throw error;
      }
      const { tag, id } = parseMark(text);
      const identity = await deps.caller({
        authorization: req.headers.authorization,
        header: (name) => {
          const value = req.headers[name];
          return Array.isArray(value) ? value.join(",") : value;
        },
        peer: req.socket.remoteAddress ?? "",
      });
      const result = await deps.mark(identity, tag, id);
      metrics.requests.inc({ result: "ok" });
      sendJson(res, 200, toJson(MarkSeenResponseSchema, markResponse(result, identity)));
    } catch (error) {
      const result = failureResult(error);
      metrics.requests.inc({ result });
      if (error instanceof ConnectError) {
        const status = HTTP_STATUS[error.code] ?? 500;
        sendJson(res, status, { error: error.rawMessage }, status === 503 ? { "retry-after": "1" } : {});
        return;
      }
      if (isStoreUnavailable(error)) {
        requestLog(req, deps.log).warn({ err: error }, "seen mark not stored: storage unavailable");
        sendJson(res, 503, { error: "mark not stored: storage is unavailable, retry" }, { "retry-after": "1" });
        return;
      }
      throw error;
    }
  };
}
