import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { codeToString } from "@connectrpc/connect/protocol-connect";
import { BadRequest_FieldViolationSchema, BadRequestSchema, type BadRequest_FieldViolation } from "../../gen/google/rpc/error_details_pb.js";
import type { Logger } from "./logger.js";
import { requestScopeKey } from "./request-scope.js";
import { counter, histogram, type Registry } from "./metrics.js";

/**
 * Postgres SQLSTATEs that mean "the store is unreachable right now": connection
 * exceptions (08), admin or crash shutdown and "cannot connect now" (57P01-03),
 * too many connections (53300). Data exceptions (22) are the caller's data,
 * never an outage.
 */
const UNAVAILABLE_PG = /^(08|57P0[1-3]|53300)/;

/** Socket errors of a connection that could not be made or broke while in use. */
const UNAVAILABLE_SOCKET = new Set(["ECONNREFUSED", "ECONNRESET", "ECONNABORTED", "EPIPE", "ETIMEDOUT", "EHOSTUNREACH", "ENETUNREACH", "EAI_AGAIN"]);

/**
 * What the pg driver and pool say, without a code, when a connection is gone:
 * terminated ("… unexpectedly", "… due to connection timeout"), a client used
 * after its connection failed or closed ("… is not queryable"), or no
 * connection within the pool's timeout.
 */
const UNAVAILABLE_MESSAGE = /Connection terminated|is not queryable|timeout exceeded when trying to connect/;

/** Whether `error` means the store is unreachable right now (the caller should retry), not a bug. */
export function isStoreUnavailable(error: unknown): boolean {
  if (typeof error !== "object" || error === null) return false;
  const { code, syscall } = error as { code?: unknown; syscall?: unknown };
  if (typeof code === "string") {
    if (UNAVAILABLE_PG.test(code) || UNAVAILABLE_SOCKET.has(code)) return true;
    // A Unix socket file is missing while the embedded Postgres restarts.
    if (code === "ENOENT" && syscall === "connect") return true;
  }
  return error instanceof Error && UNAVAILABLE_MESSAGE.test(error.message);
}

/**
 * The longest error message an answer carries. A message may quote what the
 * caller sent, and gRPC carries it in a trailer: a megabyte there breaks the
 * HTTP/2 stream instead of answering.
 */
export const MAX_ERROR_MESSAGE_CHARS = 1_000;

/** `error` with its message cut to {@link MAX_ERROR_MESSAGE_CHARS}, never inside a surrogate pair. */
function capMessage(error: ConnectError): ConnectError {
  const raw = error.rawMessage;
  if (raw.length <= MAX_ERROR_MESSAGE_CHARS) return error;
  const last = raw.charCodeAt(MAX_ERROR_MESSAGE_CHARS - 1);
  const end = last >= 0xd800 && last <= 0xdbff ? MAX_ERROR_MESSAGE_CHARS - 1 : MAX_ERROR_MESSAGE_CHARS;
  const capped = new ConnectError(`${raw.slice(0, end)}…`, error.code, error.metadata, undefined, error.cause);
  capped.details = error.details;
  return capped;
}

/**
 * A field path: names, indexes and quoted map keys as the checks write them
 * (`events[3].data["odd key"]`, the key in JSON), whose quotes may hold
 * spaces, `;` and `:`. Brackets hold nothing else, so reading a path never
 * scans past its closing quote: a hostile message cannot make the split slow.
 */
const FIELD_PATH = String.raw`(?:[^\s;:"\[]|\[(?:\d+|"(?:[^"\\]|\\.)*")\])+`;

/** One `<field path>: <reason>`, up to the `; ` that starts the next one or the end. */
const VIOLATION = new RegExp(`(${FIELD_PATH}): ([\\s\\S]*?)(?:; (?=${FIELD_PATH}: )|$)`, "y");

/**
 * The field violations an invalid_argument message names. Every check writes
 * `<field path>: <reason>` (several joined by `; `); a message without a path,
 * from a request that did not parse, is one violation of the request as a
 * whole (field "").
 */
export function fieldViolations(message: string): BadRequest_FieldViolation[] {
  const violations: BadRequest_FieldViolation[] = [];
  VIOLATION.lastIndex = 0;
  while (VIOLATION.lastIndex < message.length) {
    const match = VIOLATION.exec(message);
    if (match === null) break;
    violations.push(create(BadRequest_FieldViolationSchema, { field: match[1]!, description: match[2]! }));
  }
  return violations.length > 0 && VIOLATION.lastIndex === message.length
    ? violations
    : [create(BadRequest_FieldViolationSchema, { field: "", description: message })];
}

/** `error` with a google.rpc.BadRequest detail if it is invalid_argument and has none. */
export function withBadRequest(error: ConnectError): ConnectError {
  if (error.code !== Code.InvalidArgument || error.findDetails(BadRequestSchema).length > 0) return error;
  error.details.push({ desc: BadRequestSchema, value: { fieldViolations: fieldViolations(error.rawMessage) } });
  return error;
}

/**
 * A response stream whose failure, raised while its handler runs (after this
 * interceptor returned), still carries the capped message and the details
 * of an error raised before.
 */
async function* streamEnding<T>(messages: AsyncIterable<T>): AsyncIterable<T> {
  try {
    yield* messages;
  } catch (error) {
    throw error instanceof ConnectError ? withBadRequest(capMessage(error)) : error;
  }
}

/**
 * Logs unexpected errors once, with their cause, and hides their details from
 * callers; counts every RPC by method and code. Expected failures
 * (ConnectErrors raised by handlers) pass through unchanged but for the
 * length of their message.
 */
export function createErrorInterceptor(processLog: Logger, registry: Registry): Interceptor {
  const calls = counter(registry, "funnel_rpc_requests_total", "RPCs by method and result code (Connect's names: ok, invalid_argument, unavailable, …).", ["method", "code"]);
  const seconds = histogram(registry, "funnel_rpc_duration_seconds", "RPC handling time.", ["method"]);
  return (next) => async (req) => {
    const method = `${req.service.typeName}/${req.method.name}`;
    const end = seconds.startTimer({ method });
    const scope = req.contextValues.get(requestScopeKey);
    try {
      const res = await next(req);
      calls.inc({ method, code: "ok" });
      if (scope !== undefined) scope.code = "ok";
      return res.stream ? { ...res, message: streamEnding(res.message) } : res;
    } catch (error) {
      // The request's logger: its lines carry the request id.
      const log = scope?.log ?? processLog;
      let wrapped: ConnectError;
      if (error instanceof ConnectError) {
        // Typed clients map errors to form fields by the detail; people read the message.
        wrapped = withBadRequest(capMessage(error));
      } else if (isStoreUnavailable(error)) {
        log.warn({ err: error, method }, "store unavailable");
        wrapped = new ConnectError("storage is unavailable, retry later", Code.Unavailable);
      } else {
        log.error({ err: error, method }, "unexpected RPC failure");
        wrapped = new ConnectError("internal error", Code.Internal);
      }
      calls.inc({ method, code: codeToString(wrapped.code) });
      if (scope !== undefined) scope.code = codeToString(wrapped.code);
      throw wrapped;
    } finally {
      end();
    }
  };
}
