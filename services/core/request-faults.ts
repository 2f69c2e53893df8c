import type { DescMessage } from "@bufbuild/protobuf";
import { Code, ConnectError, createContextKey, createContextValues, type Interceptor } from "@connectrpc/connect";
import { createAsyncIterable, encodeEnvelope, type UniversalHandler, type UniversalServerRequest, type UniversalServerResponse } from "@connectrpc/connect/protocol";
import { codeToHttpStatus, contentTypeUnaryJson, errorFromJsonBytes, errorToJsonBytes } from "@connectrpc/connect/protocol-connect";
import { findTrailerError, setTrailerStatus } from "@connectrpc/connect/protocol-grpc";
import { trailerFlag, trailerParse, trailerSerialize } from "@connectrpc/connect/protocol-grpc-web";
import { withBadRequest } from "./errors.js";
import { entry } from "./request-check.js";

/*
 * Request bytes that do not parse are the caller's fault, but connect-es
 * answers some of them `internal` (a server fault, HTTP 500): a binary
 * message that does not parse (its serialization wraps every protobuf error
 * so), a frame flagged compressed without an encoding, a body its
 * decompressor cannot read. It offers no hook between reading a request and
 * answering it: handler options cannot replace its serialization, and for a
 * unary call the request is parsed before any interceptor runs. So Funnel
 * corrects the answer where it can tell such failures apart:
 *
 * - a unary call that fails `internal` before its interceptors ran failed
 *   while its request was read (connect-es does nothing else before them);
 *   {@link answerRequestFaults} rewrites that answer to `invalid_argument`, in
 *   the protocol's own encoding (and over Connect also `unimplemented`, an
 *   unknown compression, which Connect would send as HTTP 501);
 * - a streaming call reads its requests while the interceptors run: there,
 *   {@link createRequestFaultInterceptor} turns an `internal` failure of the
 *   request stream into `invalid_argument`.
 *
 * Failures after the interceptors started stay as they are: those are the
 * server's.
 */

/**
 * How deep a request may nest messages (protobuf-es counts every message,
 * so a Struct costs two levels per level of JSON). Parsing is recursive: the
 * limit keeps a hostile request from exhausting the stack, and leaves room for
 * Struct fields well past MAX_STRUCT_DEPTH, so that those are refused by the
 * request check (`findViolation`), which names the field.
 */
export const MAX_MESSAGE_NESTING = 512;

/** JSON request bodies must be UTF-8: invalid bytes are refused, never replaced with U+FFFD. */
const utf8 = new TextDecoder("utf-8", { fatal: true });

/**
 * How both RPC paths (connect-es and Funnel's unary JSON path) parse
 * requests. `textDecoder` is a documented option of connect-es's JSON
 * serialization, passed through its handler options. Unknown JSON keys are
 * refused (connect-es ignores them unless told): a misspelled `event_id`
 * would otherwise be dropped without a word, and de-duplication with it.
 */
export const requestParsing = {
  binaryOptions: { recursionLimit: MAX_MESSAGE_NESTING },
  jsonOptions: {
    ignoreUnknownFields: false,
    recursionLimit: MAX_MESSAGE_NESTING,
    textDecoder: {
      decode(input?: Uint8Array): string {
        try {
          return utf8.decode(input);
        } catch {
          throw new ConnectError("request body: not valid UTF-8", Code.InvalidArgument);
        }
      },
    },
  },
};

/** What protobuf-es says of a JSON key the message does not have. */
const UNKNOWN_KEY = /^cannot decode message ([\w.]+) from JSON: key "(.*)" is unknown$/s;

/** Messages whose JSON is not an object of their fields: their keys are not field names. */
const OWN_JSON = new Set([
  "google.protobuf.Any",
  "google.protobuf.Struct",
  "google.protobuf.Value",
  "google.protobuf.ListValue",
  "google.protobuf.Timestamp",
  "google.protobuf.Duration",
  "google.protobuf.FieldMask",
]);

/**
 * The path of the first key of `json` that `schema` has no field for
 * (`events[1].sesion_id`, proto names on the way), walking message fields
 * and lists of messages (Funnel's requests have no maps of messages);
 * undefined when there is none.
 */
export function findUnknownKey(schema: DescMessage, json: unknown, path = "", depth = 0): string | undefined {
  if (json === null || typeof json !== "object" || Array.isArray(json) || OWN_JSON.has(schema.typeName) || depth > MAX_MESSAGE_NESTING) return undefined;
  if (schema.typeName.startsWith("google.protobuf.") && schema.typeName.endsWith("Value")) return undefined;
  for (const [key, value] of Object.entries(json as Record<string, unknown>)) {
    const field = schema.fields.find((candidate) => candidate.name === key || candidate.jsonName === key);
    if (field === undefined) return entry(path, key);
    const at = path === "" ? field.name : `${path}.${field.name}`;
    let found: string | undefined;
    if (field.fieldKind === "message") found = findUnknownKey(field.message, value, at, depth + 1);
    else if (field.fieldKind === "list" && field.listKind === "message" && Array.isArray(value)) {
      for (let i = 0; i < value.length && found === undefined; i += 1) found = findUnknownKey(field.message, value[i], `${at}[${i}]`, depth + 1);
    }
    if (found !== undefined) return found;
  }
  return undefined;
}

/**
 * `error` as `<path>: unknown field` when it is protobuf-es refusing an
 * unknown JSON key of a request of `schema`, else `error` itself. The path is
 * found in `body` (the request's JSON); without it, or when it does not
 * show, the key alone is named.
 */
export function namingUnknownKey(error: ConnectError, schema: DescMessage, body: Uint8Array | undefined): ConnectError {
  const match = error.code === Code.InvalidArgument ? UNKNOWN_KEY.exec(error.rawMessage) : null;
  if (match === null) return error;
  let path: string | undefined;
  if (body !== undefined) {
    try {
      path = findUnknownKey(schema, JSON.parse(Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString("utf8")));
    } catch {
      path = undefined;
    }
  }
  return new ConnectError(`${path ?? entry("", match[2] as string)}: unknown field`, Code.InvalidArgument);
}

/** Set when a call's interceptors run: what tells a request fault from a server fault. */
const callStartedKey = createContextKey(false, { description: "the RPC's interceptors ran" });

/**
 * The answer to a request that could not be read: invalid_argument, with the
 * google.rpc.BadRequest detail every invalid_argument carries (connect-es's
 * own invalid_argument for a JSON body that is not the message has none).
 */
function requestFault(error: ConnectError): ConnectError {
  const message = error.code === Code.InvalidArgument ? error.rawMessage : `malformed request: ${error.rawMessage}`;
  return withBadRequest(new ConnectError(message, Code.InvalidArgument));
}

/** Whether a call that failed before its interceptors ran is answered anew: the request could not be read. */
function isRequestFault(error: ConnectError): boolean {
  return error.code === Code.Internal || error.code === Code.InvalidArgument;
}

async function* readingFaults<T>(messages: AsyncIterable<T>): AsyncIterable<T> {
  try {
    yield* messages;
  } catch (error) {
    throw error instanceof ConnectError && error.code === Code.Internal ? requestFault(error) : error;
  }
}

/**
 * Marks each call whose interceptors run (see {@link answerRequestFaults}),
 * and turns an `internal` failure to read a request stream into
 * `invalid_argument`. Goes first among the interceptors.
 */
export function createRequestFaultInterceptor(): Interceptor {
  return (next) => (req) => {
    req.contextValues.set(callStartedKey, true);
    return req.stream ? next({ ...req, message: readingFaults(req.message) }) : next(req);
  };
}

/** Request content types whose messages are JSON: Connect unary and streaming, gRPC and gRPC-Web. */
const JSON_TYPE = /^application\/(?:json|connect\+json|grpc\+json|grpc-web\+json)(?:;|$)/i;

const isByteStream = (body: unknown): body is AsyncIterable<Uint8Array> =>
  typeof body === "object" && body !== null && Symbol.asyncIterator in body;

/** Passes `body` on, keeping its chunks in `kept`. */
async function* keeping(body: AsyncIterable<Uint8Array>, kept: Uint8Array[]): AsyncIterable<Uint8Array> {
  for await (const chunk of body) {
    kept.push(chunk);
    yield chunk;
  }
}

/** The JSON of the request's message: the whole body, or an enveloped protocol's first frame. */
function firstMessage(chunks: readonly Uint8Array[], type: string): Uint8Array {
  const body = Buffer.concat(chunks);
  if (/^application\/json/i.test(type)) return body;
  return body.byteLength >= 5 ? body.subarray(5, 5 + body.readUInt32BE(1)) : body;
}

async function readAll(body: AsyncIterable<Uint8Array> | undefined): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  if (body !== undefined) for await (const chunk of body) chunks.push(chunk);
  return chunks.length === 1 ? (chunks[0] as Uint8Array) : new Uint8Array(Buffer.concat(chunks));
}

/** What a fault's error becomes: an unknown JSON key named by its path (see {@link namingUnknownKey}). */
type Explain = (error: ConnectError) => ConnectError;

/** gRPC: the status is in the trailers, set by the time the handler resolves (nothing else was sent). */
function rewriteGrpc(res: UniversalServerResponse, explain: Explain): UniversalServerResponse {
  const error = res.trailer !== undefined ? findTrailerError(res.trailer) : undefined;
  if (error === undefined || !isRequestFault(error)) return res;
  return { ...res, trailer: setTrailerStatus(new Headers(), requestFault(explain(error))) };
}

/** gRPC-Web: the body is the one trailer frame. */
async function rewriteGrpcWeb(res: UniversalServerResponse, explain: Explain): Promise<UniversalServerResponse> {
  const body = await readAll(res.body);
  const kept = { ...res, body: createAsyncIterable([body]) };
  // A compressed trailer frame is left alone: an error message this short is never compressed.
  if (body.byteLength < 5 || body[0] !== trailerFlag) return kept;
  const error = findTrailerError(trailerParse(body.subarray(5)));
  if (error === undefined || !isRequestFault(error)) return kept;
  const trailer = setTrailerStatus(new Headers(), requestFault(explain(error)));
  return { ...res, body: createAsyncIterable([encodeEnvelope(trailerFlag, trailerSerialize(trailer))]) };
}

/**
 * Connect unary: the error is the JSON body, its code also the HTTP status.
 * Besides `internal`, `unimplemented` before the call is the caller's too (a
 * compression the server does not know), and Connect would send it as a 501.
 */
async function rewriteConnectUnary(res: UniversalServerResponse, explain: Explain): Promise<UniversalServerResponse> {
  // Anything else is no Connect error body (a 505 for a bidi call over HTTP/1.1 has none).
  if (res.header?.get("content-type") !== contentTypeUnaryJson || res.header.has("content-encoding")) return res;
  const body = await readAll(res.body);
  const kept = { ...res, body: createAsyncIterable([body]) };
  let error: ConnectError;
  try {
    error = errorFromJsonBytes(body, undefined, new ConnectError("", Code.Unknown));
  } catch {
    return kept;
  }
  if (!isRequestFault(error) && error.code !== Code.Unimplemented) return kept;
  const fault = requestFault(explain(error));
  const answer = errorToJsonBytes(fault, undefined);
  const header = new Headers(res.header);
  header.set("content-length", String(answer.byteLength));
  return { ...res, status: codeToHttpStatus(fault.code), header, body: createAsyncIterable([answer]) };
}

/**
 * Wraps a connect-es handler so that a call failing `internal` before its
 * interceptors ran answers `invalid_argument` instead (see
 * {@link createRequestFaultInterceptor}, which must be among the handler's
 * interceptors).
 */
export function answerRequestFaults(handler: UniversalHandler): UniversalHandler {
  // One request message: its bytes are kept to name an unknown key by its path.
  const single = handler.method.methodKind === "unary" || handler.method.methodKind === "server_streaming";
  const guarded = async (req: UniversalServerRequest): Promise<UniversalServerResponse> => {
    const values = req.contextValues ?? createContextValues();
    const type = req.header.get("content-type") ?? "";
    const chunks: Uint8Array[] | undefined = single && JSON_TYPE.test(type) && isByteStream(req.body) ? [] : undefined;
    const body = chunks !== undefined ? keeping(req.body as AsyncIterable<Uint8Array>, chunks) : req.body;
    const res = await handler({ ...req, body, contextValues: values });
    if (values.get(callStartedKey)) return res;
    const explain: Explain = (error) => namingUnknownKey(error, handler.method.input, chunks !== undefined ? firstMessage(chunks, type) : undefined);
    const answered = res.header?.get("content-type") ?? "";
    if (answered.startsWith("application/grpc-web")) return rewriteGrpcWeb(res, explain);
    if (answered.startsWith("application/grpc")) return rewriteGrpc(res, explain);
    if (res.status >= 500 || res.status === 400) return rewriteConnectUnary(res, explain);
    return res;
  };
  return Object.assign(guarded, {
    service: handler.service,
    method: handler.method,
    requestPath: handler.requestPath,
    protocolNames: handler.protocolNames,
    supportedContentType: handler.supportedContentType,
    allowedMethods: handler.allowedMethods,
  });
}
