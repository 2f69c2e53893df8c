import { describe, expect, it } from "vitest";
import { parseRetryAfter, RETRY_AFTER_CAP_MS, retryDelayMs } from "../../services/core/outbound/backoff.js";

const backoff = { initialMs: 1_000, maxMs: 60_000 };
/** A random source that always answers `value`: 0 is the shortest jitter, just under 1 the longest. */
const fixed = (value: number) => () => value;

describe("retry backoff", () => {
  it("doubles from the initial delay up to the maximum", () => {
    const middle = fixed(0.5);
    expect([1, 2, 3, 4, 5, 6, 7, 8].map((failures) => retryDelayMs(backoff, failures, undefined, middle))).toEqual([
      1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 60_000, 60_000,
    ]);
    // No failure yet (or a nonsense count) waits the initial delay.
    expect(retryDelayMs(backoff, 0, undefined, middle)).toBe(1_000);
    expect(retryDelayMs(backoff, -3, undefined, middle)).toBe(1_000);
  });

  it("spreads each wait by ±25 %, never past that, even after a thousand failures", () => {
    expect(retryDelayMs(backoff, 3, undefined, fixed(0))).toBe(3_000);
    expect(retryDelayMs(backoff, 3, undefined, fixed(0.999_999))).toBe(5_000);
    expect(retryDelayMs(backoff, 1_000, undefined, fixed(0))).toBe(45_000);
    expect(retryDelayMs(backoff, 1_000, undefined, fixed(0.999_999))).toBe(75_000);
    expect(Number.isFinite(retryDelayMs({ initialMs: 1, maxMs: Number.MAX_SAFE_INTEGER }, 10_000, undefined, fixed(0.5)))).toBe(true);
    const waits = Array.from({ length: 200 }, () => retryDelayMs(backoff, 2));
    expect(Math.min(...waits)).toBeGreaterThanOrEqual(1_500);
    expect(Math.max(...waits)).toBeLessThanOrEqual(2_500);
    expect(new Set(waits).size).toBeGreaterThan(10);
  });

  it("waits at least what Retry-After asks, up to a day, and never less than the backoff", () => {
    expect(retryDelayMs(backoff, 1, 30_000, fixed(0.5))).toBe(30_000);
    expect(retryDelayMs(backoff, 5, 1_000, fixed(0.5))).toBe(16_000);
    expect(retryDelayMs(backoff, 1, 0, fixed(0.5))).toBe(1_000);
    expect(retryDelayMs(backoff, 1, 10 * RETRY_AFTER_CAP_MS, fixed(0.5))).toBe(RETRY_AFTER_CAP_MS);
  });
});

describe("Retry-After", () => {
  const now = Date.parse("2026-12-03T10:00:00Z");

  it("reads delay-seconds and HTTP dates, relative to now", () => {
    expect(parseRetryAfter("120", now)).toBe(120_000);
    expect(parseRetryAfter(" 0 ", now)).toBe(0);
    expect(parseRetryAfter("Thu, 03 Dec 2026 10:01:30 GMT", now)).toBe(90_000);
    // A date already past means: now.
    expect(parseRetryAfter("Thu, 03 Dec 2026 09:00:00 GMT", now)).toBe(0);
  });

  it("gives undefined when absent or unreadable", () => {
    expect(parseRetryAfter(null, now)).toBeUndefined();
    expect(parseRetryAfter("", now)).toBeUndefined();
    expect(parseRetryAfter("soon", now)).toBeUndefined();
    expect(parseRetryAfter("Thu, 32 Foo 2026 25:00:00 GMT", now)).toBeUndefined();
    // Numbers that are not delay-seconds are not dates either.
    for (const header of ["-5", "1.5", "+3", "1e3"]) expect(parseRetryAfter(header, now), header).toBeUndefined();
  });

  it("never lets an odd value shorten the backoff", () => {
    for (const header of ["-5", "1.5", "0", "Thu, 01 Jan 1970 00:00:00 GMT"]) {
      expect(retryDelayMs(backoff, 3, parseRetryAfter(header, now), fixed(0.5)), header).toBe(4_000);
    }
  });
});
