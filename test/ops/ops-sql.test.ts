import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { OpsService } from "../../gen/funnel/ops/v1/ops_pb.js";
import type { App } from "../../services/app.js";
import { ADMIN_TOKEN, startTestApp } from "../support/stores.js";

const failure = (promise: Promise<unknown>) => promise.then(() => undefined, (e: unknown) => ConnectError.from(e));

describe("OpsService.QueryAnalytics", () => {
  let app: App;
  let ops: Client<typeof OpsService>;
  let db: string;

  beforeAll(async () => {
    app = await startTestApp({ roles: ["api"] });
    db = app.clickhouse.database;
    ops = createClient(
      OpsService,
      createConnectTransport({ baseUrl: app.url, httpVersion: "1.1", interceptors: [(next) => (req) => (req.header.set("authorization", `Bearer ${ADMIN_TOKEN}`), next(req))] }),
    );
    await app.clickhouse.client.insert({
      table: `${db}.postback_deliveries`,
      values: ["delivered", "delivered", "dead"].map((outcome, i) => ({
        delivery_id: crypto.randomUUID(), attempt: 1, partner_id: "sql-p", event: "install", stag: "sql-p_c", click_id: "c", method: "GET",
        url: "http://127.0.0.1/", http_status: 200, response_body: "", duration_ms: 1, error: "", outcome, attempted_at: `2026-01-01 00:00:0${i}.000`,
      })),
      format: "JSONEachRow",
    });
  });
  afterAll(async () => {
    await app?.stop();
  });

  it("answers a SELECT with columns, types and rows, and names the database", async () => {
    const res = await ops.queryAnalytics({ sql: `SELECT outcome, count() AS n FROM ${db}.postback_deliveries WHERE partner_id = 'sql-p' GROUP BY outcome ORDER BY outcome -- by outcome` });
    expect(res.columns).toEqual(["outcome", "n"]);
    expect(res.types).toEqual(["LowCardinality(String)", "UInt64"]);
    expect(res.rows.map((row) => row.values.map((value) => value.kind.value))).toEqual([["dead", "1"], ["delivered", "2"]]);
    expect(res.truncated).toBe(false);
    expect(res.database).toBe(db);
    const cte = await ops.queryAnalytics({ sql: "WITH 2 AS two SELECT number * two AS n FROM numbers(3)" });
    expect(cte.rows.map((row) => row.values[0]?.kind.value)).toEqual(["0", "2", "4"]);
  });

  it("cuts the answer at max_rows and says so", async () => {
    const res = await ops.queryAnalytics({ sql: "SELECT number FROM numbers(100000000)", maxRows: 5 });
    expect(res.rows).toHaveLength(5);
    expect(res.truncated).toBe(true);
    expect((await ops.queryAnalytics({ sql: "SELECT number FROM numbers(5)", maxRows: 5 })).truncated).toBe(false);
  });

  it("refuses table functions that read files or the network, writes, DDL and SETTINGS, naming sql", async () => {
    const cases: [string, RegExp][] = [
      ["SELECT * FROM file('/etc/passwd')", /^sql: file\(\) is not allowed/],
      ["select * from FILE('/etc/passwd', 'LineAsString')", /^sql: FILE\(\) is not allowed/],
      ["SELECT file('/etc/passwd')", /^sql: file\(\) is not allowed/],
      ["SELECT * FROM url('http://127.0.0.1:9/', 'CSV', 'a String')", /^sql: url\(\) is not allowed/],
      ["SELECT * FROM s3('http://127.0.0.1:9/bucket/x.csv')", /^sql: s3\(\) is not allowed/],
      ["SELECT * FROM remote('127.0.0.1:9000', system.one)", /^sql: remote\(\) is not allowed/],
      ["SELECT 1 WHERE 1 IN (SELECT 1 FROM executable('id', 'TSV', 'x String'))", /^sql: executable\(\) is not allowed/],
      ["SELECT count() FROM (SELECT * FROM file('/etc/passwd')) AS t", /^sql: file\(\) is not allowed/],
      [`INSERT INTO ${db}.postback_deliveries (partner_id) VALUES ('x')`, /^sql: only a SELECT is allowed, got InsertQuery/],
      [`INSERT INTO FUNCTION file('/tmp/funnel-sql-test.csv', 'CSV', 'a UInt8') SELECT 1`, /^sql: only a SELECT is allowed/],
      [`ALTER TABLE ${db}.postback_deliveries DELETE WHERE 1`, /^sql: only a SELECT is allowed, got AlterQuery/],
      [`DROP TABLE ${db}.postback_deliveries`, /^sql: only a SELECT is allowed, got DropQuery/],
      ["SELECT sleep(1) SETTINGS max_execution_time = 1000", /^sql: a SETTINGS clause is not allowed/],
      ["SELECT 1; DROP TABLE x", /^sql: /],
      ["SELEC 1", /^sql: .*Syntax error/i],
      ["", /^sql: required/],
      ["SELECT 'x'".padEnd(70_000, " "), /^sql: at most 65536 bytes/],
    ];
    for (const [sql, message] of cases) {
      const error = await failure(ops.queryAnalytics({ sql }));
      expect(error?.code, sql.slice(0, 80)).toBe(Code.InvalidArgument);
      expect(error?.rawMessage, sql.slice(0, 80)).toMatch(message);
    }
    expect((await failure(ops.queryAnalytics({ sql: "SELECT 1", maxRows: 10_001 })))?.rawMessage).toMatch(/^max_rows: 0 to 10000/);
    const unknown = await failure(ops.queryAnalytics({ sql: "SELECT * FROM no_such_table" }));
    expect(unknown?.code).toBe(Code.InvalidArgument);
    // Nothing was written or dropped.
    const count = await ops.queryAnalytics({ sql: `SELECT count() FROM ${db}.postback_deliveries WHERE partner_id IN ('sql-p', 'x')` });
    expect(count.rows[0]?.values[0]?.kind.value).toBe("3");
    const anonymous = createClient(OpsService, createConnectTransport({ baseUrl: app.url, httpVersion: "1.1" }));
    expect((await failure(anonymous.queryAnalytics({ sql: "SELECT 1" })))?.code).toBe(Code.Unauthenticated);
  });
});
