import { createPublicKey, createSecretKey, type KeyObject } from "node:crypto";
import { decodeJwt, decodeProtectedHeader, errors, type JWSHeaderParameters, jwtVerify } from "jose";

/** The claims of a JWT: its decoded payload. */
export type Claims = Readonly<Record<string, unknown>>;

/** Thrown when a token is not a JWT, its signature does not verify or its claims are refused. */
export class InvalidTokenError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "InvalidTokenError";
  }
}

/** Keys for local verification: a shared secret (HS*) and/or a public key (RS*, PS*, ES*, EdDSA). */
export interface JwtKeys {
  readonly secret?: string | undefined;
  /** PEM text. */
  readonly publicKey?: string | undefined;
}

/** What a locally verified token's claims must satisfy besides its signature. */
export interface JwtRules {
  /** Clock difference forgiven on `exp`, `nbf` and `iat`, in seconds. */
  readonly clockToleranceSeconds: number;
  /** Whether a token without `exp` is refused. */
  readonly requireExp: boolean;
  /** The `iss` a token must name; undefined: not checked. */
  readonly issuer: string | undefined;
  /** A value the token's `aud` must hold; undefined: not checked. */
  readonly audience: string | undefined;
}

const HMAC_ALGORITHMS = ["HS256", "HS384", "HS512"] as const;

/**
 * The JWS algorithms a public key verifies: its own family only, so a token
 * cannot choose another. Empty for keys that cannot verify JWTs here
 * (RSA under 2048 bits, curves other than P-256/P-384/P-521, Ed448).
 */
export function publicKeyAlgorithms(key: KeyObject): string[] {
  const details = key.asymmetricKeyDetails;
  switch (key.asymmetricKeyType) {
    case "rsa":
      return (details?.modulusLength ?? 0) >= 2048 ? ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"] : [];
    case "rsa-pss":
      return (details?.modulusLength ?? 0) >= 2048 ? ["PS256", "PS384", "PS512"] : [];
    case "ec":
      return { prime256v1: ["ES256"], secp384r1: ["ES384"], secp521r1: ["ES512"] }[details?.namedCurve ?? ""] ?? [];
    case "ed25519":
      return ["EdDSA", "Ed25519"];
    default:
      return [];
  }
}

/**
 * Reads a token's claims without verifying it: only for facts that can do no
 * harm when forged (how long to cache an answer the auth service gave).
 */
export function unverifiedClaims(token: string): Claims | undefined {
  try {
    return decodeJwt(token);
  } catch {
    return undefined;
  }
}

/** A NumericDate as ISO text (the number itself when it is no date). */
function when(seconds: unknown): string {
  const date = new Date(Number(seconds) * 1000);
  return Number.isNaN(date.getTime()) ? String(seconds) : date.toISOString();
}

/** The header's algorithm, for an error message: only when it looks like an algorithm name. */
function headerAlgorithm(token: string): string | undefined {
  try {
    const alg = decodeProtectedHeader(token).alg;
    return typeof alg === "string" && /^[A-Za-z0-9-]{1,16}$/.test(alg) ? alg : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Verifies JWTs with jose: the signature, with an algorithm of the configured
 * key's family only (so `alg: none` and a token signed "HS256" with the
 * public key as its secret are refused), then the lifetime (`exp`, `nbf`,
 * `iat` not in the future, each within the clock tolerance), `exp` required
 * unless the rules say otherwise, and the issuer and audience when
 * configured. Refusals name the reason and never the token.
 */
export class JwtVerifier {
  /** The key of each accepted algorithm. */
  readonly #keys = new Map<string, KeyObject>();
  readonly #rules: JwtRules;

  constructor(keys: JwtKeys, rules: JwtRules) {
    this.#rules = rules;
    if (keys.secret !== undefined) {
      const secret = createSecretKey(Buffer.from(keys.secret, "utf8"));
      for (const alg of HMAC_ALGORITHMS) this.#keys.set(alg, secret);
    }
    if (keys.publicKey !== undefined) {
      const publicKey = createPublicKey(keys.publicKey);
      for (const alg of publicKeyAlgorithms(publicKey)) this.#keys.set(alg, publicKey);
    }
  }

  /** Whether any key is configured (otherwise nothing can be verified locally). */
  get configured(): boolean {
    return this.#keys.size > 0;
  }

  /** Returns the claims of a token that verifies and passes the rules; throws {@link InvalidTokenError} otherwise. */
  async verify(token: string): Promise<Claims> {
    const { clockToleranceSeconds, requireExp, issuer, audience } = this.#rules;
    let claims: Claims;
    try {
      const verified = await jwtVerify(token, (header: JWSHeaderParameters) => this.#keyFor(header.alg), {
        algorithms: [...this.#keys.keys()],
        clockTolerance: clockToleranceSeconds,
        requiredClaims: requireExp ? ["exp"] : [],
        ...(issuer !== undefined ? { issuer } : {}),
        ...(audience !== undefined ? { audience } : {}),
      });
      claims = verified.payload;
    } catch (error) {
      throw new InvalidTokenError(this.#reason(error, token));
    }
    // jose judges `iat` only against a maximum age; a token from the future is refused here.
    if (typeof claims.iat === "number" && claims.iat > Date.now() / 1000 + clockToleranceSeconds) {
      throw new InvalidTokenError(`token: issued in the future (iat ${when(claims.iat)})`);
    }
    return claims;
  }

  #keyFor(alg: string | undefined): KeyObject {
    // jose checks the algorithm against the accepted list before asking for its key.
    const key = this.#keys.get(alg ?? "");
    if (key === undefined) throw new errors.JOSEAlgNotAllowed("no key for this algorithm");
    return key;
  }

  /** Why jose refused a token, in words that name the claim and the setting, never the token. */
  #reason(error: unknown, token: string): string {
    if (error instanceof errors.JOSEAlgNotAllowed) {
      const alg = headerAlgorithm(token);
      return alg === undefined ? "token: the header's algorithm is not accepted with the configured key" : `token: algorithm "${alg}" is not accepted with the configured key`;
    }
    if (error instanceof errors.JWSSignatureVerificationFailed) return "token: signature does not verify";
    if (error instanceof errors.JWTExpired) return `token: expired at ${when(error.payload.exp)}`;
    if (error instanceof errors.JWTClaimValidationFailed) {
      const { claim, reason, payload } = error;
      if (reason === "invalid") return `token: claim "${claim}" is not a number`;
      if (claim === "exp") return "token: has no expiry (exp); AUTH_JWT_REQUIRE_EXP=false accepts such tokens";
      if (claim === "nbf") return `token: not valid before ${when(payload.nbf)}`;
      if (claim === "iss") return `token: issuer (iss) is not "${this.#rules.issuer ?? ""}" (AUTH_JWT_ISSUER)`;
      if (claim === "aud") return `token: audience (aud) does not include "${this.#rules.audience ?? ""}" (AUTH_JWT_AUDIENCE)`;
      return "token: a claim is not valid";
    }
    if (error instanceof errors.JOSEError) return "token: not a valid JWT";
    throw error;
  }
}
