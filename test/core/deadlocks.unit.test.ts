import { describe, expect, it } from "vitest";
import { retryingDeadlocks } from "../../services/core/postgres.js";

const deadlock = () => Object.assign(new Error("deadlock detected"), { code: "40P01" });

describe("retrying a transaction Postgres rolled back to break a deadlock", () => {
  it("runs it again until it commits, up to the attempts given", async () => {
    let runs = 0;
    const result = await retryingDeadlocks(async () => {
      runs += 1;
      if (runs < 3) throw deadlock();
      return "committed";
    });
    expect({ result, runs }).toEqual({ result: "committed", runs: 3 });
  });

  it("gives up with the deadlock after the last attempt", async () => {
    let runs = 0;
    await expect(
      retryingDeadlocks(async () => {
        runs += 1;
        throw deadlock();
      }, 2),
    ).rejects.toMatchObject({ code: "40P01" });
    expect(runs).toBe(2);
  });

  it("never retries any other failure", async () => {
    for (const error of [Object.assign(new Error("unique violation"), { code: "23505" }), new Error("no code")]) {
      let runs = 0;
      await expect(
        retryingDeadlocks(async () => {
          runs += 1;
          throw error;
        }),
      ).rejects.toBe(error);
      expect(runs).toBe(1);
    }
  });
});
