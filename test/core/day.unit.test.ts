import { describe, expect, it } from "vitest";
import { DAY_MS, dayOf, parseDay, startOfDay } from "../../services/core/day.js";

describe("days", () => {
  it("writes the UTC day of a time", () => {
    expect(dayOf(new Date("2026-12-03T23:59:59.999Z"))).toBe("2026-12-03");
    expect(dayOf(Date.parse("2026-12-04T00:00:00.000Z"))).toBe("2026-12-04");
    // Another offset's evening is already the next UTC day.
    expect(dayOf(new Date("2026-12-03T20:00:00-05:00"))).toBe("2026-12-04");
  });

  it("reads a day as its first UTC millisecond, and round-trips", () => {
    expect(parseDay("2026-12-03")).toBe(Date.UTC(2026, 11, 3));
    expect(parseDay("2028-02-29")).toBe(Date.UTC(2028, 1, 29));
    expect(dayOf(parseDay("1970-01-01")!)).toBe("1970-01-01");
  });

  it("refuses other shapes and days the calendar lacks", () => {
    for (const text of ["", "2026-12-3", "2026/12/03", "2026-12-03T00:00:00Z", " 2026-12-03", "2026-12-03\n", "2026-02-29", "2026-02-30", "2026-04-31", "2026-13-01", "2026-00-10", "２０２６-12-03"]) {
      expect(parseDay(text), text).toBeUndefined();
    }
  });

  it("finds the start of the day holding a time, before 1970 too", () => {
    expect(startOfDay(Date.parse("2026-12-03T17:45:00Z"))).toBe(Date.UTC(2026, 11, 3));
    expect(startOfDay(Date.UTC(2026, 11, 3))).toBe(Date.UTC(2026, 11, 3));
    expect(startOfDay(Date.parse("1969-12-31T12:00:00Z"))).toBe(-DAY_MS);
  });
});
