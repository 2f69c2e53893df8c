import { constants, createHmac, createPublicKey, createSecretKey, type KeyObject, timingSafeEqual, verify } from "node:crypto";

/** The claims of a JWT: its decoded payload. */
export type Claims = Readonly<Record<string, unknown>>;

/** Thrown when a token is not a JWT or its signature does not verify. */
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

interface Verifier {
  (data: Buffer, signature: Buffer): boolean;
}

const HASHES: Readonly<Record<string, string>> = { "256": "sha256", "384": "sha384", "512": "sha512" };

function decodeJson(part: string, what: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(part, "base64url").toString("utf8"));
  } catch {
    throw new InvalidTokenError(`token: the ${what} is not base64url JSON`);
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) throw new InvalidTokenError(`token: the ${what} is not a JSON object`);
  return value as Record<string, unknown>;
}

/**
 * Reads a token's claims without verifying it: only for facts that can do no
 * harm when forged (how long to cache an answer the auth service gave).
 */
export function unverifiedClaims(token: string): Claims | undefined {
  const parts = token.split(".");
  if (parts.length !== 3 || parts[1] === undefined) return undefined;
  try {
    return decodeJson(parts[1], "payload");
  } catch {
    return undefined;
  }
}

/**
 * Verifies JWT signatures with node:crypto. The algorithm is taken from the
 * token's header but must belong to the configured key's family, so a token
 * signed "HS256" with a public key as the secret (algorithm confusion) and
 * `alg: none` are refused. Lifetime claims (`exp`, `nbf`) are deliberately not
 * checked: this is the fallback used while the auth service is unreachable.
 */
export class JwtVerifier {
  readonly #secret: KeyObject | undefined;
  readonly #publicKey: KeyObject | undefined;

  constructor(keys: JwtKeys) {
    this.#secret = keys.secret !== undefined ? createSecretKey(Buffer.from(keys.secret, "utf8")) : undefined;
    this.#publicKey = keys.publicKey !== undefined ? createPublicKey(keys.publicKey) : undefined;
  }

  /** Whether any key is configured (otherwise nothing can be verified locally). */
  get configured(): boolean {
    return this.#secret !== undefined || this.#publicKey !== undefined;
  }

  #verifierFor(alg: string): Verifier {
    const family = alg.slice(0, 2);
    const hash = HASHES[alg.slice(2)];
    const secret = this.#secret;
    const key = this.#publicKey;
    if (family === "HS" && hash !== undefined && secret !== undefined) {
      return (data, signature) => {
        const expected = createHmac(hash, secret).update(data).digest();
        return expected.length === signature.length && timingSafeEqual(expected, signature);
      };
    }
    if (key !== undefined) {
      const type = key.asymmetricKeyType;
      if (family === "RS" && hash !== undefined && type === "rsa") return (data, signature) => verify(hash, data, key, signature);
      if (family === "PS" && hash !== undefined && (type === "rsa" || type === "rsa-pss")) {
        return (data, signature) =>
          verify(hash, data, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_DIGEST }, signature);
      }
      if (family === "ES" && hash !== undefined && type === "ec") {
        return (data, signature) => verify(hash, data, { key, dsaEncoding: "ieee-p1363" }, signature);
      }
      if (alg === "EdDSA" && (type === "ed25519" || type === "ed448")) return (data, signature) => verify(null, data, key, signature);
    }
    throw new InvalidTokenError(`token: algorithm "${alg}" is not accepted with the configured key`);
  }

  /** Returns the claims of a token whose signature verifies; throws {@link InvalidTokenError} otherwise. */
  verify(token: string): Claims {
    const parts = token.split(".");
    if (parts.length !== 3) throw new InvalidTokenError("token: not a JWT (three dot-separated parts)");
    const [header, payload, signature] = parts as [string, string, string];
    const alg = decodeJson(header, "header").alg;
    if (typeof alg !== "string") throw new InvalidTokenError("token: the header names no algorithm");
    const check = this.#verifierFor(alg);
    let valid: boolean;
    try {
      valid = check(Buffer.from(`${header}.${payload}`, "ascii"), Buffer.from(signature, "base64url"));
    } catch {
      valid = false;
    }
    if (!valid) throw new InvalidTokenError("token: signature does not verify");
    return decodeJson(payload, "payload");
  }
}
