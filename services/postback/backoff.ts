import type { RetrySettings } from "./partner.js";

/**
 * The wait before the next attempt after `failures` failed attempts of the
 * current budget: initial × 2^(failures−1), ±25 % jitter so retries of many
 * postbacks spread out, never below what `Retry-After` asked, never above
 * the policy's cap.
 */
export function retryDelayMs(policy: RetrySettings, failures: number, retryAfterMs?: number, random: () => number = Math.random): number {
  const exponential = policy.initialDelayMs * 2 ** Math.max(0, failures - 1);
  const jittered = Math.min(policy.maxDelayMs, exponential) * (0.75 + random() * 0.5);
  return Math.round(Math.min(policy.maxDelayMs, Math.max(jittered, retryAfterMs ?? 0)));
}

/** `Retry-After` in milliseconds: delay-seconds or an HTTP date; undefined when absent or unreadable. */
export function parseRetryAfter(header: string | null, now: number = Date.now()): number | undefined {
  if (header === null) return undefined;
  const value = header.trim();
  if (/^\d+$/.test(value)) return Number(value) * 1000;
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}
