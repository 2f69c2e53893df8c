import net from "node:net";
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { App } from "../../services/app.js";
import { postSeen, seenClients } from "../support/seen.js";
import { startTestApp, testStores } from "../support/stores.js";

/** A TCP relay in front of Postgres that the test can cut and restore (a real outage for the app). */
class Relay {
  readonly #sockets = new Set<net.Socket>();
  #server: net.Server | undefined;
  port = 0;

  constructor(private readonly target: { host: string; port: number }) {}

  async open(): Promise<void> {
    if (this.#server !== undefined) return;
    const server = net.createServer((client) => {
      const upstream = net.connect(this.target.port, this.target.host);
      for (const socket of [client, upstream]) {
        this.#sockets.add(socket);
        socket.on("close", () => this.#sockets.delete(socket));
        socket.on("error", () => socket.destroy());
      }
      client.pipe(upstream).pipe(client);
      client.on("close", () => upstream.destroy());
      upstream.on("close", () => client.destroy());
    });
    await new Promise<void>((resolve) => server.listen(this.port, "127.0.0.1", resolve));
    this.port = (server.address() as net.AddressInfo).port;
    this.#server = server;
  }

  /** Refuses new connections and breaks the open ones. */
  async cut(): Promise<void> {
    const server = this.#server;
    this.#server = undefined;
    for (const socket of this.#sockets) socket.destroy();
    if (server !== undefined) await new Promise((resolve) => server.close(resolve));
  }
}

describe("seen while Postgres is unreachable", () => {
  let app: App;
  let relay: Relay;

  beforeAll(async () => {
    const stores = await testStores();
    const target = new URL(stores.databaseUrl);
    relay = new Relay({ host: target.hostname, port: Number(target.port) });
    await relay.open();
    target.hostname = "127.0.0.1";
    target.port = String(relay.port);
    app = await startTestApp({ roles: ["api"], env: { DATABASE_URL: target.toString() } });
  });
  afterAll(async () => {
    await relay.open();
    await app.stop();
    await relay.cut();
  });

  it("answers unavailable (503 on plain HTTP), never success for a mark it did not store", async () => {
    const { seen } = seenClients(app, { "x-funnel-device-id": "outage-device" });
    expect((await seen.markSeen({ tag: "promo", id: "before" })).created).toBe(true);

    await relay.cut();
    await expect(seen.markSeen({ tag: "promo", id: "during" })).rejects.toMatchObject({ code: Code.Unavailable });
    const plain = await postSeen(app, JSON.stringify({ tag: "promo", id: "during" }), { headers: { "x-funnel-device-id": "outage-device" } });
    expect(plain.status).toBe(503);
    expect(plain.headers["retry-after"]).toBe("1");

    await relay.open();
    // The client retries until it succeeds; the retry is the one that creates the mark.
    const retried = await seen.markSeen({ tag: "promo", id: "during" });
    expect(retried.created).toBe(true);
    const metrics = await (await fetch(`${app.metricsUrl}/metrics`)).text();
    expect(metrics).toMatch(/funnel_seen_mark_requests_total\{result="unavailable"\} [2-9]/);
  });
});
