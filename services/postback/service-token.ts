import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { bearerToken, sameSecret } from "../core/auth.js";

/** Requires one of `tokens` as the bearer token of every call it guards. */
export function createServiceTokenInterceptor(tokens: readonly string[]): Interceptor {
  return (next) => async (req) => {
    const token = bearerToken(req.header.get("authorization"));
    if (token === undefined) throw new ConnectError("authorization: service bearer token required", Code.Unauthenticated);
    if (!tokens.some((expected) => sameSecret(token, expected))) {
      throw new ConnectError("authorization: service token is not valid", Code.Unauthenticated);
    }
    return next(req);
  };
}
