import { timingSafeEqual } from "node:crypto";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";

/** Extracts the token of an `authorization: Bearer <token>` header. */
export function bearerToken(header: string | null | undefined): string | undefined {
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header ?? "");
  return match?.[1];
}

/**
 * The token of an optional `authorization` header: undefined when the header
 * is absent; `unauthenticated` when it is present but not exactly `Bearer`,
 * one space and one token of visible ASCII characters (`Bearer a b`, `Bearer`
 * alone, `Basic …`, an empty value), so a caller whose credentials are broken
 * is told so instead of being taken for an anonymous one.
 */
export function optionalBearerToken(header: string | null | undefined): string | undefined {
  if (header === undefined || header === null) return undefined;
  const token = /^Bearer ([\x21-\x7e]+)$/i.exec(header)?.[1];
  if (token === undefined) throw new ConnectError('authorization: must be "Bearer <token>" (one space, one token), or absent', Code.Unauthenticated);
  return token;
}

/** Compares secrets in constant time. */
function sameSecret(given: string, expected: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

/**
 * Requires one of `tokens` as the request's bearer token; `kind` names the
 * token in the error ("admin" or "service").
 */
export function requireBearerToken(header: Headers, tokens: readonly string[], kind: "admin" | "service"): void {
  const token = bearerToken(header.get("authorization"));
  if (token === undefined) throw new ConnectError(`authorization: ${kind} bearer token required`, Code.Unauthenticated);
  if (!tokens.some((expected) => sameSecret(token, expected))) throw new ConnectError(`authorization: ${kind} token is not valid`, Code.Unauthenticated);
}

/**
 * Requires the admin token on every method of the listed services (by full
 * type name, e.g. `funnel.ops.v1.OpsService`) or on listed methods
 * (`funnel.tracker.v1.TrackerService/CreateTracker`).
 */
export function createAdminAuthInterceptor(adminToken: string, protectedNames: ReadonlySet<string>): Interceptor {
  return (next) => async (req) => {
    const service = req.service.typeName;
    if (protectedNames.has(service) || protectedNames.has(`${service}/${req.method.name}`)) requireBearerToken(req.header, [adminToken], "admin");
    return next(req);
  };
}
