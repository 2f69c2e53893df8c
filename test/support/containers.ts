import { GenericContainer, Wait, type StartedTestContainer } from "testcontainers";

/**
 * Real Postgres and ClickHouse servers in containers, for machines with a
 * Docker engine. Loaded only when `docker info` answers.
 */
export async function startContainers(want: { postgres: boolean; clickhouse: boolean }): Promise<{
  postgresUrl?: string;
  clickhouseUrl?: string;
  stop: () => Promise<void>;
}> {
  const started: StartedTestContainer[] = [];
  const result: { postgresUrl?: string; clickhouseUrl?: string } = {};
  if (want.postgres) {
    const pg = await new GenericContainer("postgres:17.6")
      .withEnvironment({ POSTGRES_PASSWORD: "funnel" })
      .withExposedPorts(5432)
      .withWaitStrategy(Wait.forLogMessage(/database system is ready to accept connections/, 2))
      .start();
    started.push(pg);
    result.postgresUrl = `postgres://postgres:funnel@${pg.getHost()}:${pg.getMappedPort(5432)}/postgres`;
  }
  if (want.clickhouse) {
    const ch = await new GenericContainer("clickhouse/clickhouse-server:25.8.33.6")
      .withEnvironment({ CLICKHOUSE_SKIP_USER_SETUP: "1" })
      .withExposedPorts(8123)
      .withWaitStrategy(Wait.forHttp("/ping", 8123))
      .start();
    started.push(ch);
    result.clickhouseUrl = `http://${ch.getHost()}:${ch.getMappedPort(8123)}`;
  }
  return { ...result, stop: async () => void (await Promise.all(started.map((container) => container.stop()))) };
}
