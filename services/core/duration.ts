const UNITS: Readonly<Record<string, number>> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/**
 * Parses a human duration such as `250ms`, `10s`, `1.5m`, `1h` or `30d` into
 * milliseconds; a bare number means seconds. Returns undefined when `text` is
 * not a duration.
 */
export function parseDuration(text: string): number | undefined {
  const match = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?$/.exec(text.trim());
  if (match === null) return undefined;
  const ms = Number(match[1]) * (UNITS[match[2] ?? "s"] ?? 1_000);
  return Number.isFinite(ms) ? Math.round(ms) : undefined;
}

/** Writes milliseconds in the largest unit that keeps them whole: `1h`, `90s`, `250ms`. */
export function formatDuration(ms: number): string {
  for (const unit of ["d", "h", "m", "s"] as const) {
    const size = UNITS[unit] ?? 1;
    if (ms >= size && ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}
