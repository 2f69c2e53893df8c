import ky from "ky";
import type { Agent } from "undici";
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

/** Reads at most `limit` bytes of a body, then lets the rest go. */
async function readPrefix(body: ReadableStream<Uint8Array> | null, limit: number): Promise<Buffer> {
  if (body === null) return Buffer.alloc(0);
  const reader = body.getReader();
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    while (size < limit) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(Buffer.from(value));
      size += value.byteLength;
    }
  } finally {
    await reader.cancel().catch(() => undefined);
  }
  return Buffer.concat(chunks).subarray(0, limit);
}

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
 * ky: the request's timeout over the whole exchange, no retries inside
 * (retries are jobs), no redirects followed, the given User-Agent,
 * connections from the guarded pool. 2xx is delivered; 5xx, 408, 429,
 * timeouts and network errors are worth a retry; a refused address, a
 * redirect and any other answer are final.
 */
export function createSender(options: SenderOptions): Sender {
  const client = ky.create({ retry: 0, timeout: false, throwHttpErrors: false, redirect: "manual" });
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
    const timeout = AbortSignal.timeout(request.timeoutMs);
    try {
      const response = await client(request.url, {
        method: request.method,
        headers: { ...request.headers, "user-agent": options.userAgent },
        ...(request.body !== undefined ? { body: request.body } : {}),
        signal: AbortSignal.any([signal, timeout]),
        // Passed through to fetch: the pool that pins the checked address.
        ...({ dispatcher: options.agent } as object),
      });
      const responseBody = await readPrefix(response.body, options.bodyPrefixBytes);
      const status = response.status;
      const common = { httpStatus: status, responseBody };
      if (status >= 200 && status < 300) return result({ ...common, verdict: "delivered", error: "" });
      if (status === 408 || status === 429 || status >= 500) {
        return result({ ...common, verdict: "retry", error: `HTTP ${status}`, retryAfterMs: parseRetryAfter(response.headers.get("retry-after")) });
      }
      if (status >= 300 && status < 400) {
        const location = response.headers.get("location");
        return result({ ...common, verdict: "dead", error: `HTTP ${status}: redirects are not followed${location !== null ? ` (to ${location.slice(0, 200)})` : ""}` });
      }
      return result({ ...common, verdict: "dead", error: `HTTP ${status}` });
    } catch (error) {
      const refused = refusal(error);
      if (refused !== undefined) return result({ verdict: "dead", error: refused.message });
      if (timeout.aborted) return result({ verdict: "retry", error: `timeout after ${request.timeoutMs} ms` });
      if (signal.aborted) return result({ verdict: "retry", error: "aborted: the worker is stopping" });
      return result({ verdict: "retry", error: networkError(error) });
    }
  };
}
