/** Milliseconds in a UTC day (UTC has no daylight saving). */
export const DAY_MS = 86_400_000;

/** The shape of a day, `YYYY-MM-DD`; {@link parseDay} also checks the calendar. */
export const DAY_PATTERN = /^\d{4}-\d{2}-\d{2}$/;

/** The UTC day of a time, `YYYY-MM-DD`: how days are written in Postgres, ClickHouse, the APIs and the CLI. */
export function dayOf(at: Date | number): string {
  return new Date(at).toISOString().slice(0, 10);
}

/**
 * The first millisecond (UTC) of a day written `YYYY-MM-DD`, or undefined
 * when `text` is not one: another shape, or a date the calendar lacks
 * (`2026-02-30`).
 */
export function parseDay(text: string): number | undefined {
  if (!DAY_PATTERN.test(text)) return undefined;
  const start = Date.parse(`${text}T00:00:00Z`);
  // Date.parse rolls some impossible dates over (Feb 30 → Mar 2); reading the day back catches them.
  return Number.isNaN(start) || dayOf(start) !== text ? undefined : start;
}

/** The first millisecond (UTC) of the day holding `at`. */
export function startOfDay(at: number): number {
  return at - (((at % DAY_MS) + DAY_MS) % DAY_MS);
}
