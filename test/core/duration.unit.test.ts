import { describe, expect, it } from "vitest";
import { formatDuration, parseDuration } from "../../services/core/duration.js";

describe("durations", () => {
  it("reads every unit, decimals, spaces around the number, and a bare number as seconds", () => {
    expect(["250ms", "10s", "1.5m", "1h", "30d", "90", "0", "0.25", " 2 m ", "1.0005s"].map(parseDuration)).toEqual([
      250, 10_000, 90_000, 3_600_000, 2_592_000_000, 90_000, 0, 250, 120_000, 1_001,
    ]);
  });

  it("refuses anything else: signs, exponents, unknown or upper-case units, bare units, empty text", () => {
    for (const text of ["", " ", "-1s", "+1s", "1e3", "1.s", ".5s", "1 hour", "1H", "1MS", "ms", "1s2", "1w", "Infinity", "NaN", "1_000"]) {
      expect(parseDuration(text), JSON.stringify(text)).toBeUndefined();
    }
  });

  it("refuses a number too large to be finite", () => {
    expect(parseDuration(`${"9".repeat(400)}d`)).toBeUndefined();
  });

  it("writes the largest unit that keeps the value whole, which reads back the same", () => {
    const cases: [number, string][] = [
      [0, "0ms"],
      [1, "1ms"],
      [999, "999ms"],
      [1_000, "1s"],
      [1_500, "1500ms"],
      [90_000, "90s"],
      [120_000, "2m"],
      [5_400_000, "90m"],
      [3_600_000, "1h"],
      [86_400_000, "1d"],
      [129_600_000, "36h"],
    ];
    for (const [ms, text] of cases) {
      expect(formatDuration(ms)).toBe(text);
      expect(parseDuration(text)).toBe(ms);
    }
  });
});
