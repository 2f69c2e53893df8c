import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { App } from "../../services/app.js";
import { runCliAsAdmin } from "../support/cli.js";
import { startTestApp } from "../support/stores.js";

describe("funnel sql", () => {
  let app: App;
  const funnel = (...args: string[]) => runCliAsAdmin(app, args);
  beforeAll(async () => {
    app = await startTestApp({ roles: ["api"] });
  });
  afterAll(async () => {
    await app?.stop();
  });

  it("prints a SELECT's rows as a table or as JSON, cut at --limit", async () => {
    const shown = await funnel("sql", "SELECT number AS n, toString(number * 2) AS twice FROM numbers(3)");
    expect(shown.code).toBe(0);
    expect(shown.stdout).toMatch(/^n\s+twice\n/);
    expect(shown.stdout).toMatch(/\n2\s+4\n/);
    expect(shown.stdout).toMatch(/3 rows, \d+ ms\n$/);
    const cut = JSON.parse((await funnel("sql", "SELECT number FROM numbers(10)", "--limit", "2", "--json")).stdout) as Record<string, unknown>;
    expect(cut).toEqual({ database: app.clickhouse.database, columns: ["number"], types: ["UInt64"], rows: [["0"], ["1"]], truncated: true });
  });

  it("refuses a table function that reads the disk, and a write, with exit status 2", async () => {
    const file = await funnel("sql", "SELECT * FROM file('/etc/passwd')");
    expect(file.code).toBe(2);
    expect(file.stderr).toMatch(/sql: file\(\) is not allowed/);
    expect(file.stdout).not.toMatch(/root:/);
    const drop = await funnel("sql", `DROP TABLE ${app.clickhouse.database}.tracker_events`);
    expect(drop.code).toBe(2);
    expect(drop.stderr).toMatch(/only a SELECT is allowed/);
    expect((await funnel("sql")).code).toBe(2);
  });
});
