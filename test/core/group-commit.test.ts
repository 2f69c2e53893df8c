import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GroupCommit } from "../../services/core/group-commit.js";
import { createMetricsRegistry, type Registry } from "../../services/core/metrics.js";
import { freePort } from "../support/ports.js";
import { testStores } from "../support/stores.js";

describe("group commit", () => {
  it("commits at once when a slot is free, gathers while commits are in flight, and fails a whole group together", async () => {
    const groups: number[][] = [];
    const releases: (() => void)[] = [];
    const committer = new GroupCommit<number, string>({
      name: "numbers",
      metrics: createMetricsRegistry(),
      maxItems: 3,
      maxInFlight: 1,
      commit: async (items) => {
        groups.push([...items]);
        await new Promise<void>((resolve) => releases.push(resolve));
        if (items.includes(13)) throw new Error("group with 13 fails");
        return items.map((item) => `ok ${item}`);
      },
    });
    const settled: string[] = [];
    const track = (item: number) =>
      committer.submit(item).then(
        (result) => void settled.push(result),
        (error: Error) => void settled.push(`${item}: ${error.message}`),
      );
    const all = [1, 2, 3, 13, 5].map(track);
    await new Promise((resolve) => setTimeout(resolve, 10));
    // The first item went alone; the others wait while its commit is in flight.
    expect(groups).toEqual([[1]]);
    expect(settled).toEqual([]);
    releases.shift()!();
    await new Promise((resolve) => setTimeout(resolve, 10));
    expect(settled).toEqual(["ok 1"]);
    expect(groups).toEqual([[1], [2, 3, 13]]);
    releases.shift()!();
    await new Promise((resolve) => setTimeout(resolve, 10));
    expect(settled).toEqual(["ok 1", "2: group with 13 fails", "3: group with 13 fails", "13: group with 13 fails"]);
    expect(groups).toEqual([[1], [2, 3, 13], [5]]);
    const flushed = committer.flush();
    releases.shift()!();
    await flushed;
    await Promise.all(all);
    expect(settled.at(-1)).toBe("ok 5");
  });
});

describe("group commit isolating the item Postgres refuses", () => {
  let pool: pg.Pool;
  beforeAll(async () => {
    pool = new pg.Pool({ connectionString: (await testStores()).databaseUrl, max: 2 });
    await pool.query("CREATE TABLE group_commit_items (v varchar(8) PRIMARY KEY)");
    await pool.query("INSERT INTO group_commit_items VALUES ('taken')");
  });
  afterAll(async () => {
    await pool.end();
  });

  /** The split counter's value for `group` (0 when never counted). */
  const splits = async (metrics: Registry, group: string): Promise<number> => {
    const values = (await metrics.getSingleMetric("funnel_group_commit_splits_total")?.get())?.values ?? [];
    return values.find((value) => value.labels.group === group)?.value ?? 0;
  };

  /** The error code a call was rejected with. */
  const codeOf = (result: PromiseSettledResult<unknown> | undefined): unknown =>
    result?.status === "rejected" ? (result.reason as { code?: unknown }).code : undefined;

  /** Inserts the group's values in one statement; each item's result is its value. */
  const inserter = (metrics: Registry, onPool: pg.Pool = pool) =>
    new GroupCommit<string, string>({
      name: "items",
      metrics,
      maxItems: 100,
      maxInFlight: 1,
      commit: async (items) => {
        const { rows } = await onPool.query<{ v: string }>("INSERT INTO group_commit_items SELECT unnest($1::text[]) RETURNING v", [items]);
        return rows.map((row) => row.v);
      },
    });

  it("fails only the items whose data the statement refuses; the others commit, and the split is counted", async () => {
    const metrics = createMetricsRegistry();
    const committer = inserter(metrics);
    const good = Array.from({ length: 20 }, (_, i) => `ok-${i}`);
    // A NUL (22021), a value too long for its column (22001), a key already stored (23505).
    const bad = ["nul\u0000", "far-too-long", "taken"];
    const items = [...good.slice(0, 5), bad[0]!, ...good.slice(5, 12), bad[1]!, ...good.slice(12), bad[2]!];
    // The first item goes alone; the rest gather behind it into one group.
    const settled = await Promise.allSettled(items.map((item) => committer.submit(item)));
    const outcome = new Map(items.map((item, i) => [item, settled[i]]));
    for (const item of good) expect(outcome.get(item)).toEqual({ status: "fulfilled", value: item });
    expect(bad.map((item) => codeOf(outcome.get(item)))).toEqual(["22021", "22001", "23505"]);
    const { rows } = await pool.query<{ v: string }>("SELECT v FROM group_commit_items WHERE v LIKE 'ok-%' ORDER BY v");
    expect(rows.map((row) => row.v).sort()).toEqual([...good].sort());
    expect(await splits(metrics, "items")).toBeGreaterThan(0);
  });

  it("still fails the whole group, unsplit, when the store is unreachable", async () => {
    const metrics = createMetricsRegistry();
    const unreachable = new pg.Pool({ host: "127.0.0.1", port: await freePort(), connectionTimeoutMillis: 1_000 });
    const committer = inserter(metrics, unreachable);
    const settled = await Promise.allSettled(["x-1", "x-2", "x-3", "x-4"].map((item) => committer.submit(item)));
    await unreachable.end();
    expect(settled.map(codeOf)).toEqual(["ECONNREFUSED", "ECONNREFUSED", "ECONNREFUSED", "ECONNREFUSED"]);
    expect(await splits(metrics, "items")).toBe(0);
  });
});
