import type { Interceptor } from "@connectrpc/connect";

/**
 * A bearer token: the token itself, or a function asked before every call (so a token that
 * expires can be refreshed). An empty or missing token sends no
 * `authorization` header, which the public methods accept.
 */
export type TokenSource = string | (() => string | null | undefined | Promise<string | null | undefined>);

/**
 * Sends `authorization: Bearer <token>` with every call. A call that sets its own
 * `authorization` header (call option `headers`) keeps it.
 */
export function createAuthInterceptor(token: TokenSource): Interceptor {
  return (next) => async (req) => {
    if (!req.header.has("authorization")) {
      const value = typeof token === "function" ? await token() : token;
      if (value !== null && value !== undefined && value !== "") req.header.set("authorization", `Bearer ${value}`);
    }
    return next(req);
  };
}
