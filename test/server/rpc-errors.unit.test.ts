import { Writable } from "node:stream";
import { Code, ConnectError, createClient, createRouterTransport, type Client } from "@connectrpc/connect";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EventKind, HttpMethod, PartnerService } from "../../gen/funnel/postback/v1/partner_pb.js";
import { BadRequestSchema } from "../../gen/google/rpc/error_details_pb.js";
import { createErrorInterceptor, MAX_ERROR_MESSAGE_CHARS } from "../../services/core/errors.js";
import { createLogger } from "../../services/core/logger.js";
import { createMetricsRegistry } from "../../services/core/metrics.js";
import { createRequestCheckInterceptor, type HandlerChecks } from "../../services/core/request-check.js";
import { createPartnerDirectory } from "../../services/postback/partner-directory.js";
import { createPartnerService } from "../../services/postback/partner-service.js";
import { createPartnerRepository } from "../../services/postback/partner-repository.js";

/** A log line as the process logger writes it. */
interface LogLine {
  readonly level: string;
  readonly msg: string;
  readonly method?: string;
  readonly err?: { readonly message: string };
}

/**
 * PartnerService over an in-memory transport, behind the interceptors the
 * server puts around every RPC, on `pool`. No test here needs a store: what
 * is checked answers before any query, and a query fails the way `pool` does.
 */
function partnerRpc(pool: pg.Pool, handlerChecks: HandlerChecks = {}) {
  const lines: LogLine[] = [];
  const log = createLogger(
    "info",
    false,
    new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines.push(JSON.parse(chunk.toString()) as LogLine);
        done();
      },
    }),
  );
  const metrics = createMetricsRegistry();
  const repository = createPartnerRepository(pool);
  const transport = createRouterTransport((router) => router.service(PartnerService, createPartnerService({ pool, repository, directory: createPartnerDirectory(repository) })), {
    router: { interceptors: [createErrorInterceptor(log, metrics), createRequestCheckInterceptor(handlerChecks)] },
  });
  /** The RPC counter's value for `method` and `code`. */
  const calls = async (method: string, code: string): Promise<number> => {
    const metric = await metrics.getSingleMetric("funnel_rpc_requests_total")?.get();
    return metric?.values.find((value) => value.labels.method === `funnel.postback.v1.PartnerService/${method}` && value.labels.code === code)?.value ?? 0;
  };
  return { client: createClient(PartnerService, transport), lines, calls };
}

/** How `call` failed: its code, message, and the field violations of its BadRequest detail. */
async function failure(call: Promise<unknown>): Promise<{ code: Code; message: string; violations: { field: string; description: string }[] }> {
  const error = ConnectError.from(await call.then(() => new Error("the call succeeded"), (caught: unknown) => caught));
  const violations = error.findDetails(BadRequestSchema).flatMap((detail) => detail.fieldViolations.map(({ field, description }) => ({ field, description })));
  return { code: error.code, message: error.rawMessage, violations };
}

describe("the RPC layer in memory", () => {
  // A pool that was closed: every query fails at once, without a connection.
  const closed = new pg.Pool();
  let rpc: ReturnType<typeof partnerRpc>;
  let partners: Client<typeof PartnerService>;
  beforeAll(async () => {
    await closed.end();
    rpc = partnerRpc(closed);
    partners = rpc.client;
  });

  it("refuses text no store would take before the handler runs, naming the field in the message and the detail", async () => {
    expect(await failure(partners.createPartner({ partner: { id: "p", name: "Bad\u0000Name" } }))).toEqual({
      code: Code.InvalidArgument,
      message: "partner.name: contains a NUL character",
      violations: [{ field: "partner.name", description: "contains a NUL character" }],
    });
    expect(await failure(partners.previewPostback({ partnerId: "p", sample: { params: { "utm source": "a\u0000" } } }))).toEqual({
      code: Code.InvalidArgument,
      message: 'sample.params["utm source"]: contains a NUL character',
      violations: [{ field: 'sample.params["utm source"]', description: "contains a NUL character" }],
    });
    expect(await rpc.calls("CreatePartner", "invalid_argument")).toBe(1);
  });

  it("names every field a handler refuses, one violation each", async () => {
    const { code, violations } = await failure(
      partners.createPartner({
        partner: { id: "bad id", install: { enabled: true, urlTemplate: "ftp://x.example/" }, authorization: { enabled: true }, timeout: { seconds: 600n } },
      }),
    );
    expect(code).toBe(Code.InvalidArgument);
    expect(violations).toEqual([
      { field: "partner.id", description: '"bad id" may hold only letters, digits, "-" and "." (a stag ends its partner id at the first "_")' },
      { field: "partner.install.url_template", description: "position 1: the URL must start with http:// or https://" },
      { field: "partner.authorization.url_template", description: "required when the event is enabled" },
      { field: "partner.timeout", description: "must be from 100ms to 120s" },
    ]);
  });

  it("a message without a field path is one violation of the request as a whole", async () => {
    expect(await failure(partners.createPartner({}))).toEqual({
      code: Code.InvalidArgument,
      message: "partner: required",
      violations: [{ field: "partner", description: "required" }],
    });
    expect((await failure(partners.previewPostback({ partner: { id: "p" } }))).violations).toEqual([
      { field: "event", description: "required (download, install or authorization)" },
    ]);
  });

  it("quotes at most 1,000 characters of what the caller sent, in the message and in the detail", async () => {
    const name = `x ${"y".repeat(5_000)}`;
    const { code, message, violations } = await failure(partners.createPartner({ partner: { id: "p", install: { headers: { [name]: "v" } } } }));
    expect(code).toBe(Code.InvalidArgument);
    expect(message).toHaveLength(MAX_ERROR_MESSAGE_CHARS + 1);
    expect(message.endsWith("…")).toBe(true);
    expect(message.startsWith('partner.install.headers: "x yyy')).toBe(true);
    expect(violations).toHaveLength(1);
    expect(violations[0]?.field).toBe("partner.install.headers");
    expect(violations[0]?.description.length).toBeLessThan(MAX_ERROR_MESSAGE_CHARS);
  });

  it("never cuts a message inside a surrogate pair", async () => {
    const name = `x${"😀".repeat(3_000)}`;
    const { message } = await failure(partners.createPartner({ partner: { id: "p", install: { headers: { [name]: "v" } } } }));
    expect(message.endsWith("…")).toBe(true);
    expect(message.isWellFormed()).toBe(true);
  });

  it("hides an unexpected failure as internal, logged once with its cause and counted", async () => {
    const before = rpc.lines.length;
    expect(await failure(partners.getPartner({ id: "acme" }))).toEqual({ code: Code.Internal, message: "internal error", violations: [] });
    const logged = rpc.lines.slice(before);
    expect(logged).toHaveLength(1);
    expect(logged[0]).toMatchObject({ level: "error", msg: "unexpected RPC failure", method: "funnel.postback.v1.PartnerService/GetPartner" });
    expect(logged[0]?.err?.message).toMatch(/Cannot use a pool after calling end on the pool/);
    expect(await rpc.calls("GetPartner", "internal")).toBe(1);
    // A refused id never reaches the store.
    expect((await failure(partners.getPartner({ id: "" }))).message).toBe("id: required");
    expect(rpc.lines.slice(before)).toHaveLength(1);
  });

  it("renders a draft partner's postback without a store, escaping each value for where it lands", async () => {
    const preview = await partners.previewPostback({
      event: EventKind.INSTALL,
      partner: {
        id: "acme",
        enabled: true,
        install: {
          enabled: true,
          urlTemplate: "https://acme.example/i?c={stag_clickID}&u={userID}&src={params.src}",
          method: HttpMethod.POST,
          bodyTemplate: '{"user":"{userID}","at":{timestamp}}',
          headers: { "x-key": "k" },
        },
      },
      sample: { clickId: "c-1", userId: 'a "b"&c', params: { src: "x y" }, occurredAt: { seconds: 1_700_000_000n, nanos: 0 } },
    });
    expect(preview.method).toBe(HttpMethod.POST);
    expect(preview.url).toBe("https://acme.example/i?c=c-1&u=a%20%22b%22%26c&src=x%20y");
    expect(JSON.parse(preview.body)).toEqual({ user: 'a "b"&c', at: 1_700_000_000 });
    expect(preview.headers).toMatchObject({ "x-key": "k", "content-type": "application/json", "user-agent": expect.stringMatching(/^Funnel-Postback\//) as unknown });
    expect(preview.wouldSend).toBe(true);
  });

  it("leaves the fields a module checks itself to its handler", async () => {
    const request = {
      event: EventKind.DOWNLOAD,
      partner: { id: "acme", download: { enabled: true, urlTemplate: "https://acme.example/d?src={params.src}" } },
      sample: { params: { src: "a\u0000b" } },
    };
    expect((await failure(partners.previewPostback(request))).message).toBe("sample.params.src: contains a NUL character");
    const lenient = partnerRpc(closed, { "funnel.postback.v1.PartnerService/PreviewPostback": ["sample"] });
    expect((await lenient.client.previewPostback(request)).url).toBe("https://acme.example/d?src=a%00b");
    // Other fields and other methods are still checked.
    expect((await failure(lenient.client.previewPostback({ ...request, partner: { ...request.partner, name: "\u0000" } }))).message).toBe("partner.name: contains a NUL character");
    expect((await failure(lenient.client.createPartner({ partner: { id: "p", name: "\u0000" } }))).message).toBe("partner.name: contains a NUL character");
  });

  it("reports every problem of an imported file by line and column, applying nothing", async () => {
    const answer = await partners.importPartners({ csv: "partner_id,enabled,install_url\nok,true,https://ok.example/\nbad_id,maybe,https://x.example/{nope}\n" });
    expect(answer.applied).toBe(false);
    expect(answer.errors.map(({ line, partnerId, column, message }) => ({ line, partnerId, column, message }))).toEqual([
      { line: 3, partnerId: "bad_id", column: "enabled", message: '"maybe" is not true or false' },
      { line: 3, partnerId: "bad_id", column: "partner_id", message: '"bad_id" may hold only letters, digits, "-" and "." (a stag ends its partner id at the first "_")' },
      { line: 3, partnerId: "bad_id", column: "install_url", message: expect.stringMatching(/^position 19: unknown placeholder \{nope\} \(known: /) as unknown },
    ]);
  });
});

describe("a store that cannot be reached", () => {
  // A socket directory that does not exist: each query fails to connect at once.
  const missing = new pg.Pool({ host: "/nonexistent-funnel-socket-dir", port: 5432, max: 1 });
  afterAll(async () => {
    await missing.end();
  });

  it("answers unavailable, so the caller retries, and logs a warning rather than an error", async () => {
    const rpc = partnerRpc(missing);
    expect(await failure(rpc.client.getPartner({ id: "acme" }))).toEqual({ code: Code.Unavailable, message: "storage is unavailable, retry later", violations: [] });
    expect(rpc.lines).toEqual([expect.objectContaining({ level: "warn", msg: "store unavailable", method: "funnel.postback.v1.PartnerService/GetPartner" })]);
    expect(await rpc.calls("GetPartner", "unavailable")).toBe(1);
  });
});
