import { randomUUID } from "node:crypto";
import { createContextKey } from "@connectrpc/connect";
import type { Logger } from "./logger.js";

/** An incoming `X-Request-Id` that is kept: short, and safe in a header and a log line. */
const SANE_REQUEST_ID = /^[A-Za-z0-9._-]{1,128}$/;

/** The caller's request id if it is sane, else a new one. */
export function requestId(incoming: string | string[] | undefined): string {
  return typeof incoming === "string" && SANE_REQUEST_ID.test(incoming) ? incoming : randomUUID();
}

/**
 * One request's id, its logger and (for an RPC) its result code, which the
 * access log reports. The child logger is made on first use: most requests
 * never log but for their access line.
 */
export class RequestScope {
  /** The RPC's result code in Connect's words (`ok`, `invalid_argument`, …); unset for plain routes. */
  code: string | undefined;
  #log: Logger | undefined;

  constructor(
    readonly id: string,
    private readonly parent: Logger,
  ) {}

  /** The process logger with this request's id on every line. */
  get log(): Logger {
    return (this.#log ??= this.parent.child({ requestId: this.id }));
  }
}

/** Each request's scope, by its request object (HTTP/1.1 or HTTP/2). */
const scopes = new WeakMap<object, RequestScope>();

/** Gives `req` its scope: the server does this as a request arrives. */
export function bindRequestScope(req: object, scope: RequestScope): void {
  scopes.set(req, scope);
}

/** The scope of `req`, if the server gave it one. */
export function requestScopeOf(req: object): RequestScope | undefined {
  return scopes.get(req);
}

/**
 * `log` with the request id of `req` on every line: plain routes log through
 * this, keeping their own logger's bindings (their module). Made when a line
 * is written, which on a plain route is rare.
 */
export function requestLog(req: object, log: Logger): Logger {
  const scope = scopes.get(req);
  return scope === undefined ? log : log.child({ requestId: scope.id });
}

/** The request's scope, in an RPC's context values (`ctx.values.get(requestScopeKey)`). */
export const requestScopeKey = createContextKey<RequestScope | undefined>(undefined, { description: "the request's id and logger" });
