import http from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createGuardedAgent } from "../../services/core/outbound/guard.js";
import { createSender } from "../../services/core/outbound/send.js";

describe("outbound sender", () => {
  const guard = { allowPrivate: true, allowSetting: "TEST_ALLOW_PRIVATE" };
  const agent = createGuardedAgent(guard);
  const send = createSender({ ...guard, agent, userAgent: "funnel-test", bodyPrefixBytes: 16 });
  let server: http.Server;
  let base = "";
  beforeAll(async () => {
    server = http.createServer((req, res) => {
      if (req.url === "/stalls-after-prefix") {
        // A 2xx whose first bytes arrive, then nothing more until the client gives up.
        res.writeHead(200, { "content-type": "text/plain" });
        res.write("accepted: 0123456789abcdef");
        return;
      }
      if (req.url === "/stalls-before-prefix") {
        res.writeHead(200, { "content-type": "text/plain" });
        res.write("ok");
        return;
      }
      res.writeHead(200).end("x".repeat(200_000));
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
    await agent.close();
  });

  const attempt = (path: string) =>
    send({ method: "POST", url: `${base}${path}`, headers: {}, body: "{}", timeoutMs: 300 }, new AbortController().signal);

  it("counts a 2xx as delivered once its kept prefix is read, even if the rest stalls", async () => {
    const result = await attempt("/stalls-after-prefix");
    expect(result).toMatchObject({ verdict: "delivered", httpStatus: 200, error: "" });
    expect(result.responseBody.toString()).toBe("accepted: 012345");
  });

  it("retries a 2xx whose body stalls before the kept prefix is complete", async () => {
    expect(await attempt("/stalls-before-prefix")).toMatchObject({ verdict: "retry", error: "timeout after 300 ms" });
  });

  it("keeps the prefix of an answer longer than it drains", async () => {
    const result = await attempt("/long");
    expect(result).toMatchObject({ verdict: "delivered", httpStatus: 200 });
    expect(result.responseBody.toString()).toBe("x".repeat(16));
  });
});

describe("the guarded sender against a real server on loopback", () => {
  let server: http.Server;
  let port = 0;
  let requests = 0;
  beforeAll(async () => {
    server = http.createServer((_req, res) => {
      requests += 1;
      res.writeHead(204).end();
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    port = (server.address() as AddressInfo).port;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  const spellings = () => [`http://[::ffff:127.0.0.1]:${port}/`, `http://[::ffff:7f00:1]:${port}/`, `http://2130706433:${port}/`, `http://0x7f.1:${port}/`];
  const sendAll = async (allowPrivate: boolean) => {
    const guard = { allowPrivate, allowSetting: "TEST_ALLOW_PRIVATE" };
    const agent = createGuardedAgent(guard);
    const send = createSender({ ...guard, agent, userAgent: "funnel-test", bodyPrefixBytes: 16 });
    try {
      const results = [];
      for (const url of spellings()) results.push(await send({ method: "POST", url, headers: {}, body: "{}", timeoutMs: 2_000 }, new AbortController().signal));
      return results;
    } finally {
      await agent.close();
    }
  };

  it("refuses every loopback spelling without a request arriving", async () => {
    const before = requests;
    const results = await sendAll(false);
    for (const result of results) expect(result).toMatchObject({ verdict: "dead", httpStatus: null, error: expect.stringMatching(/: loopback address; set TEST_ALLOW_PRIVATE=true to allow$/) as unknown });
    expect(requests).toBe(before);
  });

  it("reaches them when private addresses are allowed", async () => {
    const before = requests;
    const results = await sendAll(true);
    for (const result of results) expect(result).toMatchObject({ verdict: "delivered", httpStatus: 204 });
    expect(requests).toBe(before + spellings().length);
  });
});
