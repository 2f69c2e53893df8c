import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { OpsService } from "../../gen/funnel/ops/v1/ops_pb.js";
import type { App } from "../../services/app.js";
import { defineQueue } from "../../services/core/jobs/queue.js";
import { ADMIN_TOKEN, startTestApp } from "../support/stores.js";

// No worker takes this queue's jobs: they stay created.
const waiting = defineQueue<{ n: number }>("test.pages");
const failure = (promise: Promise<unknown>) => promise.then(() => undefined, (e: unknown) => ConnectError.from(e));

describe("OpsService.ListJobs pages", () => {
  let app: App;
  let ops: Client<typeof OpsService>;
  beforeAll(async () => {
    app = await startTestApp({ roles: ["api"], queues: [waiting as never] });
    ops = createClient(
      OpsService,
      createConnectTransport({ baseUrl: app.url, httpVersion: "1.1", interceptors: [(next) => (req) => (req.header.set("authorization", `Bearer ${ADMIN_TOKEN}`), next(req))] }),
    );
    // One statement: five jobs with one creation time, told apart by id.
    await app.jobs.sendMany(waiting, [1, 2, 3, 4, 5].map((n) => ({ payload: { n } })));
  });
  afterAll(async () => {
    await app?.stop();
  });

  it("pages through a queue's jobs newest first, each once", async () => {
    const seen: string[] = [];
    let token = "";
    const sizes: number[] = [];
    do {
      const page = await ops.listJobs({ queue: "test.pages", state: "created", limit: 2, pageToken: token });
      sizes.push(page.jobs.length);
      seen.push(...page.jobs.map((job) => job.id));
      token = page.nextPageToken;
    } while (token !== "");
    expect(sizes).toEqual([2, 2, 1]);
    expect(new Set(seen).size).toBe(5);
    const all = await ops.listJobs({ queue: "test.pages", state: "created", limit: 10 });
    expect(all.jobs.map((job) => job.id)).toEqual(seen);
    expect(all.nextPageToken).toBe("");
  });

  it("refuses a page token it did not issue", async () => {
    const error = await failure(ops.listJobs({ queue: "test.pages", state: "created", pageToken: "nonsense" }));
    expect(error?.code).toBe(Code.InvalidArgument);
    expect(error?.rawMessage).toMatch(/^page_token: not a token this service issued/);
  });
});
