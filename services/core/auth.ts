import { timingSafeEqual } from "node:crypto";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";

/** Extracts the token of an `authorization: Bearer <token>` header. */
export function bearerToken(header: string | null | undefined): string | undefined {
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header ?? "");
  return match?.[1];
}

/** Compares secrets in constant time. */
export function sameSecret(given: string, expected: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

/**
 * Requires the admin token on every method of the listed services (by full
 * type name, e.g. `funnel.ops.v1.OpsService`) or on listed methods
 * (`funnel.tracker.v1.TrackerService/CreateTracker`).
 */
export function createAdminAuthInterceptor(adminToken: string, protectedNames: ReadonlySet<string>): Interceptor {
  return (next) => async (req) => {
    const service = req.service.typeName;
    if (protectedNames.has(service) || protectedNames.has(`${service}/${req.method.name}`)) {
      const token = bearerToken(req.header.get("authorization"));
      if (token === undefined) {
        throw new ConnectError("authorization: admin bearer token required", Code.Unauthenticated);
      }
      if (!sameSecret(token, adminToken)) {
        throw new ConnectError("authorization: admin token is not valid", Code.Unauthenticated);
      }
    }
    return next(req);
  };
}
