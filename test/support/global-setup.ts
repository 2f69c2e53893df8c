import { execFile } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import type { TestProject } from "vitest/node";
import { startEmbeddedPostgres } from "../../services/core/embedded-postgres.js";
import { createLogger } from "../../services/core/logger.js";
import { freePort } from "./ports.js";

declare module "vitest" {
  export interface ProvidedContext {
    /** URL of a Postgres database on a server where test files may create databases. */
    postgresAdminUrl: string;
    /** The embedded Postgres's Unix socket URL, when the run started one. */
    postgresLocalUrl: string;
    /** ClickHouse server URL, or "" for the embedded engine (one per test process). */
    clickhouseUrl: string;
  }
}

async function dockerAnswers(): Promise<boolean> {
  try {
    await promisify(execFile)("docker", ["info", "--format", "{{.ServerVersion}}"], { timeout: 5_000 });
    return true;
  } catch {
    return false;
  }
}

/**
 * Gives the suite real stores: `DATABASE_URL` / `CLICKHOUSE_URL` when set; else
 * containers where a Docker engine answers; else an embedded Postgres for the
 * run and an embedded ClickHouse per test file.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const log = createLogger("warn", false);
  const cleanups: (() => Promise<void>)[] = [];
  let postgresAdminUrl = process.env.DATABASE_URL?.trim() ?? "";
  let clickhouseUrl = process.env.CLICKHOUSE_URL?.trim() ?? "";
  let postgresLocalUrl = "";
  if ((postgresAdminUrl === "" || clickhouseUrl === "") && (await dockerAnswers())) {
    const { startContainers } = await import("./containers.js");
    const containers = await startContainers({ postgres: postgresAdminUrl === "", clickhouse: clickhouseUrl === "" });
    postgresAdminUrl ||= containers.postgresUrl ?? "";
    clickhouseUrl ||= containers.clickhouseUrl ?? "";
    cleanups.push(containers.stop);
  }
  if (postgresAdminUrl === "") {
    const dir = await mkdtemp(join(tmpdir(), "funnel-test-pg-"));
    const embedded = await startEmbeddedPostgres({ dir, port: await freePort(), log });
    postgresAdminUrl = embedded.url;
    postgresLocalUrl = embedded.localUrl;
    cleanups.push(async () => {
      await embedded.stop();
      await rm(dir, { recursive: true, force: true });
    });
  }
  project.provide("postgresAdminUrl", postgresAdminUrl);
  project.provide("postgresLocalUrl", postgresLocalUrl);
  project.provide("clickhouseUrl", clickhouseUrl);
  return async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  };
}
