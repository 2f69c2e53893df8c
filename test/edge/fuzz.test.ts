import { readdir } from "node:fs/promises";
import http2 from "node:http2";
import net from "node:net";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import {
  create,
  type DescField,
  type DescMessage,
  type DescMethod,
  type DescService,
  type JsonObject,
  type JsonValue,
  fromBinary,
  fromJsonString,
  ScalarType,
  toBinary,
  toJsonString,
} from "@bufbuild/protobuf";
import { codeToString } from "@connectrpc/connect/protocol-connect";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EventSchema, EventStatus, GetQualityRequestSchema, IngestService, SendBatchRequestSchema, SendBatchResponseSchema } from "../../gen/funnel/ingest/v1/ingest_pb.js";
import { DeliveryService, ListDeliveriesRequestSchema } from "../../gen/funnel/postback/v1/delivery_pb.js";
import { SeenFeedService } from "../../gen/funnel/seen/v1/feed_pb.js";
import type { App } from "../../services/app.js";
import { MAX_ERROR_MESSAGE_CHARS } from "../../services/core/errors.js";
import { MAX_STRUCT_DEPTH } from "../../services/core/request-check.js";
import { ADMIN_TOKEN, startTestApp } from "../support/stores.js";

/**
 * Hostile requests against a real app: every method of every service in
 * `gen/`, over every protocol the port speaks. Whatever the bytes, the answer
 * is the caller's fault (4xx, or a gRPC code that is not a server failure),
 * comes in time, and gives nothing of the server away.
 */

/** gRPC/Connect codes that blame the server or tell the caller to retry: never the answer to bad bytes. */
const SERVER_FAULTS: ReadonlySet<string> = new Set(["internal", "unknown", "unavailable", "data_loss"]);
/** A stack frame as Node prints it. */
const STACK_FRAME = /^\s+at /m;
/** Text of SQL statements or of Postgres's errors about them. */
const SQL_TEXT = /SELECT |INSERT |UPDATE |DELETE FROM|syntax error|relation "/i;
/** Each request is answered within this or counts as a hang. */
const ANSWER_TIMEOUT_MS = 15_000;

interface Answer {
  /** HTTP status. */
  readonly status: number;
  /** The RPC code as Connect names it (`ok`, `invalid_argument`, …); undefined when the answer carries none (404, 415). */
  readonly code: string | undefined;
  /** The error message, when there is one. */
  readonly message: string;
  /** Everything the client got: body and header values, as text. */
  readonly text: string;
  /** The body as received. */
  readonly body: Uint8Array;
}

type Protocol = "connect-json-h1" | "connect-json-h2" | "connect-proto-h1" | "connect-proto-h2" | "grpc-web" | "grpc";
const PROTOCOLS: readonly Protocol[] = ["connect-json-h1", "connect-json-h2", "connect-proto-h1", "connect-proto-h2", "grpc-web", "grpc"];

const encoder = new TextEncoder();
const bytes = (text: string): Uint8Array => encoder.encode(text);

/** A length-prefixed message: the framing of gRPC, gRPC-Web and Connect streams. */
function envelope(flags: number, data: Uint8Array, declared = data.byteLength): Uint8Array {
  const out = new Uint8Array(5 + data.byteLength);
  const view = new DataView(out.buffer);
  view.setUint8(0, flags);
  view.setUint32(1, declared);
  out.set(data, 5);
  return out;
}

/** The envelopes of a body, as far as they are complete. */
function envelopes(body: Uint8Array): { flags: number; data: Uint8Array }[] {
  const out: { flags: number; data: Uint8Array }[] = [];
  const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
  for (let at = 0; at + 5 <= body.byteLength; ) {
    const length = view.getUint32(at + 1);
    out.push({ flags: view.getUint8(at), data: body.subarray(at + 5, at + 5 + length) });
    at += 5 + length;
  }
  return out;
}

const codeName = (grpcStatus: string | undefined): string | undefined => {
  if (grpcStatus === undefined) return undefined;
  const code = Number(grpcStatus);
  return code === 0 ? "ok" : codeToString(code);
};

/** Reads the RPC outcome from an answer in any of the protocols. */
function readAnswer(status: number, headers: Record<string, string>, trailers: Record<string, string>, body: Uint8Array): Answer {
  const type = headers["content-type"] ?? "";
  const raw = Buffer.from(body).toString("latin1");
  const text = [raw, ...Object.values(headers), ...Object.values(trailers)].join("\n");
  let code: string | undefined;
  let message = "";
  const grpcMessage = (h: Record<string, string>): string => decodeURIComponent(h["grpc-message"] ?? "");
  if (type.startsWith("application/grpc-web")) {
    const trailer = envelopes(body).find((e) => (e.flags & 0x80) !== 0);
    const fields = Object.fromEntries(
      Buffer.from(trailer?.data ?? new Uint8Array())
        .toString("latin1")
        .split("\r\n")
        .filter((line) => line.includes(":"))
        .map((line) => [line.slice(0, line.indexOf(":")).trim().toLowerCase(), line.slice(line.indexOf(":") + 1).trim()]),
    );
    code = codeName(fields["grpc-status"] ?? headers["grpc-status"]);
    message = grpcMessage(fields["grpc-status"] !== undefined ? fields : headers);
  } else if (type.startsWith("application/grpc")) {
    code = codeName(trailers["grpc-status"] ?? headers["grpc-status"]);
    message = grpcMessage(trailers["grpc-status"] !== undefined ? trailers : headers);
  } else if (type.startsWith("application/connect+")) {
    const end = envelopes(body).find((e) => (e.flags & 0x02) !== 0);
    const parsed = end !== undefined ? (JSON.parse(Buffer.from(end.data).toString("utf8")) as { error?: { code: string; message?: string } }) : undefined;
    code = parsed === undefined ? undefined : (parsed.error?.code ?? "ok");
    message = parsed?.error?.message ?? "";
  } else if (status === 200) {
    code = "ok";
  } else if (type.startsWith("application/json") && raw.startsWith("{")) {
    const parsed = JSON.parse(Buffer.from(body).toString("utf8")) as { code?: string; message?: string; error?: string };
    code = parsed.code;
    message = parsed.message ?? parsed.error ?? "";
  }
  return { status, code, message, text, body };
}

/**
 * Methods whose answers may quote the caller's own SQL: `QueryAnalytics` takes
 * a statement and names where ClickHouse's parser stopped in it.
 */
const QUOTES_CALLERS_SQL = new Set(["funnel.ops.v1.OpsService/QueryAnalytics"]);
const quotesCallersSql = (method: DescMethod): boolean => QUOTES_CALLERS_SQL.has(`${method.parent.typeName}/${method.name}`);

/** Asserts the house rule for any answer to a hostile request. */
function assertCallersFault(answer: Answer, what: string, sqlQuoted = false): void {
  const shown = `${what}: HTTP ${answer.status} ${answer.code ?? "-"} ${answer.message.slice(0, 300)}`;
  expect(answer.status, shown).toBeLessThan(500);
  expect(SERVER_FAULTS.has(answer.code ?? ""), shown).toBe(false);
  expect(answer.text, shown).not.toMatch(STACK_FRAME);
  if (!sqlQuoted) expect(answer.text, shown).not.toMatch(SQL_TEXT);
}

let app: App;
let session: http2.ClientHttp2Session;
let goaway: string | undefined;

/** What a failure report says of the shared HTTP/2 session: closed, and the GOAWAY it got. */
function sessionState(): string {
  return `${session.destroyed ? "destroyed" : session.closed ? "closed" : "open"}${goaway === undefined ? "" : `, ${goaway}`}`;
}

async function viaHttp1(path: string, headers: Record<string, string>, body: Uint8Array): Promise<Answer> {
  const res = await fetch(`${app.url}${path}`, { method: "POST", headers, body, signal: AbortSignal.timeout(ANSWER_TIMEOUT_MS) });
  const got = new Uint8Array(await res.arrayBuffer());
  return readAnswer(res.status, Object.fromEntries(res.headers), {}, got);
}

function viaHttp2(path: string, headers: Record<string, string>, body: Uint8Array): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const stream = session.request({ ":method": "POST", ":path": path, ...headers });
    const chunks: Buffer[] = [];
    let status = 0;
    let head: Record<string, string> = {};
    let trailers: Record<string, string> = {};
    const flat = (h: http2.IncomingHttpHeaders): Record<string, string> =>
      Object.fromEntries(Object.entries(h).map(([k, v]) => [k, Array.isArray(v) ? v.join(", ") : String(v)]));
    const timer = setTimeout(() => {
      stream.close(http2.constants.NGHTTP2_CANCEL);
      reject(new Error(`no answer within ${ANSWER_TIMEOUT_MS} ms`));
    }, ANSWER_TIMEOUT_MS);
    // The answer is complete at its END_STREAM ("end"), even while the server
    // resets the rest of a request it did not read.
    const done = (): void => {
      clearTimeout(timer);
      if (status === 0) reject(new Error(`stream ${stream.id} closed without an answer (code ${stream.rstCode}; session ${sessionState()})`));
      else resolve(readAnswer(status, head, trailers, new Uint8Array(Buffer.concat(chunks))));
      if (!stream.closed) stream.close();
    };
    stream.on("response", (h) => {
      status = Number(h[":status"]);
      head = flat(h);
    });
    stream.on("trailers", (h: http2.IncomingHttpHeaders) => {
      trailers = flat(h);
    });
    stream.on("data", (chunk: Buffer) => chunks.push(chunk));
    stream.once("end", done);
    stream.once("close", done);
    stream.on("error", (error: Error) => {
      clearTimeout(timer);
      reject(error);
    });
    stream.end(body);
  });
}

/**
 * Sends `body` (already framed for `protocol`) to a method; `encoding` names
 * a compression in the protocol's own header (the body is not compressed).
 */
function send(method: DescMethod, protocol: Protocol, body: Uint8Array, token: boolean, encoding?: string): Promise<Answer> {
  const path = `/${method.parent.typeName}/${method.name}`;
  const streaming = method.methodKind !== "unary";
  const auth: Record<string, string> = token ? { authorization: `Bearer ${ADMIN_TOKEN}` } : {};
  const grpcEncoding: Record<string, string> = encoding !== undefined ? { "grpc-encoding": encoding } : {};
  const connectEncoding: Record<string, string> = encoding === undefined ? {} : streaming ? { "connect-content-encoding": encoding } : { "content-encoding": encoding };
  switch (protocol) {
    case "connect-json-h1":
    case "connect-json-h2": {
      const headers = { "content-type": streaming ? "application/connect+json" : "application/json", "connect-protocol-version": "1", ...connectEncoding, ...auth };
      return protocol === "connect-json-h1" ? viaHttp1(path, headers, body) : viaHttp2(path, headers, body);
    }
    case "connect-proto-h1":
    case "connect-proto-h2": {
      const headers = { "content-type": streaming ? "application/connect+proto" : "application/proto", "connect-protocol-version": "1", ...connectEncoding, ...auth };
      return protocol === "connect-proto-h1" ? viaHttp1(path, headers, body) : viaHttp2(path, headers, body);
    }
    case "grpc-web":
      return viaHttp1(path, { "content-type": "application/grpc-web+proto", "x-grpc-web": "1", ...grpcEncoding, ...auth }, body);
    case "grpc":
      return viaHttp2(path, { "content-type": "application/grpc", te: "trailers", ...grpcEncoding, ...auth }, body);
  }
}

/** Frames one message for `protocol` (streams and gRPC wrap it in an envelope). */
function frame(method: DescMethod, protocol: Protocol, message: Uint8Array): Uint8Array {
  const enveloped = protocol === "grpc" || protocol === "grpc-web" || method.methodKind !== "unary";
  return enveloped ? envelope(0, message) : message;
}

const isJson = (protocol: Protocol): boolean => protocol.startsWith("connect-json");

// ---------------------------------------------------------------- generators

/** Strings as an attacker writes them: NUL, lone surrogates, any UTF-16 unit, a megabyte now and then. */
const hostileString: fc.Arbitrary<string> = fc.oneof(
  { weight: 4, arbitrary: fc.string({ maxLength: 24 }) },
  { weight: 4, arbitrary: fc.array(fc.integer({ min: 0, max: 0xffff }), { maxLength: 24 }).map((units) => String.fromCharCode(...units)) },
  { weight: 3, arbitrary: fc.constantFrom("\u0000", "a\u0000b", "\ud800", "x\udc00y", "\udfff\ud800", "%00", "\u0000".repeat(64)) },
  { weight: 2, arbitrary: fc.uuid() },
  { weight: 1, arbitrary: fc.constantFrom("x".repeat(1 << 20), "é\u0000".repeat(1 << 18), "\ud800".repeat(1 << 18)) },
);

function scalarArb(field: DescField & { scalar: ScalarType }): fc.Arbitrary<unknown> {
  switch (field.scalar) {
    case ScalarType.STRING:
      return hostileString;
    case ScalarType.BYTES:
      return fc.uint8Array({ maxLength: 32 });
    case ScalarType.BOOL:
      return fc.boolean();
    case ScalarType.DOUBLE:
    case ScalarType.FLOAT:
      return fc.double();
    case ScalarType.INT32:
    case ScalarType.SINT32:
    case ScalarType.SFIXED32:
      return fc.integer();
    case ScalarType.UINT32:
    case ScalarType.FIXED32:
      return fc.integer({ min: 0, max: 2 ** 32 - 1 });
    case ScalarType.UINT64:
    case ScalarType.FIXED64:
      return fc.bigInt({ min: 0n, max: 2n ** 64n - 1n });
    default:
      return fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n });
  }
}

/** The value of one field (a list or map field: its whole value). */
function fieldArb(field: DescField, depth: number): fc.Arbitrary<unknown> {
  const single = (): fc.Arbitrary<unknown> => {
    if (field.fieldKind === "enum" || (field.fieldKind === "list" && field.listKind === "enum") || (field.fieldKind === "map" && field.mapKind === "enum")) {
      const values = field.enum.values.map((v) => v.number);
      return fc.oneof(fc.constantFrom(...values), fc.integer());
    }
    if (field.fieldKind === "message" || (field.fieldKind === "list" && field.listKind === "message") || (field.fieldKind === "map" && field.mapKind === "message")) {
      return messageArb(field.message, depth + 1);
    }
    return scalarArb(field);
  };
  switch (field.fieldKind) {
    case "list":
      return fc.array(single(), { maxLength: 3 });
    case "map": {
      const key = field.mapKey === ScalarType.STRING ? hostileString : fc.integer({ min: 0, max: 1000 }).map(String);
      return fc.dictionary(key, single(), { maxKeys: 3 });
    }
    default:
      return single();
  }
}

/** Init objects for `create(desc, …)`: every field may be set, strings hostile. Nesting stops at depth 3. */
function messageArb(desc: DescMessage, depth = 0): fc.Arbitrary<Record<string, unknown>> {
  if (depth > 3) return fc.constant({});
  const parts: Record<string, fc.Arbitrary<unknown>> = {};
  for (const member of desc.members) {
    if (member.kind === "oneof") {
      parts[member.localName] = fc.oneof(...member.fields.map((f) => fieldArb(f, depth).map((value) => ({ case: f.localName, value }))));
    } else {
      parts[member.localName] = fieldArb(member, depth);
    }
  }
  return fc.record(parts, { requiredKeys: [] });
}

/** A message of the method's input type, encoded for the protocol (JSON when it can be written as JSON). */
function encodeMessage(method: DescMethod, protocol: Protocol, init: Record<string, unknown>): Uint8Array {
  const message = create(method.input, init as never);
  if (isJson(protocol)) {
    try {
      return bytes(toJsonString(method.input, message));
    } catch {
      // Values JSON cannot carry (a Timestamp out of range): send them as JSON anyway, field by field.
      return bytes(JSON.stringify(init, (_key, value: unknown) => (typeof value === "bigint" ? String(value) : value)));
    }
  }
  return toBinary(method.input, message);
}

/** Raw bytes in place of a top-level string field: invalid UTF-8 as JSON and as protobuf would carry it. */
function invalidUtf8Body(method: DescMethod, protocol: Protocol, junk: Uint8Array): Uint8Array | undefined {
  const field = method.input.fields.find((f) => f.fieldKind === "scalar" && f.scalar === ScalarType.STRING);
  if (field === undefined) return undefined;
  if (isJson(protocol)) return new Uint8Array(Buffer.concat([bytes(`{"${field.jsonName}":"`), junk, bytes(`"}`)]));
  // Tag (field number, length-delimited), length, bytes; short enough for one-byte varints.
  return new Uint8Array([(field.number << 3) | 2, junk.byteLength, ...junk]);
}

/** Nested JSON: objects under a field of the input (a Struct, for Event.data), or arrays. */
function deepJson(method: DescMethod, depth: number, arrays: boolean): Uint8Array {
  const field = method.input.fields[0]?.jsonName ?? "x";
  const [open, close] = arrays ? ["[", "]"] : ['{"a":', "}"];
  return bytes(`{"${field}":${open.repeat(depth)}1${close.repeat(depth)}}`);
}

// --------------------------------------------------------------- the methods

async function generatedServices(): Promise<DescService[]> {
  const root = fileURLToPath(new URL("../../gen/", import.meta.url));
  const files = (await readdir(root, { recursive: true })).filter((file) => file.endsWith("_pb.ts")).sort();
  const services: DescService[] = [];
  for (const file of files) {
    const module = (await import(pathToFileURL(join(root, file)).href)) as Record<string, unknown>;
    for (const value of Object.values(module)) {
      if (typeof value === "object" && value !== null && (value as { kind?: unknown }).kind === "service") services.push(value as DescService);
    }
  }
  return services;
}

const services = await generatedServices();
/**
 * Health/Watch answers until the caller hangs up and reflection is a
 * bidirectional stream (HTTP/2 only, a 505 over HTTP/1.1): neither ends as a
 * fuzzed request expects; test/clients/grpc-tooling.test.ts covers both.
 */
const unending = new Set(["grpc.health.v1.Health/Watch", "grpc.reflection.v1.ServerReflection/ServerReflectionInfo", "grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"]);
const methods = services.flatMap((service) => service.methods).filter((method) => !unending.has(`${method.parent.typeName}/${method.name}`));

/**
 * Runs a property for every method. A failure names the method, the seed and
 * the request (cut: it may hold megabyte strings); no shrinking, since each
 * step is a round trip. `FUZZ_SEED=N FUZZ_METHOD=Name` replays a reported
 * failure for one method.
 */
async function forEveryMethod<T>(arb: (method: DescMethod) => fc.Arbitrary<T>, check: (method: DescMethod, value: T) => Promise<void>, numRuns: number): Promise<void> {
  for (const method of methods.filter((m) => !process.env.FUZZ_METHOD || m.name === process.env.FUZZ_METHOD)) {
    const details = await fc.check(
      fc.asyncProperty(arb(method), (value) => check(method, value)),
      { numRuns, endOnFailure: true, ...(process.env.FUZZ_SEED ? { seed: Number(process.env.FUZZ_SEED) } : {}) },
    );
    if (details.failed) {
      const request = fc.stringify(details.counterexample).slice(0, 2_000);
      throw new Error(`${method.parent.typeName}/${method.name} (seed ${details.seed}): ${request}`, { cause: details.errorInstance });
    }
  }
}

const protocolArb = fc.constantFrom(...PROTOCOLS);
/** No compression named, or one the server knows or does not know (the body is never compressed). */
const encodingArb = fc.constantFrom(undefined, undefined, "gzip", "br", "identity", "zstd");

describe("hostile requests", () => {
  beforeAll(async () => {
    // The api role alone: nothing is delivered, so random partners and
    // integrations never make the app call out.
    // A JWT secret, so that user tokens are checked (and refused) rather than
    // unverifiable for want of any key, which is the server's fault.
    app = await startTestApp({ roles: ["api"], env: { AUTH_JWT_SECRET: "fuzz-test-secret-0123456789abcdef" } });
    session = http2.connect(app.url);
    session.on("goaway", (code, lastStreamId) => {
      goaway = `GOAWAY ${code} after stream ${lastStreamId}`;
    });
  });
  afterAll(async () => {
    session?.close();
    await app?.stop();
  });

  it("walks every service of gen/, each served by the app", async () => {
    expect(services.map((s) => s.typeName)).toContain(IngestService.typeName);
    expect(methods.length).toBeGreaterThan(30);
    for (const service of services) {
      const answer = await send(service.methods[0]!, "connect-json-h1", service.methods[0]!.methodKind === "unary" ? bytes("{}") : envelope(0, bytes("{}")), true);
      expect(answer.status, service.typeName).not.toBe(404);
    }
  });

  describe("regressions", () => {
    const ingestSend = IngestService.method.send;

    for (const protocol of ["connect-proto-h1", "connect-proto-h2"] as const) {
      it(`a binary Connect body that ends early is invalid_argument (${protocol})`, async () => {
        const answer = await send(ingestSend, protocol, new Uint8Array([0x0a, 0x10, 0x41]), false);
        expect(answer).toMatchObject({ status: 400, code: "invalid_argument" });
        expect(answer.message).toMatch(/premature EOF/);
        assertCallersFault(answer, protocol);
      });
    }

    it("a Connect call naming a compression the server does not know is a 400", async () => {
      const answer = await send(ingestSend, "connect-proto-h1", new Uint8Array(), false, "zstd");
      expect(answer).toMatchObject({ status: 400, code: "invalid_argument" });
      expect(answer.message).toMatch(/unknown compression "zstd"/);
    });

    it("a gRPC-Web frame whose message does not parse is invalid_argument", async () => {
      const answer = await send(ingestSend, "grpc-web", envelope(0, new Uint8Array([0x0a, 0x10, 0x41])), false);
      expect(answer).toMatchObject({ status: 200, code: "invalid_argument" });
      expect(answer.message).toMatch(/premature EOF/);
    });

    it("a gRPC-Web frame flagged compressed without an encoding is invalid_argument", async () => {
      const answer = await send(ingestSend, "grpc-web", envelope(1, bytes("not gzip")), false);
      expect(answer).toMatchObject({ status: 200, code: "invalid_argument" });
    });

    it("a gRPC-Web frame cut short is invalid_argument", async () => {
      const answer = await send(ingestSend, "grpc-web", envelope(0, bytes("abc"), 10), false);
      expect(answer).toMatchObject({ status: 200, code: "invalid_argument" });
    });

    it("a gRPC frame over h2c whose message does not parse is invalid_argument", async () => {
      const answer = await send(ingestSend, "grpc", envelope(0, new Uint8Array([0x12, 0xff, 0x01])), false);
      expect(answer).toMatchObject({ status: 200, code: "invalid_argument" });
    });

    it("a server stream whose request does not parse ends invalid_argument", async () => {
      const subscribe = SeenFeedService.method.subscribe;
      for (const protocol of ["connect-proto-h1", "grpc"] as const) {
        const answer = await send(subscribe, protocol, envelope(0, new Uint8Array([0x0a, 0x10, 0x41])), true);
        expect(answer.code, protocol).toBe("invalid_argument");
      }
    });

    const deepData = (depth: number): JsonValue => {
      let value: JsonValue = "leaf";
      for (let i = 0; i < depth; i += 1) value = { a: value };
      return value;
    };

    for (const protocol of ["connect-json-h1", "connect-json-h2", "connect-proto-h1", "grpc"] as const) {
      it(`a Struct 200 levels deep is invalid_argument naming the field (${protocol})`, async () => {
        const event = create(EventSchema, { event: "element_click", data: deepData(200) as JsonObject });
        const body = isJson(protocol) ? bytes(toJsonString(EventSchema, event)) : frame(ingestSend, protocol, toBinary(EventSchema, event));
        const answer = await send(ingestSend, protocol, body, false);
        expect(answer.code).toBe("invalid_argument");
        expect(answer.message).toBe(`data: nested deeper than ${MAX_STRUCT_DEPTH} levels`);
      });
    }

    it("a Struct too deep in one event of a batch names that event", async () => {
      const deep = deepData(MAX_STRUCT_DEPTH + 1) as JsonObject;
      const batch = create(SendBatchRequestSchema, {
        events: [create(EventSchema, { event: "element_click" }), create(EventSchema, { event: "element_click", data: deep })],
      });
      const answer = await send(IngestService.method.sendBatch, "connect-json-h1", bytes(toJsonString(SendBatchRequestSchema, batch)), false);
      // That event alone is rejected; its neighbour is judged on its own (element_click needs its fields).
      expect(answer).toMatchObject({ status: 200, code: "ok" });
      const results = fromJsonString(SendBatchResponseSchema, Buffer.from(answer.body).toString("utf8")).results;
      expect(results[1]).toMatchObject({ status: EventStatus.REJECTED, message: `data: nested deeper than ${MAX_STRUCT_DEPTH} levels` });
    });

    it(`a Struct ${MAX_STRUCT_DEPTH} levels deep passes the depth check`, async () => {
      const event = create(EventSchema, { event: "element_click", data: deepData(MAX_STRUCT_DEPTH) as JsonObject });
      const answer = await send(ingestSend, "connect-json-h1", bytes(toJsonString(EventSchema, event)), false);
      // Past the depth check, the type's own validation speaks: element_click has no field `a`.
      expect(answer).toMatchObject({ status: 400, code: "invalid_argument", message: "data.a: unknown field" });
    });

    it("a Timestamp out of range in binary (JSON cannot carry it) is invalid_argument naming the field", async () => {
      const far = { seconds: 2n ** 63n - 1n, nanos: 0 };
      const list = create(ListDeliveriesRequestSchema, { filter: { to: far } });
      const listed = await send(DeliveryService.method.listDeliveries, "grpc", envelope(0, toBinary(ListDeliveriesRequestSchema, list)), true);
      expect(listed).toMatchObject({ code: "invalid_argument", message: "filter.to: not a valid time (0001-01-01 to 9999-12-31 UTC)" });
      const batch = create(SendBatchRequestSchema, { events: [{ event: "element_click", data: { element_type: "movie", page_type: "category" }, clientTime: far }] });
      const sent = await send(IngestService.method.sendBatch, "connect-proto-h1", toBinary(SendBatchRequestSchema, batch), false);
      // In a batch, the event alone is rejected.
      expect(sent).toMatchObject({ status: 200, code: "ok" });
      const answer = fromBinary(SendBatchResponseSchema, sent.body);
      expect(answer.results[0]).toMatchObject({ status: EventStatus.REJECTED, message: "client_time: not a valid time (0001-01-01 to 9999-12-31 UTC)" });
    });

    for (const protocol of ["connect-json-h1", "connect-json-h2"] as const) {
      it(`invalid UTF-8 in a JSON body is invalid_argument (${protocol})`, async () => {
        const body = Buffer.concat([
          bytes('{"event":"element_click","data":{"element_type":"movie","page_type":"category"},"session_id":"'),
          Buffer.from([0xc3, 0x28, 0xff]),
          bytes('"}'),
        ]);
        const answer = await send(ingestSend, protocol, new Uint8Array(body), false);
        expect(answer).toMatchObject({ status: 400, code: "invalid_argument", message: "request body: not valid UTF-8" });
      });
    }

    it("an error quoting a megabyte the caller sent is cut, so gRPC can carry it in a trailer", async () => {
      const request = create(GetQualityRequestSchema, { to: "x".repeat(1 << 20) });
      const answer = await send(IngestService.method.getQuality, "grpc", frame(IngestService.method.getQuality, "grpc", toBinary(GetQualityRequestSchema, request)), true);
      expect(answer.code).toBe("invalid_argument");
      expect(answer.message).toMatch(/^to: must be a day as YYYY-MM-DD, got "xxx.*…$/);
      expect(answer.message.length).toBe(MAX_ERROR_MESSAGE_CHARS + 1);
    });

    it("an HTTP/1.0 RPC without a Host header is a 400, and the server keeps serving", async () => {
      const reply = await new Promise<string>((resolve, reject) => {
        const socket = net.connect(Number(new URL(app.url).port), "127.0.0.1");
        let got = "";
        socket.on("data", (chunk) => {
          got += chunk.toString("latin1");
        });
        socket.on("end", () => resolve(got));
        socket.on("error", reject);
        socket.end("POST /funnel.ingest.v1.IngestService/Send HTTP/1.0\r\ncontent-type: application/proto\r\ncontent-length: 0\r\n\r\n");
      });
      expect(reply).toMatch(/^HTTP\/1\.1 400 /);
      expect((await fetch(`${app.url}/healthz`)).status).toBe(200);
    });
  });

  describe("fuzz", () => {
    it("random bytes as binary Connect bodies", async () => {
      await forEveryMethod(
        (method) =>
          fc.record({
            junk: fc.oneof(fc.uint8Array({ maxLength: 256 }), messageArb(method.input).map((init) => toBinary(method.input, create(method.input, init as never)))),
            cut: fc.nat(),
            flip: fc.option(fc.tuple(fc.nat(), fc.integer({ min: 1, max: 255 }))),
            h2: fc.boolean(),
            token: fc.boolean(),
            encoding: encodingArb,
          }),
        async (method, { junk, cut, flip, h2, token, encoding }) => {
          // A real message cut short or with one byte changed reaches deeper into the parser than noise.
          const body = junk.slice(0, junk.byteLength === 0 ? 0 : cut % (junk.byteLength + 1));
          if (flip !== null && body.byteLength > 0) {
            const at = flip[0] % body.byteLength;
            body[at] = (body[at] ?? 0) ^ flip[1];
          }
          const protocol = h2 ? "connect-proto-h2" : "connect-proto-h1";
          assertCallersFault(await send(method, protocol, method.methodKind === "unary" ? body : envelope(0, body), token, encoding), protocol, quotesCallersSql(method));
        },
        20,
      );
    });

    const frames = fc.record({
      flags: fc.oneof(fc.constantFrom(0, 1, 2, 0x80, 0x81), fc.integer({ min: 0, max: 255 })),
      payload: fc.uint8Array({ maxLength: 128 }),
      declared: fc.option(fc.oneof(fc.nat({ max: 300 }), fc.constant(0xffffffff), fc.constant(4 * 1024 * 1024 + 1))),
      cut: fc.option(fc.nat()),
      more: fc.uint8Array({ maxLength: 12 }),
      token: fc.boolean(),
      encoding: encodingArb,
    });

    for (const protocol of ["grpc-web", "grpc"] as const) {
      it(`truncated and garbled ${protocol} envelopes`, async () => {
        await forEveryMethod(
          () => frames,
          async (method, { flags, payload, declared, cut, more, token, encoding }) => {
            let body = Buffer.concat([envelope(flags, payload, declared ?? payload.byteLength), more]);
            if (cut !== null) body = body.subarray(0, cut % (body.byteLength + 1));
            assertCallersFault(await send(method, protocol, new Uint8Array(body), token, encoding), protocol, quotesCallersSql(method));
          },
          15,
        );
      });
    }

    it("random JSON shapes and deep nesting as Connect JSON", async () => {
      await forEveryMethod(
        (method) =>
          fc.record({
            body: fc.oneof(
              fc.jsonValue().map((value) => bytes(JSON.stringify(value))),
              fc.dictionary(fc.constantFrom(...method.input.fields.map((f) => f.jsonName), "x"), fc.jsonValue({ maxDepth: 4 })).map((value) => bytes(JSON.stringify(value))),
              fc.string().map(bytes),
              fc.tuple(fc.integer({ min: 1, max: 5_000 }), fc.boolean()).map(([depth, arrays]) => deepJson(method, depth, arrays)),
            ),
            h2: fc.boolean(),
            token: fc.boolean(),
          }),
        async (method, { body, h2, token }) => {
          const protocol = h2 ? "connect-json-h2" : "connect-json-h1";
          assertCallersFault(await send(method, protocol, method.methodKind === "unary" ? body : envelope(0, body), token), protocol, quotesCallersSql(method));
        },
        20,
      );
    });

    it("hostile strings in every string field (NUL, lone surrogates, invalid UTF-8, megabytes)", async () => {
      await forEveryMethod(
        (method) =>
          fc.record({
            init: messageArb(method.input),
            protocol: protocolArb,
            junk: fc.option(fc.constantFrom(new Uint8Array([0xff]), new Uint8Array([0xc3, 0x28]), new Uint8Array([0xed, 0xa0, 0x80]), new Uint8Array([0xf8, 0x88, 0x80, 0x80, 0x80])), { freq: 4 }),
            token: fc.boolean(),
          }),
        async (method, { init, protocol, junk, token }) => {
          const raw = junk !== null ? invalidUtf8Body(method, protocol, junk) : undefined;
          const message = raw ?? encodeMessage(method, protocol, init);
          assertCallersFault(await send(method, protocol, frame(method, protocol, message), token), protocol, quotesCallersSql(method));
        },
        40,
      );
    });
  });
});
