import pg from "pg";
import { describe, expect, inject, it } from "vitest";
import { databaseUrl } from "../../services/core/postgres.js";

async function serverAddress(url: string): Promise<string | null> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const { rows } = await client.query<{ address: string | null; database: string }>("SELECT host(inet_server_addr()) AS address, current_database() AS database");
    return rows[0]!.address;
  } finally {
    await client.end();
  }
}

describe("embedded Postgres", () => {
  const localUrl = inject("postgresLocalUrl");

  it.skipIf(localUrl === "")("answers over its Unix socket as well as over TCP", async () => {
    // A Unix socket connection has no server IP address.
    expect(await serverAddress(localUrl)).toBeNull();
    expect(await serverAddress(inject("postgresAdminUrl"))).toBe("127.0.0.1");
  });

  it.skipIf(localUrl === "")("creates new WAL segments without filling them with zeros first", async () => {
    const client = new pg.Client({ connectionString: localUrl });
    await client.connect();
    try {
      expect((await client.query<{ wal_init_zero: string }>("SHOW wal_init_zero")).rows[0]!.wal_init_zero).toBe("off");
    } finally {
      await client.end();
    }
  });

  it.skipIf(localUrl === "" || process.platform !== "linux")("flushes the data folder with one syncfs() before crash recovery", async () => {
    const client = new pg.Client({ connectionString: localUrl });
    await client.connect();
    try {
      expect((await client.query<{ recovery_init_sync_method: string }>("SHOW recovery_init_sync_method")).rows[0]!.recovery_init_sync_method).toBe("syncfs");
    } finally {
      await client.end();
    }
  });

  it("names another database in a URL and keeps its socket folder", async () => {
    expect(databaseUrl("postgres://u:p%40w@127.0.0.1:5432/postgres?host=%2Ftmp%2Fx%2Fsocket", "funnel")).toBe(
      "postgres://u:p%40w@127.0.0.1:5432/funnel?host=%2Ftmp%2Fx%2Fsocket",
    );
    if (localUrl !== "") {
      const client = new pg.Client({ connectionString: databaseUrl(localUrl, "postgres") });
      await client.connect();
      expect((await client.query<{ db: string }>("SELECT current_database() AS db")).rows[0]!.db).toBe("postgres");
      await client.end();
      // Still over the socket.
      expect(await serverAddress(databaseUrl(localUrl, "postgres"))).toBeNull();
    }
  });
});
