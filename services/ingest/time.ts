/** A time as ClickHouse's DateTime64(3) reads it in JSONEachRow: `YYYY-MM-DD hh:mm:ss.sss`, UTC. */
export const clickhouseTime = (at: Date): string => at.toISOString().replace("T", " ").replace("Z", "");
