import type { ApiSettings } from "./integration.js";

/** The longest `Retry-After` obeyed: a consumer asking for more is retried after a day. */
export const RETRY_AFTER_CAP_MS = 86_400_000;

/**
 * The wait before the next attempt after `failures` failed attempts of the
 * current round: initial × 2^(failures−1) up to the integration's maximum,
 * ±25 % jitter so retries of many marks spread out, and never less than what
 * the consumer's `Retry-After` asked (up to a day).
 */
export function retryDelayMs(
  settings: Pick<ApiSettings, "initialBackoffMs" | "maxBackoffMs">,
  failures: number,
  retryAfterMs?: number,
  random: () => number = Math.random,
): number {
  const exponential = settings.initialBackoffMs * 2 ** Math.min(40, Math.max(0, failures - 1));
  const jittered = Math.min(settings.maxBackoffMs, exponential) * (0.75 + random() * 0.5);
  return Math.round(Math.max(jittered, Math.min(retryAfterMs ?? 0, RETRY_AFTER_CAP_MS)));
}

/** `Retry-After` in milliseconds (delay-seconds or an HTTP date); undefined when absent or unreadable. */
export function parseRetryAfter(header: string | null, now: number = Date.now()): number | undefined {
  if (header === null) return undefined;
  const value = header.trim();
  if (/^\d+$/.test(value)) return Number(value) * 1000;
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}
