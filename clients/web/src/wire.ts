import type { DescMessage, JsonObject, MessageShape } from "@bufbuild/protobuf";
import type { GenService, GenServiceMethods } from "@bufbuild/protobuf/codegenv2";
import type { Timestamp } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import { codeFromHttpStatus, codeFromString } from "@connectrpc/connect/protocol-connect";

/**
 * A generated message in its proto3 JSON form, as Connect JSON carries it:
 * 64-bit integers as numbers (or strings), timestamps as RFC 3339 text, enums
 * as their names (so numbers may arrive as strings), every field optional
 * since default values are left out.
 */
export type Json<M> = {
  [K in keyof M as K extends `$${string}` ? never : K]?: JsonField<M[K]>;
};
type JsonField<V> = V extends bigint
  ? number | string
  : V extends number
    ? number | string
    : V extends Timestamp
      ? string
      : V extends { $typeName: string }
        ? Json<V>
        : V extends readonly (infer E)[]
          ? JsonField<E>[]
          : V extends JsonObject
            ? JsonObject
            : V;

/** The methods of a generated service descriptor (`typeof IngestService`). */
export type Methods<T> = T extends GenService<infer S> ? S : never;
type Input<S extends GenServiceMethods, M extends keyof S> = Json<MessageShape<S[M]["input"] & DescMessage>>;
type Output<S extends GenServiceMethods, M extends keyof S> = Json<MessageShape<S[M]["output"] & DescMessage>>;

/** The services the SDK calls, by full name (a test checks them against `gen/`). */
export const INGEST_SERVICE = "funnel.ingest.v1.IngestService";
export const SEEN_SERVICE = "funnel.seen.v1.SeenService";

/** A failed call: the Connect error code (`Code.Unavailable` for a network failure) and the server's message. */
export class FunnelError extends Error {
  /** The Connect code: `Code.InvalidArgument`, `Code.Unavailable`, … */
  readonly code: Code;

  constructor(code: Code, message: string) {
    super(`[${Code[code]}] ${message}`);
    this.name = "FunnelError";
    this.code = code;
  }
}

/** Whether a failed call may succeed when repeated unchanged: the server or the network was unavailable. */
export const retryable = (error: unknown): boolean => !(error instanceof FunnelError) || error.code === Code.Unavailable;

/** How one call is made. */
export interface CallOptions {
  readonly headers?: Record<string, string>;
  /** Sends the browser's cookies for the API (`credentials: "include"`). */
  readonly credentials?: boolean;
  /** Lets the request outlive the page (`fetch(…, {keepalive: true})`; its body must stay under 64 KB). */
  readonly keepalive?: boolean;
  /**
   * Deadline of the call, kept by the browser alone: past it the request is
   * abandoned like a lost connection (and retried), where a deadline passed
   * to the server would come back as `deadline_exceeded`.
   */
  readonly timeoutMs: number;
}

/**
 * A unary Connect call with a JSON body: `POST {baseUrl}/{service}/{Method}`,
 * its request and answer typed by the generated service descriptor
 * (`call<Methods<typeof IngestService>, "sendBatch">`). The method name is
 * the descriptor's own (`sendBatch` → `SendBatch`), checked at compile time
 * against `gen/`.
 */
export async function call<S extends GenServiceMethods, M extends keyof S & string>(
  baseUrl: string,
  service: string,
  method: M,
  body: Input<S, M>,
  options: CallOptions,
): Promise<Output<S, M>> {
  let res: Response;
  let text: string;
  try {
    res = await fetch(`${baseUrl}/${service}/${method[0]?.toUpperCase()}${method.slice(1)}`, {
      method: "POST",
      headers: { "content-type": "application/json", "connect-protocol-version": "1", ...options.headers },
      body: JSON.stringify(body),
      keepalive: options.keepalive === true,
      credentials: options.credentials === true ? "include" : "same-origin",
      signal: AbortSignal.timeout(options.timeoutMs),
    });
    text = await res.text();
  } catch (cause) {
    // Offline, refused, reset or timed out: fetch tells these apart no further, and all may pass.
    throw new FunnelError(Code.Unavailable, `network error: ${String(cause)}`);
  }
  if (res.ok) return JSON.parse(text) as Output<S, M>;
  let code = codeFromHttpStatus(res.status);
  let message = `HTTP ${res.status}`;
  try {
    const error = JSON.parse(text) as { code?: string; message?: string };
    code = codeFromString(error.code ?? "") ?? code;
    message = error.message ?? message;
  } catch {
    // Not Connect's error body (a proxy's page): the HTTP status decides.
  }
  throw new FunnelError(code, message);
}
