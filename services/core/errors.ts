import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { codeToString } from "@connectrpc/connect/protocol-connect";
import type { Logger } from "./logger.js";
import { counter, histogram, type Registry } from "./metrics.js";

/** Postgres error classes that mean "the store is unreachable right now". */
const UNAVAILABLE_PG = /^(08|57P0[1-3]|53300)/;

/** Whether `error` means the store is unreachable right now (the caller should retry), not a bug. */
export function isStoreUnavailable(error: unknown): boolean {
  const code = (error as { code?: unknown }).code;
  if (typeof code === "string" && (UNAVAILABLE_PG.test(code) || code === "ECONNREFUSED" || code === "ECONNRESET")) {
    return true;
  }
  return error instanceof Error && /Connection terminated|timeout exceeded when trying to connect/.test(error.message);
}

/**
 * Logs unexpected errors once, with their cause, and hides their details from
 * callers; counts every RPC by method and code. Expected failures
 * (ConnectErrors raised by handlers) pass through unchanged.
 */
export function createErrorInterceptor(log: Logger, registry: Registry): Interceptor {
  const calls = counter(registry, "funnel_rpc_requests_total", "RPCs by method and result code (Connect's names: ok, invalid_argument, unavailable, …).", ["method", "code"]);
  const seconds = histogram(registry, "funnel_rpc_duration_seconds", "RPC handling time.", ["method"]);
  return (next) => async (req) => {
    const method = `${req.service.typeName}/${req.method.name}`;
    const end = seconds.startTimer({ method });
    try {
      const res = await next(req);
      calls.inc({ method, code: "ok" });
      return res;
    } catch (error) {
      let wrapped: ConnectError;
      if (error instanceof ConnectError) {
        wrapped = error;
      } else if (isStoreUnavailable(error)) {
        log.warn({ err: error, method }, "store unavailable");
        wrapped = new ConnectError("storage is unavailable, retry later", Code.Unavailable);
      } else {
        log.error({ err: error, method }, "unexpected RPC failure");
        wrapped = new ConnectError("internal error", Code.Internal);
      }
      calls.inc({ method, code: codeToString(wrapped.code) });
      throw wrapped;
    } finally {
      end();
    }
  };
}
