import { describe, expect, it } from "vitest";
import { GroupCommit } from "../services/core/group-commit.js";

describe("group commit", () => {
  it("commits at once when a slot is free, gathers while commits are in flight, and fails a whole group together", async () => {
    const groups: number[][] = [];
    const releases: (() => void)[] = [];
    const committer = new GroupCommit<number, string>({
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
