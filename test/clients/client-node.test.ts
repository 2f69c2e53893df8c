import http from "node:http";
import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { Code, ConnectError, type ConnectRouter } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { createFunnelClients, isIdempotent, services, type FunnelClients, type RetryEvent } from "@funnel/client";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { TrackerService } from "../../gen/funnel/tracker/v1/tracker_pb.js";
import type { App } from "../../services/app.js";
import { ADMIN_TOKEN, startTestApp } from "../support/stores.js";

const protocols = ["connect", "grpc"] as const;

/** The code a call failed with, or "ok". */
async function outcome(call: Promise<unknown>): Promise<string> {
  try {
    await call;
    return "ok";
  } catch (error) {
    return Code[ConnectError.from(error).code];
  }
}

describe("@funnel/client against the server", () => {
  let app: App;
  const opened: FunnelClients[] = [];
  const clients = (options: Omit<Parameters<typeof createFunnelClients>[0], "baseUrl"> & { baseUrl?: string }) => {
    const funnel = createFunnelClients({ baseUrl: app.url, ...options });
    opened.push(funnel);
    return funnel;
  };

  beforeAll(async () => {
    app = await startTestApp();
    await createFunnelClients({ baseUrl: app.url, token: ADMIN_TOKEN }).seenAdmin.createIntegration({
      integration: { name: "client-feed", tags: ["client-goal"], enabled: true, delivery: { case: "topic", value: { topic: "client.feed" } } },
    });
  });
  afterEach(() => {
    for (const funnel of opened.splice(0)) funnel.close();
  });
  afterAll(async () => {
    await app.stop();
  });

  describe.each(protocols)("over %s", (protocol) => {
    it("calls admin, ingest and seen methods with the admin token", async () => {
      const funnel = clients({ protocol, token: ADMIN_TOKEN });
      const { tracker } = await funnel.tracker.createTracker({ value: `typed-${protocol}` });
      expect((await funnel.tracker.getTracker({ uuid: tracker!.uuid })).tracker?.value).toBe(`typed-${protocol}`);
      expect((await funnel.ops.getStatus({})).postgres?.healthy).toBe(true);
      const sent = await funnel.ingest.send({ event: "element_click", data: { element_type: "movie", page_type: "category" } });
      expect(sent.eventId).not.toBe("");
      expect((await funnel.partners.listPartners({})).partners).toBeInstanceOf(Array);
    });

    it("sends no token when none is given, and asks a token function before every call", async () => {
      expect(await outcome(clients({ protocol }).ops.getStatus({}))).toBe("Unauthenticated");
      let asked = 0;
      const funnel = clients({ protocol, token: () => (++asked === 1 ? "not-the-admin-token-000000" : ADMIN_TOKEN) });
      expect(await outcome(funnel.ops.getStatus({}))).toBe("Unauthenticated");
      expect(await outcome(funnel.ops.getStatus({}))).toBe("ok");
      expect(asked).toBe(2);
      // A call's own authorization header is kept, and the function is not asked for it.
      expect(await outcome(funnel.ops.getStatus({}, { headers: { authorization: "Bearer not-the-admin-token-000000" } }))).toBe("Unauthenticated");
      expect(asked).toBe(2);
    });

    it("ends a call at its deadline: the default one, or the call's own", async () => {
      const funnel = clients({ protocol, token: ADMIN_TOKEN, timeoutMs: 300 });
      // A subscription to a topic without messages waits for them until the deadline.
      const read = async (timeoutMs?: number) => {
        const started = Date.now();
        const stream = funnel.seenFeed.subscribe({ topic: "client.feed", consumer: `deadline-${protocol}` }, timeoutMs === undefined ? {} : { timeoutMs });
        const drain = async () => {
          for await (const message of stream) expect.fail(`no message was expected, got ${message.message?.id}`);
        };
        const code = await outcome(drain());
        return { code, elapsedMs: Date.now() - started };
      };
      const byDefault = await read();
      expect(byDefault.code).toBe("DeadlineExceeded");
      expect(byDefault.elapsedMs).toBeGreaterThanOrEqual(290);
      const longer = await read(800);
      expect(longer.code).toBe("DeadlineExceeded");
      expect(longer.elapsedMs).toBeGreaterThanOrEqual(790);
    });
  });

  describe.each(protocols)("retries over %s", (protocol) => {
    it("an idempotent method across a restart of the server on the same port, and a non-idempotent one never", async () => {
      const url = app.url;
      const port = new URL(url).port;
      await app.stop();
      const retries: RetryEvent[] = [];
      let firstRetry: () => void = () => {};
      const retried = new Promise<void>((resolve) => (firstRetry = resolve));
      const funnel = clients({ baseUrl: url, protocol, token: ADMIN_TOKEN, retry: { maxAttempts: 40, initialDelayMs: 50, maxDelayMs: 400, onRetry: (event) => { retries.push(event); firstRetry(); } } });

      expect(await outcome(funnel.tracker.createTracker({ value: "not-retried" }))).toBe("Unavailable");
      expect(retries).toEqual([]);

      const status = funnel.ops.getStatus({}).then((answer) => (answer.postgres?.healthy === true ? "healthy" : "not healthy"), (error: unknown) => Code[ConnectError.from(error).code]);
      // Started once the first attempt has failed, so that the answer needs a retry.
      await Promise.race([retried, status]);
      app = await startTestApp({ env: { PORT: port } });
      expect(await status).toBe("healthy");
      expect(retries.length).toBeGreaterThanOrEqual(1);
      expect(retries.every((event) => event.method.name === "GetStatus" && event.error.code === Code.Unavailable)).toBe(true);
      const { trackers } = await funnel.tracker.listTrackers({ pageSize: 1000 });
      expect(trackers.map((tracker) => tracker.value)).not.toContain("not-retried");
    });
  });
});

describe("@funnel/client retry policy", () => {
  const calls = { getTracker: 0, createTracker: 0 };
  const servers: { close(): void }[] = [];
  const urls: Record<(typeof protocols)[number], string> = { connect: "", grpc: "" };

  beforeAll(async () => {
    // A server that is up but not ready: every call answers unavailable, and is counted.
    const routes = (router: ConnectRouter) =>
      router.service(TrackerService, {
        getTracker() {
          calls.getTracker++;
          throw new ConnectError("warming up", Code.Unavailable);
        },
        createTracker() {
          calls.createTracker++;
          throw new ConnectError("warming up", Code.Unavailable);
        },
      });
    const h1 = http.createServer(connectNodeAdapter({ routes }));
    const h2 = http2.createServer(connectNodeAdapter({ routes }));
    for (const [name, server] of [["connect", h1], ["grpc", h2]] as const) {
      await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
      urls[name] = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      servers.push(server);
    }
  });
  afterAll(() => {
    for (const server of servers) server.close();
  });

  it.each(protocols)("over %s, tries an idempotent method maxAttempts times and a non-idempotent one once", async (protocol) => {
    calls.getTracker = 0;
    calls.createTracker = 0;
    const funnel = createFunnelClients({ baseUrl: urls[protocol], protocol, retry: { maxAttempts: 3, initialDelayMs: 10 } });
    expect(await outcome(funnel.tracker.getTracker({ uuid: "00000000-0000-4000-8000-000000000000" }))).toBe("Unavailable");
    expect(await outcome(funnel.tracker.createTracker({ value: "x" }))).toBe("Unavailable");
    funnel.close();
    expect(calls).toEqual({ getTracker: 3, createTracker: 1 });
  });

  it("marks reads as free of side effects and never marks a call that creates, sends or replays", () => {
    const methods = Object.values(services).flatMap((service) => service.methods);
    const marked = methods.filter(isIdempotent).map((method) => `${method.parent.name}.${method.name}`);
    for (const method of methods) {
      const name = `${method.parent.name}.${method.name}`;
      if (/^(Get|List|Is|Lookup|Export|Preview)/.test(method.name)) expect(marked, name).toContain(name);
      if (/^(Create|Send|Record|Retry|Redrive|Cancel|Redeliver|Replay|Import|Delete)/.test(method.name)) expect(marked, name).not.toContain(name);
    }
  });
});
