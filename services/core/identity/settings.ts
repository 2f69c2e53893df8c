import { createPublicKey, type KeyObject } from "node:crypto";
import { boolean, defineSettings, duration, integer, secret, setting, text, url, type Kind } from "../settings.js";
import { publicKeyAlgorithms } from "./jwt.js";

/** A PEM public key that verifies at least one JWT algorithm; `\n` may stand for a line break. */
const publicKey: Kind<string> = {
  values: "PEM public key",
  read(value, context) {
    // Environment files cannot hold line breaks easily, so "\n" stands for one.
    const pem = value.replaceAll("\\n", "\n");
    let key: KeyObject;
    try {
      key = createPublicKey(pem);
    } catch {
      context.problem("not a PEM public key (-----BEGIN PUBLIC KEY----- …)");
      return pem;
    }
    if (publicKeyAlgorithms(key).length === 0) {
      context.problem("verifies no JWT algorithm: use RSA (2048 bits or more), EC P-256/P-384/P-521 or Ed25519");
    }
    return pem;
  },
};

/** How user tokens are verified: by an auth service, locally as JWTs, or both. */
export const identitySettings = defineSettings({
  owner: "services/core/identity",
  title: "User tokens",
  settings: {
    authAnonymousOnly: setting({
      variable: "AUTH_ANONYMOUS_ONLY",
      kind: boolean,
      default: "false",
      doc: "`true`: no user tokens; a request carrying one is `unauthenticated`. With `DATABASE_URL` set, the server refuses to start unless this, `AUTH_URL`, `AUTH_JWT_SECRET` or `AUTH_JWT_PUBLIC_KEY` is set; in embedded mode with none of them it generates a development secret into `$FUNNEL_DATA_DIR/jwt-secret` (see [Tokens](ingest.md#tokens-in-development)). Contradicts the three others",
    }),
    authUrl: setting({
      variable: "AUTH_URL",
      kind: url(["http:", "https:"]),
      doc: "auth service endpoint: `GET` with `Authorization: Bearer <token>`, `200` + JSON for a valid token, `400`/`401`/`403` for an invalid one. Unset: tokens are verified locally only",
    }),
    authTimeoutMs: setting({
      variable: "AUTH_TIMEOUT_SECONDS",
      kind: duration({ unit: "ms", min: "10ms", max: "60s" }),
      default: "0.5",
      doc: "longest wait for the auth service before the token is verified locally",
      deprecatedNames: [{ variable: "AUTH_TIMEOUT_MS", kind: duration({ unit: "ms", min: "10ms", max: "60s", bare: "ms" }), note: "a bare number counts milliseconds" }],
    }),
    authUserIdField: setting({
      variable: "AUTH_USER_ID_FIELD",
      kind: text,
      default: "user_id",
      doc: "dot path of the user id in the auth service's JSON answer (`user.id`)",
    }),
    authJwtUserIdClaim: setting({
      variable: "AUTH_JWT_USER_ID_CLAIM",
      kind: text,
      default: "sub",
      doc: "JWT claim (dot path) holding the user id when verified locally",
    }),
    authJwtSecret: setting({
      variable: "AUTH_JWT_SECRET",
      kind: secret,
      doc: "HS256/384/512 secret for local verification. Never logged",
    }),
    authJwtPublicKey: setting({
      variable: "AUTH_JWT_PUBLIC_KEY",
      kind: publicKey,
      doc: "public key of RS*/PS*/ES*/EdDSA tokens for local verification (`\\n` may stand for line breaks): RSA of 2048+ bits, EC P-256/P-384/P-521 or Ed25519",
    }),
    authJwtClockToleranceSeconds: setting({
      variable: "AUTH_JWT_CLOCK_TOLERANCE_SECONDS",
      kind: duration({ unit: "s", min: "0s", max: "10m" }),
      default: "30",
      doc: "clock difference forgiven when a locally verified token's `exp`, `nbf` and `iat` are checked",
    }),
    authJwtRequireExp: setting({
      variable: "AUTH_JWT_REQUIRE_EXP",
      kind: boolean,
      default: "true",
      doc: "`false` accepts locally verified tokens that carry no `exp` (they never expire)",
    }),
    authJwtIssuer: setting({
      variable: "AUTH_JWT_ISSUER",
      kind: text,
      doc: "the `iss` a locally verified token must name; unset: not checked",
    }),
    authJwtAudience: setting({
      variable: "AUTH_JWT_AUDIENCE",
      kind: text,
      doc: "a value a locally verified token's `aud` must hold; unset: not checked",
    }),
    authCacheTtlSeconds: setting({
      variable: "AUTH_CACHE_TTL_SECONDS",
      kind: duration({ unit: "s", min: "0s", max: "1d" }),
      default: "300",
      doc: "longest a valid answer is cached; never past the token's `exp`",
    }),
    authNegativeCacheSeconds: setting({
      variable: "AUTH_NEGATIVE_CACHE_SECONDS",
      kind: duration({ unit: "s", min: "0s", max: "1h" }),
      default: "10",
      doc: "how long an invalid token is remembered as invalid",
    }),
    authCacheMaxEntries: setting({
      variable: "AUTH_CACHE_MAX_ENTRIES",
      kind: integer(0, 10_000_000),
      default: "100000",
      doc: "tokens kept in the cache (by SHA-256, never the token itself); oldest evicted first",
    }),
    authRecheckMs: setting({
      variable: "AUTH_RECHECK_SECONDS",
      kind: duration({ unit: "ms", min: "0s", max: "10m" }),
      default: "5",
      doc: "after the auth service failed, tokens are verified locally for this long before it is asked again",
      deprecatedNames: [{ variable: "AUTH_RECHECK_MS", kind: duration({ unit: "ms", min: "0s", max: "10m", bare: "ms" }), note: "a bare number counts milliseconds" }],
    }),
  },
  check: (values) =>
    values.authAnonymousOnly && (values.authUrl !== undefined || values.authJwtSecret !== undefined || values.authJwtPublicKey !== undefined)
      ? ["AUTH_ANONYMOUS_ONLY: true refuses every token, yet AUTH_URL, AUTH_JWT_SECRET or AUTH_JWT_PUBLIC_KEY is set to verify them; unset one or the other"]
      : [],
});
