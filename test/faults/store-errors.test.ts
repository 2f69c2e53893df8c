import net from "node:net";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { isStoreUnavailable } from "../../services/core/errors.js";
import { freePort } from "../support/ports.js";
import { testStores } from "../support/stores.js";

/** The error `work` rejects with (fails the test if it resolves). */
async function failure(work: () => Promise<unknown>): Promise<Error & { code?: string }> {
  try {
    await work();
  } catch (error) {
    return error as Error & { code?: string };
  }
  throw new Error("expected a failure");
}

/** A TCP server on 127.0.0.1 that does `onSocket` with every connection. */
async function tcpServer(onSocket: (socket: net.Socket) => void): Promise<{ port: number; close: () => Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on("error", () => undefined);
    onSocket(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

describe("which store errors mean unavailable", () => {
  let url: string;
  let admin: pg.Client;

  beforeAll(async () => {
    url = (await testStores()).databaseUrl;
    admin = new pg.Client({ connectionString: url });
    await admin.connect();
  });
  afterAll(async () => {
    await admin.end();
  });

  it("a connection Postgres terminated, and the client used after it", async () => {
    const client = new pg.Client({ connectionString: url });
    // The client reports the termination, then the end of its connection.
    const emitted = new Promise<Error>((resolve) => client.on("error", resolve));
    await client.connect();
    const { rows } = await client.query<{ pid: number }>("SELECT pg_backend_pid() AS pid");
    await admin.query("SELECT pg_terminate_backend($1)", [rows[0]!.pid]);
    const terminated = await emitted;
    expect((terminated as { code?: string }).code).toBe("57P01");
    expect(isStoreUnavailable(terminated)).toBe(true);
    const reused = await failure(() => client.query("SELECT 1"));
    expect(reused.message).toMatch(/not queryable/);
    expect(isStoreUnavailable(reused)).toBe(true);
    await client.end().catch(() => undefined);
  });

  it("a refused connection, a missing socket file, a reset and a server that never answers", async () => {
    const port = await freePort();
    const refused = await failure(() => new pg.Client({ host: "127.0.0.1", port }).connect());
    expect(refused.code).toBe("ECONNREFUSED");
    expect(isStoreUnavailable(refused)).toBe(true);

    // An embedded Postgres that is restarting has no socket file for a moment.
    const missing = await failure(() => new pg.Client({ host: "/nonexistent-funnel-socket-dir", port }).connect());
    expect(missing.code).toBe("ENOENT");
    expect(isStoreUnavailable(missing)).toBe(true);

    const resetting = await tcpServer((socket) => socket.resetAndDestroy());
    const reset = await failure(() => new pg.Client({ host: "127.0.0.1", port: resetting.port }).connect());
    await resetting.close();
    expect(isStoreUnavailable(reset)).toBe(true);

    const closing = await tcpServer((socket) => socket.end());
    const closed = await failure(() => new pg.Client({ host: "127.0.0.1", port: closing.port }).connect());
    await closing.close();
    expect(isStoreUnavailable(closed)).toBe(true);

    const silent = await tcpServer(() => undefined);
    const pool = new pg.Pool({ host: "127.0.0.1", port: silent.port, connectionTimeoutMillis: 200 });
    const timedOut = await failure(() => pool.query("SELECT 1"));
    await pool.end().catch(() => undefined);
    await silent.close();
    expect(timedOut.message).toMatch(/timeout/);
    expect(isStoreUnavailable(timedOut)).toBe(true);
  });

  it("data Postgres refuses is the caller's fault, never unavailable", async () => {
    for (const [sql, values, code] of [
      ["SELECT $1::text AS t", ["a\u0000b"], "22021"],
      ["SELECT 1 / 0 AS n", [], "22012"],
      ["SELECT 'x'::int AS n", [], "22P02"],
      ["SELECT 2147483647::int + 1 AS n", [], "22003"],
    ] as const) {
      const error = await failure(() => admin.query(sql, [...values]));
      expect(error.code, sql).toBe(code);
      expect(isStoreUnavailable(error), sql).toBe(false);
    }
    // A lone surrogate is sent as U+FFFD by the driver; a NUL inside JSON is refused by jsonb.
    const json = await failure(() => admin.query("SELECT $1::jsonb AS j", ['{"a":"\\u0000"}']));
    expect(json.code).toBe("22P05");
    expect(isStoreUnavailable(json)).toBe(false);
  });
});
