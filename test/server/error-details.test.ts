import http2 from "node:http2";
import { Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PartnerService } from "../../gen/funnel/postback/v1/partner_pb.js";
import { TrackerService } from "../../gen/funnel/tracker/v1/tracker_pb.js";
import { BadRequestSchema } from "../../gen/google/rpc/error_details_pb.js";
import type { App } from "../../services/app.js";
import { adminClients } from "../support/seen.js";
import { ADMIN_TOKEN, startTestApp } from "../support/stores.js";

const admin: Interceptor = (next) => (req) => (req.header.set("authorization", `Bearer ${ADMIN_TOKEN}`), next(req));

/** The field violations of the google.rpc.BadRequest detail `call` failed with. */
async function violations(call: Promise<unknown>): Promise<{ code: Code; violations: { field: string; description: string }[] }> {
  const error = ConnectError.from(await call.then(() => new Error("the call succeeded"), (error: unknown) => error));
  const details = error.findDetails(BadRequestSchema);
  return { code: error.code, violations: details.flatMap((detail) => detail.fieldViolations.map(({ field, description }) => ({ field, description }))) };
}

describe("error details", () => {
  let app: App;
  beforeAll(async () => {
    app = await startTestApp({ roles: ["api"] });
  });
  afterAll(async () => {
    await app?.stop();
  });

  const transports = {
    connect: () => createConnectTransport({ baseUrl: app.url, httpVersion: "1.1", interceptors: [admin] }),
    grpc: () => createGrpcTransport({ baseUrl: app.url, interceptors: [admin] }),
    "grpc-web": () => createGrpcWebTransport({ baseUrl: app.url, httpVersion: "1.1", interceptors: [admin] }),
  };

  for (const [protocol, transport] of Object.entries(transports)) {
    it(`invalid_argument carries google.rpc.BadRequest with the field and the reason (${protocol})`, async () => {
      const trackers = createClient(TrackerService, transport());
      expect(await violations(trackers.createTracker({ value: "" }))).toEqual({
        code: Code.InvalidArgument,
        violations: [{ field: "value", description: "required" }],
      });
    });
  }

  it("names every refused field of a request, one violation each", async () => {
    const partners = createClient(PartnerService, transports.connect());
    const { code, violations: found } = await violations(partners.createPartner({ partner: { id: "bad id with spaces", name: "", install: { urlTemplate: "ftp://x" } } }));
    expect(code).toBe(Code.InvalidArgument);
    expect(found.length).toBeGreaterThan(0);
    for (const violation of found) {
      expect(violation.field).toMatch(/^(id|partner\.[a-z_.]+)$/);
      expect(violation.description).not.toBe("");
      expect(violation.description).not.toContain("; partner.");
    }
  });

  for (const [what, body] of [["a JSON body that is not the message", '{"value": 5}'], ["a body that is no JSON", "{"]] as const) {
    it(`${what} is invalid_argument with a BadRequest detail too`, async () => {
      const res = await fetch(`${app.url}/funnel.tracker.v1.TrackerService/CreateTracker`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${ADMIN_TOKEN}` },
        body,
      });
      expect(res.status).toBe(400);
      const answer = (await res.json()) as { code: string; details?: { type: string }[] };
      expect(answer.code).toBe("invalid_argument");
      expect(answer.details?.map((detail) => detail.type)).toEqual(["google.rpc.BadRequest"]);
    });
  }

  it("a server stream that ends invalid_argument carries the detail too", async () => {
    const { feed } = adminClients(app);
    const read = async (): Promise<void> => {
      for await (const message of feed.subscribe({ topic: "no-such-topic", consumer: "not a valid name!" })) void message;
    };
    const { code, violations: found } = await violations(read());
    expect(code).toBe(Code.InvalidArgument);
    expect(found.map((violation) => violation.field)).toEqual(["consumer"]);
  });

  it("a request check (NUL in a string) names the field in the detail", async () => {
    const trackers = createClient(TrackerService, transports.grpc());
    const { code, violations: found } = await violations(trackers.createTracker({ value: "a\0b" }));
    expect(code).toBe(Code.InvalidArgument);
    expect(found.map((violation) => violation.field)).toEqual(["value"]);
    expect(found[0]?.description).toContain("NUL");
  });
});

describe("unknown services and methods", () => {
  let app: App;
  beforeAll(async () => {
    app = await startTestApp({ roles: ["api"] });
  });
  afterAll(async () => {
    await app?.stop();
  });

  it("answer gRPC's unimplemented (grpc-status 12) over gRPC", async () => {
    const session = http2.connect(app.url);
    try {
      for (const path of ["/funnel.nothing.v1.NothingService/Do", "/funnel.tracker.v1.TrackerService/NoSuchMethod"]) {
        const headers = await new Promise<http2.IncomingHttpHeaders>((resolve, reject) => {
          const stream = session.request({ ":method": "POST", ":path": path, "content-type": "application/grpc", te: "trailers" });
          stream.on("response", resolve).on("error", reject);
          stream.end(Buffer.from([0, 0, 0, 0, 0]));
          stream.resume();
        });
        expect(headers[":status"], path).toBe(200);
        expect(headers["grpc-status"], path).toBe("12");
      }
    } finally {
      session.close();
    }
  });

  it("answer grpc-status 12 over gRPC-Web", async () => {
    const res = await fetch(`${app.url}/funnel.nothing.v1.NothingService/Do`, {
      method: "POST",
      headers: { "content-type": "application/grpc-web+proto" },
      body: new Uint8Array([0, 0, 0, 0, 0]),
    });
    expect(res.status).toBe(200);
    expect(res.headers.get("grpc-status")).toBe("12");
  });

  it("answer Connect's unimplemented error over Connect, and a plain 404 elsewhere", async () => {
    const connect = await fetch(`${app.url}/funnel.nothing.v1.NothingService/Do`, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
    expect(connect.status).toBe(404);
    expect(await connect.json()).toMatchObject({ code: "unimplemented" });
    const plain = await fetch(`${app.url}/no/such/page`);
    expect(plain.status).toBe(404);
    expect(await plain.json()).toEqual({ error: "no route for /no/such/page" });
  });
});
