import { Code, ConnectError } from "@connectrpc/connect";
import ky from "ky";
import type { Config } from "../config.js";
import type { Logger } from "../logger.js";
import { counter, histogram, type Registry } from "../metrics.js";
import { TokenCache } from "./cache.js";
import { type Claims, InvalidTokenError, type JwtKeys, type JwtRules, JwtVerifier, unverifiedClaims } from "./jwt.js";

/** The user id given to callers without a token. */
export const ANONYMOUS = "anonymous";

/** Who a caller is: a user proven by a token, or anonymous. */
export type Identity =
  | {
      readonly kind: "user";
      readonly userId: string;
      /** The auth service's JSON answer, or the token's claims when verified locally. */
      readonly claims: Claims;
      /** Who vouched for the token. */
      readonly verifiedBy: "auth-service" | "local";
    }
  | { readonly kind: "anonymous"; readonly userId: typeof ANONYMOUS; readonly claims: Claims };

/**
 * A token that verified. `userId` is the one user id rule of every service:
 * the auth service answer's `AUTH_USER_ID_FIELD`, or a locally verified JWT's
 * `AUTH_JWT_USER_ID_CLAIM` (a string, or an integer written as one);
 * undefined when the token names no user (a driver's token, a pre-login
 * session).
 */
export interface VerifiedToken {
  readonly userId: string | undefined;
  /** The auth service's JSON answer, or the token's claims when verified locally. */
  readonly claims: Claims;
  readonly verifiedBy: "auth-service" | "local";
}

/** Turns a caller's token into an {@link Identity}. Shared by every service that takes user tokens. */
export interface IdentityResolver {
  /**
   * Resolves `token` (null, undefined or empty: anonymous) to the user it
   * names. Throws a ConnectError: `unauthenticated` when the token is not
   * valid or names no user, `unavailable` when it cannot be checked right now
   * (auth service down and no local key).
   */
  resolve(token: string | null | undefined, signal?: AbortSignal): Promise<Identity>;
  /**
   * Verifies `token` and gives its claims and user id, if it names one (for
   * services that also take tokens naming no user, such as Seen's drivers).
   * Throws like {@link resolve}, except that a token naming no user is valid.
   */
  verify(token: string, signal?: AbortSignal): Promise<VerifiedToken>;
}

export interface IdentityOptions {
  /** No user tokens: every token is `unauthenticated` (AUTH_ANONYMOUS_ONLY). */
  readonly anonymousOnly: boolean;
  /** Auth service endpoint: `GET` with `Authorization: Bearer <token>`; unset means local checks only. */
  readonly authUrl: string | undefined;
  readonly timeoutMs: number;
  /** Dot path of the user id in the auth service's JSON answer, e.g. `user_id` or `user.id`. */
  readonly userIdField: string;
  /** Claim (dot path) holding the user id when verified locally, e.g. `sub`. */
  readonly userIdClaim: string;
  readonly keys: JwtKeys;
  /** What a locally verified token must satisfy besides its signature: lifetime, issuer, audience. */
  readonly jwtRules: JwtRules;
  readonly cacheTtlSeconds: number;
  readonly negativeCacheSeconds: number;
  readonly maxEntries: number;
  /** After an auth service failure, tokens are verified locally for this long before it is asked again. */
  readonly recheckMs: number;
  readonly log: Logger;
  readonly metrics: Registry;
}

/**
 * The identity settings of the runtime configuration; `developmentSecret`
 * (see {@link developmentSecret}) verifies tokens when no key is configured.
 */
export function identityOptionsFromConfig(config: Config, developmentSecret?: string): Omit<IdentityOptions, "log" | "metrics"> {
  return {
    anonymousOnly: config.authAnonymousOnly,
    authUrl: config.authUrl,
    timeoutMs: config.authTimeoutMs,
    userIdField: config.authUserIdField,
    userIdClaim: config.authJwtUserIdClaim,
    keys: { secret: config.authJwtSecret ?? developmentSecret, publicKey: config.authJwtPublicKey },
    jwtRules: {
      clockToleranceSeconds: config.authJwtClockToleranceSeconds,
      requireExp: config.authJwtRequireExp,
      issuer: config.authJwtIssuer,
      audience: config.authJwtAudience,
    },
    cacheTtlSeconds: config.authCacheTtlSeconds,
    negativeCacheSeconds: config.authNegativeCacheSeconds,
    maxEntries: config.authCacheMaxEntries,
    recheckMs: config.authRecheckMs,
  };
}

type Cached = { readonly verified: VerifiedToken } | { readonly invalid: string };

/** Why the auth service gave no usable answer (the token is then checked locally). */
class AuthServiceFailure extends Error {
  constructor(readonly reason: "timeout" | "unreachable" | "status" | "bad_answer", message: string) {
    super(message);
  }
}

/** Reads a dot path (`user.id`) from a JSON object; ids may be strings or integers. */
function readId(source: Claims, path: string): string | undefined {
  let value: unknown = source;
  for (const key of path.split(".")) {
    if (value === null || typeof value !== "object") return undefined;
    value = (value as Record<string, unknown>)[key];
  }
  if (typeof value === "string" && value !== "") return value;
  if (typeof value === "number" && Number.isSafeInteger(value)) return String(value);
  return undefined;
}

const ANONYMOUS_IDENTITY: Identity = Object.freeze({ kind: "anonymous", userId: ANONYMOUS, claims: Object.freeze({}) });

/**
 * Creates the identity resolver: the auth service first (answers cached,
 * positive ones until the token's expiry or the TTL, negative ones briefly);
 * when it is down, slow or failing, the JWT is verified locally: signature,
 * lifetime and the configured issuer and audience. Tokens are never logged:
 * cache keys are their hashes and log lines carry only what went wrong.
 */
export function createIdentityResolver(options: IdentityOptions): IdentityResolver {
  const { log } = options;
  const local = new JwtVerifier(options.keys, options.jwtRules);
  const cache = new TokenCache<Cached>(options.maxEntries);
  const resolutions = counter(options.metrics, "funnel_identity_resolutions_total", "Token resolutions by source (cache, auth_service, local, anonymous, anonymous_only) and result.", [
    "source",
    "result",
  ]);
  const failures = counter(options.metrics, "funnel_identity_auth_failures_total", "Auth service calls without a usable answer, by reason.", ["reason"]);
  const seconds = histogram(options.metrics, "funnel_identity_auth_seconds", "Auth service round trips.");
  let authDownUntil = 0;
  if (options.authUrl === undefined && !local.configured && !options.anonymousOnly) {
    log.warn("neither AUTH_URL nor AUTH_JWT_SECRET / AUTH_JWT_PUBLIC_KEY is set: requests carrying a token will fail as unavailable");
  }

  const rejected = (message: string, source: string): ConnectError => {
    resolutions.inc({ source, result: "invalid" });
    return new ConnectError(message, Code.Unauthenticated);
  };

  /** Asks the auth service: the identity, or why it rejected the token; throws {@link AuthServiceFailure} when it gave no answer. */
  async function ask(token: string, url: string, signal: AbortSignal | undefined): Promise<Cached> {
    const end = seconds.startTimer();
    let response: Response;
    try {
      response = await ky.get(url, {
        headers: { authorization: `Bearer ${token}`, accept: "application/json" },
        timeout: options.timeoutMs,
        retry: 0,
        throwHttpErrors: false,
        ...(signal !== undefined ? { signal } : {}),
      });
    } catch (error) {
      if (signal?.aborted === true) throw error;
      const timedOut = (error as Error).name === "TimeoutError";
      throw new AuthServiceFailure(timedOut ? "timeout" : "unreachable", timedOut ? `no answer within ${options.timeoutMs} ms` : (error as Error).message);
    } finally {
      end();
    }
    if (response.status === 400 || response.status === 401 || response.status === 403) {
      await response.body?.cancel();
      return { invalid: `token: rejected by the auth service (HTTP ${response.status})` };
    }
    if (!response.ok) {
      await response.body?.cancel();
      throw new AuthServiceFailure("status", `HTTP ${response.status}`);
    }
    let body: unknown;
    try {
      body = await response.json();
    } catch {
      throw new AuthServiceFailure("bad_answer", "the answer is not JSON");
    }
    if (body === null || typeof body !== "object" || Array.isArray(body)) throw new AuthServiceFailure("bad_answer", "the answer is not a JSON object");
    const claims = body as Claims;
    return { verified: { userId: readId(claims, options.userIdField), claims, verifiedBy: "auth-service" } };
  }

  async function verifyLocally(token: string): Promise<Cached> {
    let claims: Claims;
    try {
      claims = await local.verify(token);
    } catch (error) {
      if (error instanceof InvalidTokenError) return { invalid: error.message };
      throw error;
    }
    return { verified: { userId: readId(claims, options.userIdClaim), claims, verifiedBy: "local" } };
  }

  /** Why a verified token is no user's, naming where the user id was looked for. */
  const noUser = (verified: VerifiedToken): ConnectError =>
    new ConnectError(
      verified.verifiedBy === "local"
        ? `token: names no user: claim "${options.userIdClaim}" (AUTH_JWT_USER_ID_CLAIM) is missing`
        : `token: names no user: the auth service's answer has no "${options.userIdField}" (AUTH_USER_ID_FIELD)`,
      Code.Unauthenticated,
    );

  async function verify(token: string, signal: AbortSignal | undefined): Promise<VerifiedToken> {
    if (options.anonymousOnly) {
      resolutions.inc({ source: "anonymous_only", result: "invalid" });
      throw new ConnectError("token: not accepted: this server takes no user tokens (AUTH_ANONYMOUS_ONLY=true)", Code.Unauthenticated);
    }
    const key = TokenCache.keyOf(token);
    const hit = cache.get(key);
    if (hit !== undefined) {
      if ("invalid" in hit) throw rejected(hit.invalid, "cache");
      resolutions.inc({ source: "cache", result: "valid" });
      return hit.verified;
    }
    const url = options.authUrl;
    if (url !== undefined && Date.now() >= authDownUntil) {
      try {
        const answer = await ask(token, url, signal);
        if ("invalid" in answer) {
          cache.set(key, answer, options.negativeCacheSeconds * 1000);
          throw rejected(answer.invalid, "auth_service");
        }
        const exp = unverifiedClaims(token)?.exp;
        const untilExpiry = typeof exp === "number" ? exp * 1000 - Date.now() : Number.POSITIVE_INFINITY;
        cache.set(key, answer, Math.min(options.cacheTtlSeconds * 1000, untilExpiry));
        resolutions.inc({ source: "auth_service", result: "valid" });
        return answer.verified;
      } catch (error) {
        if (!(error instanceof AuthServiceFailure)) throw error;
        failures.inc({ reason: error.reason });
        authDownUntil = Date.now() + options.recheckMs;
        log.warn({ reason: error.reason, detail: error.message, recheckMs: options.recheckMs }, "auth service gave no usable answer; verifying tokens locally");
      }
    }
    if (!local.configured) {
      throw new ConnectError(
        url === undefined
          ? "token: cannot be verified: no auth service or local key is configured"
          : "token: cannot be verified now: the auth service is unavailable and no local key is configured",
        Code.Unavailable,
      );
    }
    // Local answers are not cached: the auth service has the last word once it is back.
    const checked = await verifyLocally(token);
    if ("invalid" in checked) {
      cache.set(key, checked, options.negativeCacheSeconds * 1000);
      throw rejected(checked.invalid, "local");
    }
    resolutions.inc({ source: "local", result: "valid" });
    return checked.verified;
  }

  return {
    async resolve(token, signal) {
      if (token === undefined || token === null || token === "") {
        resolutions.inc({ source: "anonymous", result: "valid" });
        return ANONYMOUS_IDENTITY;
      }
      const verified = await verify(token, signal);
      if (verified.userId === undefined) throw noUser(verified);
      return { kind: "user", userId: verified.userId, claims: verified.claims, verifiedBy: verified.verifiedBy };
    },
    verify: (token, signal) => verify(token, signal),
  };
}
