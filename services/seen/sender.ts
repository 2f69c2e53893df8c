import ky from "ky";
import { version } from "../core/version.js";
import { parseRetryAfter } from "./backoff.js";

/** One api delivery request. */
export interface DeliveryRequest {
  readonly url: string;
  /** The delivery id: stable across attempts, so the consumer can de-duplicate. */
  readonly idempotencyKey: string;
  readonly attempt: number;
  readonly body: string;
  readonly timeoutMs: number;
}

/** What one attempt got; `verdict` decides what happens next. */
export interface SendResult {
  /** null when no answer came. */
  readonly httpStatus: number | null;
  /** The first {@link BODY_PREFIX_BYTES} bytes of the answer, as text. */
  readonly responseBody: string;
  readonly durationMs: number;
  /** Empty when delivered. */
  readonly error: string;
  readonly verdict: "delivered" | "retry" | "dead";
  /** What `Retry-After` asked, in milliseconds. */
  readonly retryAfterMs: number | undefined;
}

export const BODY_PREFIX_BYTES = 200;
export const USER_AGENT = `Funnel-Seen/${version}`;

/** Reads at most `limit` bytes of a body, then lets the rest go. */
async function readPrefix(body: ReadableStream<Uint8Array> | null, limit: number): Promise<string> {
  if (body === null) return "";
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
  return Buffer.concat(chunks).subarray(0, limit).toString("utf8");
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
 * Sends one delivery with ky: POST JSON with `Idempotency-Key`, the
 * integration's timeout over the whole exchange, no retries inside (retries
 * are jobs), no redirects followed. 2xx is delivered; 5xx, 408, 429, timeouts
 * and network errors are retried; any other answer is final.
 */
export async function sendDelivery(request: DeliveryRequest, signal: AbortSignal): Promise<SendResult> {
  const started = performance.now();
  const elapsed = (): number => Math.round((performance.now() - started) * 1000) / 1000;
  const result = (fields: Partial<SendResult> & Pick<SendResult, "verdict" | "error">): SendResult => ({
    httpStatus: null,
    responseBody: "",
    durationMs: elapsed(),
    retryAfterMs: undefined,
    ...fields,
  });
  const timeout = AbortSignal.timeout(request.timeoutMs);
  try {
    const response = await ky.post(request.url, {
      body: request.body,
      headers: {
        "content-type": "application/json",
        "idempotency-key": request.idempotencyKey,
        "x-funnel-attempt": String(request.attempt),
        "user-agent": USER_AGENT,
      },
      retry: 0,
      timeout: false,
      throwHttpErrors: false,
      redirect: "manual",
      signal: AbortSignal.any([signal, timeout]),
    });
    const responseBody = await readPrefix(response.body, BODY_PREFIX_BYTES);
    const status = response.status;
    const common = { httpStatus: status, responseBody };
    if (status >= 200 && status < 300) return result({ ...common, verdict: "delivered", error: "" });
    if (status === 408 || status === 429 || status >= 500) {
      return result({ ...common, verdict: "retry", error: `HTTP ${status}`, retryAfterMs: parseRetryAfter(response.headers.get("retry-after")) });
    }
    if (status >= 300 && status < 400) return result({ ...common, verdict: "dead", error: `HTTP ${status}: redirects are not followed` });
    return result({ ...common, verdict: "dead", error: `HTTP ${status}` });
  } catch (error) {
    if (timeout.aborted) return result({ verdict: "retry", error: `timeout after ${request.timeoutMs} ms` });
    if (signal.aborted) return result({ verdict: "retry", error: "aborted: the worker is stopping" });
    return result({ verdict: "retry", error: networkError(error) });
  }
}
