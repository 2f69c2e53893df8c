import { request as undiciRequest, type Agent } from "undici";
import { withAnySignal } from "../abort.js";
import { parseRetryAfter } from "./backoff.js";
import { checkLiteralHost, RefusedAddressError } from "./guard.js";

/** One outbound HTTP request. */
export interface OutboundRequest {
  readonly method: "GET" | "POST";
  readonly url: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string | undefined;
  readonly timeoutMs: number;
}

/** What one attempt got. `verdict` decides what happens next. */
export interface SendResult {
  /** null when no answer came. */
  readonly httpStatus: number | null;
  /** The first bytes of the answer (as many as the sender keeps). */
  readonly responseBody: Buffer;
  readonly durationMs: number;
  /** Empty when delivered. */
  readonly error: string;
  readonly verdict: "delivered" | "retry" | "dead";
  /** What `Retry-After` asked, in milliseconds. */
  readonly retryAfterMs: number | undefined;
}

export interface SenderOptions {
  /** The connection pool: {@link createGuardedAgent}, which refuses private addresses unless allowed. */
  readonly agent: Agent;
  readonly allowPrivate: boolean;
  /** The configuration variable that allows private addresses, named in refusals. */
  readonly allowSetting: string;
  readonly userAgent: string;
  /** How much of each answer is kept. */
  readonly bodyPrefixBytes: number;
}

export type Sender = (request: OutboundRequest, signal: AbortSignal) => Promise<SendResult>;

/** Most of an answer read (and dropped) past the kept prefix so its connection can serve the next request. */
const DRAIN_BYTES = 64 * 1024;

/**
 * Keeps the first `limit` bytes of a body. The rest is read and dropped up
 * to {@link DRAIN_BYTES}, keeping the connection for the next request; a
 * longer answer is cut off, which closes it. Once the prefix is read, a rest
 * that fails or stalls past the timeout only costs the connection: the answer
 * counts as it is.
 */
async function readPrefix(body: AsyncIterable<Buffer>, limit: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of body) {
      if (size < limit) chunks.push(chunk);
      size += chunk.byteLength;
      // Leaving the loop destroys the stream.
      if (size > limit + DRAIN_BYTES) break;
    }
  } catch (error) {
    if (size < limit) throw error;
  }
  return Buffer.concat(chunks).subarray(0, limit);
}

/** One value of a response header (the first, if repeated). */
const header = (headers: Record<string, string | string[] | undefined>, name: string): string | null => {
  const value = headers[name];
  return (Array.isArray(value) ? value[0] : value) ?? null;
};

/** Finds a refused-address error anywhere in a cause chain. */
function refusal(error: unknown): RefusedAddressError | undefined {
  for (let e: unknown = error; e instanceof Error; e = e.cause) if (e instanceof RefusedAddressError) return e;
  return undefined;
}

/** Names a network failure by its most specific cause: `ECONNREFUSED`, `ENOTFOUND`, … */
function networkError(error: unknown): string {
  let deepest: Error | undefined;
  for (let e: unknown = error; e instanceof Error; e = e.cause) deepest = e;
  const code = (deepest as { code?: unknown } | undefined)?.code;
  const message = deepest?.message ?? String(error);
  return typeof code === "string" && !message.includes(code) ? `network error: ${code} ${message}` : `network error: ${message}`;
}

/**
 * Creates the function that makes one attempt of an outbound request with
 * undici's request API on the guarded pool: the request's timeout over the
 * whole exchange, no retries inside (retries are jobs), no redirects
 * followed, the given User-Agent. 2xx is delivered; 5xx, 408, 429, timeouts
 * and network errors are worth a retry; a refused address, a redirect and any
 * other answer are final.
 */
export function createSender(options: SenderOptions): Sender {
  return async function send(request, signal) {
    const started = performance.now();
    const elapsed = () => Math.round((performance.now() - started) * 1000) / 1000;
    const result = (fields: Partial<SendResult> & Pick<SendResult, "verdict" | "error">): SendResult => ({
      httpStatus: null,
      responseBody: Buffer.alloc(0),
      durationMs: elapsed(),
      retryAfterMs: undefined,
      ...fields,
    });
    const literal = options.allowPrivate ? undefined : checkLiteralHost(new URL(request.url), options.allowSetting);
    if (literal !== undefined) return result({ verdict: "dead", error: literal.message });
    // The timeout covers reading the answer too; a cancellable timer, since
    // AbortSignal.timeout keeps one alive per request until it fires.
    const timeout = new AbortController();
    const timer = setTimeout(() => timeout.abort(), request.timeoutMs);
    try {
      const response = await withAnySignal([signal, timeout.signal], async (combined) => {
        const answer = await undiciRequest(request.url, {
          dispatcher: options.agent,
          method: request.method,
          headers: { ...request.headers, "user-agent": options.userAgent },
          body: request.body,
          signal: combined,
        });
        return { statusCode: answer.statusCode, headers: answer.headers, body: await readPrefix(answer.body, options.bodyPrefixBytes) };
      });
      const status = response.statusCode;
      const common = { httpStatus: status, responseBody: response.body };
      if (status >= 200 && status < 300) return result({ ...common, verdict: "delivered", error: "" });
      if (status === 408 || status === 429 || status >= 500) {
        return result({ ...common, verdict: "retry", error: `HTTP ${status}`, retryAfterMs: parseRetryAfter(header(response.headers, "retry-after")) });
      }
      if (status >= 300 && status < 400) {
        const location = header(response.headers, "location");
        return result({ ...common, verdict: "dead", error: `HTTP ${status}: redirects are not followed${location !== null ? ` (to ${location.slice(0, 200)})` : ""}` });
      }
      return result({ ...common, verdict: "dead", error: `HTTP ${status}` });
    } catch (error) {
      const refused = refusal(error);
      if (refused !== undefined) return result({ verdict: "dead", error: refused.message });
      if (timeout.signal.aborted) return result({ verdict: "retry", error: `timeout after ${request.timeoutMs} ms` });
      if (signal.aborted) return result({ verdict: "retry", error: "aborted: the worker is stopping" });
      return result({ verdict: "retry", error: networkError(error) });
    } finally {
      clearTimeout(timer);
    }
  };
}
