import http from "node:http";
import type { AddressInfo } from "node:net";

/** How a peer answers while a fault is on: the share of requests answered 503, and the share left hanging. */
export interface PeerFaults {
  readonly failRate: number;
  readonly hangRate: number;
}

const HEALTHY: PeerFaults = { failRate: 0, hangRate: 0 };

/**
 * A partner or consumer endpoint on 127.0.0.1 that logs every request by a
 * key taken from it, and answers 2xx, 503 or nothing at all (a time-out for
 * the sender) as its current faults say. `succeeded` counts, per key, the
 * requests answered 2xx: more than one is a duplicate delivery.
 */
export class Peer {
  readonly succeeded = new Map<string, number>();
  /** When each key first got a 2xx (ms since the epoch). */
  readonly firstSuccessAt = new Map<string, number>();
  requests = 0;
  faults: PeerFaults = HEALTHY;
  /** How long a 2xx answer takes, so that deliveries are in flight when a fault strikes. */
  delayMs = 0;
  url = "";
  readonly #server: http.Server;
  readonly #hanging = new Set<http.ServerResponse>();

  constructor(keyOf: (url: URL, body: string) => string) {
    this.#server = http.createServer((req, res) => {
      let body = "";
      req.setEncoding("utf8");
      req.on("data", (chunk: string) => (body += chunk));
      req.on("end", () => {
        this.requests += 1;
        const roll = Math.random();
        if (roll < this.faults.hangRate) {
          this.#hanging.add(res);
          res.once("close", () => this.#hanging.delete(res));
          return;
        }
        if (roll < this.faults.hangRate + this.faults.failRate) {
          res.writeHead(503, { "content-type": "text/plain" });
          res.end("chaos: failing on purpose");
          return;
        }
        const key = keyOf(new URL(req.url ?? "/", "http://peer"), body);
        const answer = () => {
          // A sender that is gone (killed, or timed out) never learns of this answer: it is not a delivery.
          if (res.destroyed || req.socket.destroyed) return;
          this.succeeded.set(key, (this.succeeded.get(key) ?? 0) + 1);
          if (!this.firstSuccessAt.has(key)) this.firstSuccessAt.set(key, Date.now());
          res.writeHead(200, { "content-type": "text/plain" });
          res.end("ok");
        };
        if (this.delayMs > 0) setTimeout(answer, this.delayMs);
        else answer();
      });
    });
  }

  async start(): Promise<this> {
    this.#server.keepAliveTimeout = 60_000;
    await new Promise<void>((resolve) => this.#server.listen(0, "127.0.0.1", resolve));
    this.url = `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
    return this;
  }

  /** Ends the faults; requests left hanging are answered 503 so the sender retries them. */
  heal(): void {
    this.faults = HEALTHY;
    for (const res of this.#hanging) {
      res.writeHead(503);
      res.end();
    }
  }

  async stop(): Promise<void> {
    this.heal();
    this.#server.closeAllConnections();
    await new Promise((resolve) => this.#server.close(resolve));
  }
}
