import type { DescMethod } from "@bufbuild/protobuf";
import { MethodOptions_IdempotencyLevel } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";

/** How failed calls of idempotent methods are tried again. */
export interface RetryOptions {
  /** Attempts in all, the first one included; 1 turns retries off. Default 4. */
  readonly maxAttempts?: number;
  /** Upper bound of the wait before the second attempt; it doubles for each later one. Default 100 ms. */
  readonly initialDelayMs?: number;
  /** Upper bound of any one wait. Default 2,000 ms. */
  readonly maxDelayMs?: number;
  /** Called before each wait, e.g. to log it. */
  readonly onRetry?: (retry: RetryEvent) => void;
}

/** One retry about to happen. */
export interface RetryEvent {
  readonly method: DescMethod;
  /** The attempt that failed, 1 for the first. */
  readonly attempt: number;
  readonly error: ConnectError;
  /** The wait before the next attempt. */
  readonly delayMs: number;
}

/**
 * Codes that say the call may succeed if sent again unchanged: the server could not be
 * reached or was not ready (`unavailable`), or one attempt ran out of time on the server's side
 * while the call's own deadline had time left (`deadline_exceeded`).
 */
const transientCodes: ReadonlySet<Code> = new Set([Code.Unavailable, Code.DeadlineExceeded]);

/**
 * Whether a method may be sent more than once: the `.proto` marks it with
 * `option idempotency_level = NO_SIDE_EFFECTS` (reads) or `IDEMPOTENT` (repeating it leaves
 * the same state and answer). Unmarked methods are never retried.
 */
export function isIdempotent(method: DescMethod): boolean {
  return method.idempotency !== MethodOptions_IdempotencyLevel.IDEMPOTENCY_UNKNOWN;
}

/**
 * Milliseconds left before the call's deadline, from the timeout header the transport set
 * (`grpc-timeout` for gRPC, `connect-timeout-ms` for Connect); undefined for a call without one.
 */
function timeoutHeaderMs(header: Headers): number | undefined {
  const connect = header.get("connect-timeout-ms");
  if (connect !== null) return Number(connect);
  const grpc = /^(\d+)([HMSmun])$/.exec(header.get("grpc-timeout") ?? "");
  if (grpc === null) return undefined;
  const unitMs = { H: 3_600_000, M: 60_000, S: 1_000, m: 1, u: 1e-3, n: 1e-6 }[grpc[2] as "H" | "M" | "S" | "m" | "u" | "n"];
  return Number(grpc[1]) * unitMs;
}

/** Tells the server how much of the call's deadline is left for this attempt. */
function setTimeoutHeader(header: Headers, ms: number): void {
  const whole = Math.max(1, Math.floor(ms));
  if (header.has("connect-timeout-ms")) header.set("connect-timeout-ms", String(whole));
  if (header.has("grpc-timeout")) header.set("grpc-timeout", `${whole}m`);
}

/** Resolves after `ms`, or rejects with the signal's reason when it aborts first. */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = () => {
      clearTimeout(timer);
      reject(ConnectError.from(signal.reason, Code.Canceled));
    };
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", done);
      resolve();
    }, ms);
    signal.addEventListener("abort", done, { once: true });
  });
}

/**
 * Retries unary calls of idempotent methods (see {@link isIdempotent}) that fail with a
 * transient code, up to `maxAttempts` in all, waiting between attempts with exponential
 * backoff and jitter: before attempt n+1 a random time between half and all of
 * min(maxDelayMs, initialDelayMs·2ⁿ⁻¹), so many clients that failed together do not come back
 * together. The call's deadline covers every attempt and wait: no wait outlasts it, and each
 * attempt tells the server the time that is left. Streams are not retried: the caller knows
 * where to resume them.
 */
export function createRetryInterceptor(options: RetryOptions = {}): Interceptor {
  const maxAttempts = Math.max(1, Math.floor(options.maxAttempts ?? 4));
  const initialDelayMs = options.initialDelayMs ?? 100;
  const maxDelayMs = options.maxDelayMs ?? 2_000;
  return (next) => async (req) => {
    if (req.stream || maxAttempts === 1 || !isIdempotent(req.method)) return next(req);
    const timeoutMs = timeoutHeaderMs(req.header);
    const deadline = timeoutMs === undefined ? Infinity : Date.now() + timeoutMs;
    for (let attempt = 1; ; attempt++) {
      try {
        return await next(req);
      } catch (cause) {
        const error = ConnectError.from(cause);
        if (attempt >= maxAttempts || !transientCodes.has(error.code) || req.signal.aborted) throw error;
        const ceiling = Math.min(maxDelayMs, initialDelayMs * 2 ** (attempt - 1));
        const delayMs = Math.round(ceiling / 2 + (Math.random() * ceiling) / 2);
        // A wait that ends at or after the deadline cannot lead to an answer in time.
        if (Date.now() + delayMs >= deadline) throw error;
        options.onRetry?.({ method: req.method, attempt, error, delayMs });
        await sleep(delayMs, req.signal);
        if (timeoutMs !== undefined) setTimeoutHeader(req.header, deadline - Date.now());
      }
    }
  };
}
