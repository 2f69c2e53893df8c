import { describe, expect, it } from "vitest";
import { forCluster } from "../../services/core/clickhouse.js";
import { splitStatements } from "../../services/core/migrate.js";

describe("ClickHouse migration scripts", () => {
  it("splits ClickHouse scripts into statements, dropping comments", () => {
    expect(splitStatements("-- note\nCREATE TABLE a (x UInt8) ENGINE = Memory;\n\nINSERT INTO a VALUES (1);\n")).toEqual([
      "CREATE TABLE a (x UInt8) ENGINE = Memory",
      "INSERT INTO a VALUES (1)",
    ]);
  });
});

describe("ClickHouse migrations on a cluster", () => {
  it("leave statements alone without a cluster", () => {
    const sql = "CREATE TABLE IF NOT EXISTS db.t (a UInt8) ENGINE = MergeTree ORDER BY a";
    expect(forCluster(sql, undefined)).toBe(sql);
  });

  it("run DDL on every node and make every MergeTree replicated", () => {
    expect(forCluster("CREATE TABLE IF NOT EXISTS db.t (a UInt8) ENGINE = MergeTree ORDER BY a SETTINGS x = 1", "main")).toBe(
      "CREATE TABLE IF NOT EXISTS db.t ON CLUSTER main (a UInt8) ENGINE = ReplicatedMergeTree ORDER BY a SETTINGS x = 1",
    );
    expect(forCluster("CREATE TABLE db.m (id UInt32) ENGINE = ReplacingMergeTree() ORDER BY id", "main")).toBe(
      "CREATE TABLE db.m ON CLUSTER main (id UInt32) ENGINE = ReplicatedReplacingMergeTree ORDER BY id",
    );
    expect(forCluster("ALTER TABLE db.t ADD COLUMN b String", "main")).toBe("ALTER TABLE db.t ON CLUSTER main ADD COLUMN b String");
    expect(forCluster("CREATE DATABASE IF NOT EXISTS funnel", "main")).toBe("CREATE DATABASE IF NOT EXISTS funnel ON CLUSTER main");
  });
});
