import http from "node:http";
import type { AddressInfo } from "node:net";

/** A request a partner server received. */
export interface ReceivedRequest {
  readonly method: string;
  /** Path and query, exactly as sent. */
  readonly url: string;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: string;
  readonly at: number;
}

/** What the partner answers; `delayMs` holds the answer back (timeouts). */
export interface PartnerAnswer {
  readonly status?: number;
  readonly body?: string;
  readonly headers?: Record<string, string>;
  readonly delayMs?: number;
}

export interface PartnerServer {
  /** Base URL, `http://127.0.0.1:PORT`. */
  readonly url: string;
  readonly requests: ReceivedRequest[];
  /** Requests whose path starts with `prefix`. */
  received(prefix: string): ReceivedRequest[];
  /** Sets how the server answers; by default `200 ok`. */
  answer(respond: (req: ReceivedRequest, index: number) => PartnerAnswer): void;
  close(): Promise<void>;
}

/** A real partner endpoint on 127.0.0.1, port 0, that records every request. */
export async function startPartnerServer(): Promise<PartnerServer> {
  const requests: ReceivedRequest[] = [];
  let respond: (req: ReceivedRequest, index: number) => PartnerAnswer = () => ({ status: 200, body: "ok" });
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      const received: ReceivedRequest = { method: req.method ?? "", url: req.url ?? "", headers: req.headers, body: Buffer.concat(chunks).toString(), at: Date.now() };
      requests.push(received);
      const answer = respond(received, requests.length - 1);
      const send = () => {
        if (res.destroyed) return;
        res.writeHead(answer.status ?? 200, answer.headers ?? {});
        res.end(answer.body ?? "ok");
      };
      if (answer.delayMs !== undefined) setTimeout(send, answer.delayMs);
      else send();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    received: (prefix) => requests.filter((req) => req.url.startsWith(prefix)),
    answer(next) {
      respond = next;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
