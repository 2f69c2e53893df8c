/** The longest `Retry-After` obeyed: a target asking for more is retried after a day. */
export const RETRY_AFTER_CAP_MS = 86_400_000;

/** Exponential backoff bounds, in milliseconds. */
export interface Backoff {
  readonly initialMs: number;
  readonly maxMs: number;
}

/**
 * The wait before the next attempt after `failures` failed attempts:
 * initial × 2^(failures−1) up to the maximum, ±25 % jitter so retries of
 * many requests spread out, and never less than what the target's
 * `Retry-After` asked (up to a day): the target knows best when it can take
 * the request again.
 */
export function retryDelayMs(backoff: Backoff, failures: number, retryAfterMs?: number, random: () => number = Math.random): number {
  const exponential = backoff.initialMs * 2 ** Math.min(40, Math.max(0, failures - 1));
  const jittered = Math.min(backoff.maxMs, exponential) * (0.75 + random() * 0.5);
  return Math.round(Math.max(jittered, Math.min(retryAfterMs ?? 0, RETRY_AFTER_CAP_MS)));
}

/** `Retry-After` in milliseconds (delay-seconds or an HTTP date); undefined when absent or unreadable. */
export function parseRetryAfter(header: string | null, now: number = Date.now()): number | undefined {
  if (header === null) return undefined;
  const value = header.trim();
  if (/^\d+$/.test(value)) return Number(value) * 1000;
  // An HTTP date names its day and month; anything else ("-5", "1.5") is unreadable, not a date.
  if (!/[A-Za-z]{3}/.test(value)) return undefined;
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}
