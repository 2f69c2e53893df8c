import type http from "node:http";
import type { DescMessage, DescMethodUnary, DescService } from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  type ConnectRouter,
  type ContextValues,
  createHandlerContext,
  createServiceImplSpec,
  type Interceptor,
} from "@connectrpc/connect";
import { createMethodSerializationLookup, invokeUnaryImplementation, type MethodSerializationLookup } from "@connectrpc/connect/protocol";
import { withBadRequest } from "./errors.js";
import { namingUnknownKey } from "./request-faults.js";
import type { Logger } from "./logger.js";
import { codeToHttpStatus, contentTypeUnaryJson, errorToJsonBytes, parseTimeout, trailerMux } from "@connectrpc/connect/protocol-connect";

/** What `invokeUnaryImplementation` takes: the method and its (bound) implementation. */
type UnarySpec = Parameters<typeof invokeUnaryImplementation>[0];

interface UnaryMethod {
  readonly spec: UnarySpec;
  readonly serialization: MethodSerializationLookup<DescMessage, DescMessage>;
}

export interface UnaryJsonOptions {
  readonly log: Logger;
  readonly interceptors: Interceptor[];
  readonly readMaxBytes: number;
  readonly contextValues: (req: http.IncomingMessage) => ContextValues;
  /** How request JSON is read: the same options connect-es is given, so both paths parse alike. */
  readonly jsonOptions?: Parameters<typeof createMethodSerializationLookup>[2];
}

/** `Content-Type` of a Connect unary JSON request (what connect-es accepts as such). */
const UNARY_JSON = /^application\/json(?:; ?charset=utf-?8)?$/i;

/**
 * The longest deadline a client may ask for, on both RPC paths: the longest
 * timer Node can set (connect-es's own default, `Number.MAX_SAFE_INTEGER`,
 * lets a longer deadline overflow the timer, which then fires at once).
 */
export const MAX_TIMEOUT_MS = 2 ** 31 - 1;

/** Why a finished call's signal fires: cheaper than the DOMException a reasonless abort() builds. */
const FINISHED = new ConnectError("the call has finished", Code.Canceled);
const CLIENT_GONE = new ConnectError("the client closed the request", Code.Canceled);

/**
 * The Connect protocol's plainest case, served without the general
 * machinery: a unary call over HTTP/1.1 as `POST` with a JSON body, no
 * compression. That is how browsers and apps call Funnel (and how the pixel-
 * rate endpoints are hit), and connect-es's protocol-neutral path costs about
 * as much CPU per call as Funnel's own work. Everything else — gRPC,
 * gRPC-Web, binary Connect, `GET`, compressed bodies, HTTP/2 — is left to
 * connect-es (`take` returns false).
 *
 * The answer is what connect-es would send: the same parsing and error
 * messages (its serialization and limits), the same interceptors around the
 * same implementation, the same status codes, error body and `trailer-`
 * headers, the same deadline (`Connect-Timeout-Ms`) on the handler's
 * signal. One deliberate difference: answers are never compressed (a proxy
 * in front can compress them).
 */
export class UnaryJsonRoutes {
  readonly #methods = new Map<string, UnaryMethod>();
  readonly #options: UnaryJsonOptions;

  constructor(options: UnaryJsonOptions) {
    this.#options = options;
  }

  /**
   * Wraps a router so the services registered on it are also served here.
   * Services registered with their own options (interceptors, protocols)
   * stay with connect-es alone, since those options change how it serves them.
   */
  recording(router: ConnectRouter): ConnectRouter {
    const recording: ConnectRouter = {
      handlers: router.handlers,
      service: (service, implementation, options) => {
        router.service(service, implementation, options);
        if (options === undefined) this.#add(service, implementation);
        return recording;
      },
      rpc: (method, implementation, options) => {
        router.rpc(method, implementation, options);
        return recording;
      },
    };
    return recording;
  }

  #add(service: DescService, implementation: Parameters<typeof createServiceImplSpec>[1]): void {
    const spec = createServiceImplSpec(service, implementation);
    for (const method of service.methods) {
      if (method.methodKind !== "unary") continue;
      this.#methods.set(`/${service.typeName}/${method.name}`, {
        spec: spec.methods[method.localName] as UnarySpec,
        serialization: createMethodSerializationLookup(method as DescMethodUnary, undefined, this.#options.jsonOptions, {
          readMaxBytes: this.#options.readMaxBytes,
          writeMaxBytes: 0xffffffff,
        }),
      });
    }
  }

  /** Serves the request and returns true when it is a plain unary JSON call of a known method. */
  take(req: http.IncomingMessage, res: http.ServerResponse, path: string): boolean {
    if (req.method !== "POST" || req.httpVersionMajor !== 1) return false;
    const method = this.#methods.get(path);
    if (method === undefined) return false;
    const { headers } = req;
    if (!UNARY_JSON.test(headers["content-type"] ?? "")) return false;
    const encoding = headers["content-encoding"];
    if (encoding !== undefined && encoding !== "identity") return false;
    this.#serve(method, req, res).catch((error: unknown) => {
      // Past the handler (writing the answer failed): nothing sensible can be sent any more.
      this.#options.log.error({ err: error, path }, "answering a unary JSON call failed");
      res.destroy();
    });
    return true;
  }

  async #serve(method: UnaryMethod, req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const { spec, serialization } = method;
    const timeout = parseTimeout(headerValue(req.headers["connect-timeout-ms"]), MAX_TIMEOUT_MS);
    const context = createHandlerContext({
      ...spec,
      service: spec.method.parent,
      requestMethod: "POST",
      protocolName: "connect",
      timeoutMs: timeout.timeoutMs,
      requestHeader: requestHeaders(req),
      url: `http://${req.headers.host ?? "localhost"}${req.url ?? "/"}`,
      responseHeader: { "content-type": contentTypeUnaryJson },
      contextValues: this.#options.contextValues(req),
    });
    const gone = (): void => context.abort(CLIENT_GONE);
    res.once("close", gone);
    let status = 200;
    let body: Uint8Array;
    try {
      if (timeout.error !== undefined) throw timeout.error;
      const bytes = await readBody(req, this.#options.readMaxBytes);
      const input = parseRequest(method, bytes);
      const output = await invokeUnaryImplementation(spec, context, input, this.#options.interceptors);
      body = serialization.getO(false).serialize(output);
    } catch (caught) {
      // A body that is not the message fails before the interceptors, which add the detail to the rest.
      const error = caught instanceof ConnectError ? withBadRequest(caught) : new ConnectError("internal error", Code.Internal, undefined, undefined, caught);
      context.abort(error);
      status = codeToHttpStatus(error.code);
      context.responseHeader.set("content-type", contentTypeUnaryJson);
      error.metadata.forEach((value, key) => context.responseHeader.set(key, value));
      body = errorToJsonBytes(error, undefined);
    } finally {
      context.abort(FINISHED);
    }
    res.off("close", gone);
    if (res.destroyed) return;
    const header = trailerMux(context.responseHeader, context.responseTrailer);
    header.set("content-length", String(body.byteLength));
    // A flat [name, value, …] list keeps repeated fields (set-cookie) apart.
    const out: string[] = [];
    for (const [key, value] of header) out.push(key, value);
    res.writeHead(status, out);
    res.end(body);
  }
}

/** The request message; an unknown JSON key is named by its path, as on connect-es's path (request-faults.ts). */
function parseRequest({ spec, serialization }: UnaryMethod, bytes: Uint8Array): ReturnType<ReturnType<UnaryMethod["serialization"]["getI"]>["parse"]> {
  try {
    return serialization.getI(false).parse(bytes);
  } catch (error) {
    throw error instanceof ConnectError ? namingUnknownKey(error, spec.method.input, bytes) : error;
  }
}

function headerValue(value: string | string[] | undefined): string | null {
  if (value === undefined) return null;
  return Array.isArray(value) ? value.join(", ") : value;
}

/** The request's headers as fetch Headers (what handlers and interceptors read). */
function requestHeaders(req: http.IncomingMessage): Headers {
  const header = new Headers();
  const raw = req.rawHeaders;
  for (let i = 0; i + 1 < raw.length; i += 2) header.append(raw[i] as string, raw[i + 1] as string);
  return header;
}

/** Reads the whole body, failing as connect-es does when it is over `readMaxBytes`. */
function readBody(req: http.IncomingMessage, readMaxBytes: number): Promise<Uint8Array> {
  const declared = Number(req.headers["content-length"] ?? NaN);
  if (declared > readMaxBytes) {
    req.resume();
    return Promise.reject(new ConnectError(`message size ${declared} is larger than configured readMaxBytes ${readMaxBytes}`, Code.ResourceExhausted));
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (chunk: Buffer) => {
      size += chunk.byteLength;
      if (size > readMaxBytes) {
        req.removeAllListeners("data");
        req.resume();
        reject(new ConnectError(`message size is larger than configured readMaxBytes ${readMaxBytes}`, Code.ResourceExhausted));
        return;
      }
      chunks.push(chunk);
    });
    req.once("end", () => resolve(chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, size)));
    req.once("error", reject);
    // A client gone before the end of its body: settled already when the body was complete.
    req.once("close", () => reject(CLIENT_GONE));
  });
}
