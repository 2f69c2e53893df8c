import { describe, expect, it } from "vitest";
import { GroupCommit } from "../../services/core/group-commit.js";
import { createMetricsRegistry, histogram } from "../../services/core/metrics.js";

describe("group commit's own histograms", () => {
  it("observe the size of each group that committed and the time of every commit, a split group's halves as commits of their own", async () => {
    const metrics = createMetricsRegistry();
    const items = histogram(metrics, "test_group_items", "items", [], [1, 4, 16]);
    const seconds = histogram(metrics, "test_group_seconds", "seconds");
    const commits: string[][] = [];
    const committer = new GroupCommit<string, string>({
      name: "observed",
      metrics,
      maxInFlight: 1,
      observe: { items, seconds },
      commit: async (group) => {
        commits.push([...group]);
        await new Promise((resolve) => setTimeout(resolve, 5));
        // A data exception (22xxx): the group is committed again in halves.
        if (group.includes("bad")) throw Object.assign(new Error("refused"), { code: "22021" });
        return group.map((item) => `ok ${item}`);
      },
    });
    const settled = await Promise.allSettled(["a", "b", "c", "bad", "d"].map((item) => committer.submit(item)));
    expect(settled.map((result) => result.status)).toEqual(["fulfilled", "fulfilled", "fulfilled", "rejected", "fulfilled"]);
    // ["a"] alone; ["b","c","bad","d"] refused, then ["b","c"] and ["bad","d"] (refused) and then ["bad"] (refused) and ["d"].
    expect(commits).toEqual([["a"], ["b", "c", "bad", "d"], ["b", "c"], ["bad", "d"], ["bad"], ["d"]]);
    const read = async (metric: string, key: string) =>
      (await metrics.getSingleMetric(metric)?.get())?.values.find((value) => (value as { metricName?: string }).metricName === `${metric}_${key}`)?.value;
    expect(await read("test_group_items", "count")).toBe(3);
    expect(await read("test_group_items", "sum")).toBe(4);
    // Every commit, refused or not, is timed once.
    expect(await read("test_group_seconds", "count")).toBe(commits.length);
  });
});
