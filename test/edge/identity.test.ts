import { createHmac, createPrivateKey, generateKeyPairSync, type KeyObject, sign } from "node:crypto";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { Writable } from "node:stream";
import { Code, ConnectError } from "@connectrpc/connect";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createIdentityResolver, type IdentityOptions } from "../../services/core/identity/index.js";
import { createMetricsRegistry } from "../../services/core/metrics.js";

const SECRET = "identity-test-secret-0123456789";
const part = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url");

const now = () => Math.floor(Date.now() / 1000);
/** Claims with an expiry an hour ahead unless they set their own (`exp: undefined` leaves it out). */
const lifetime = (claims: Record<string, unknown>) => ({ exp: now() + 3600, ...claims });

function hs256(claims: Record<string, unknown>, secret = SECRET, alg = "HS256"): string {
  const unsigned = `${part({ alg, typ: "JWT" })}.${part(lifetime(claims))}`;
  return `${unsigned}.${createHmac("sha256", secret).update(unsigned).digest("base64url")}`;
}

function signed(claims: Record<string, unknown>, alg: "RS256" | "ES256", key: KeyObject): string {
  const unsigned = `${part({ alg, typ: "JWT" })}.${part(lifetime(claims))}`;
  const signature = sign("sha256", Buffer.from(unsigned), alg === "ES256" ? { key, dsaEncoding: "ieee-p1363" } : key);
  return `${unsigned}.${signature.toString("base64url")}`;
}

/** A real auth service: 200 with the user for known tokens, 401 otherwise; or slow, or failing. */
class AuthServer {
  mode: "up" | "slow" | "error" = "up";
  requests = 0;
  readonly users = new Map<string, string>();
  /** Whole answers for tokens of callers that are no user (a driver's). */
  readonly answers = new Map<string, Record<string, unknown>>();
  readonly #server = http.createServer((req, res) => {
    this.requests += 1;
    const token = /^Bearer (.+)$/.exec(req.headers.authorization ?? "")?.[1] ?? "";
    const answer = () => {
      if (this.mode === "error") return res.writeHead(503).end("maintenance");
      const whole = this.answers.get(token);
      if (whole !== undefined) return res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(whole));
      const user = this.users.get(token);
      if (user === undefined) return res.writeHead(401, { "content-type": "application/json" }).end('{"error":"invalid token"}');
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ data: { uid: user }, roles: ["viewer"] }));
    };
    // Slow: far past any timeout a test gives the resolver; the answer is dropped with the connection at stop().
    if (this.mode === "slow") setTimeout(() => !res.destroyed && answer(), 5_000).unref();
    else answer();
  });
  url = "";

  async start(): Promise<void> {
    await new Promise<void>((resolve) => this.#server.listen(0, "127.0.0.1", resolve));
    this.url = `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}/v1/me`;
  }

  async stop(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise((resolve) => this.#server.close(resolve));
  }
}

describe("identity resolver", () => {
  const auth = new AuthServer();
  let logs = "";
  const log = pino({ level: "trace" }, new Writable({ write: (chunk: Buffer, _encoding, done) => ((logs += chunk.toString()), done()) }));
  const resolver = (overrides: Partial<IdentityOptions> = {}) =>
    createIdentityResolver({
      anonymousOnly: false,
      authUrl: auth.url,
      // Generous, so that a loaded machine's slow answer is not taken for a failing service.
      timeoutMs: 2_000,
      userIdField: "data.uid",
      userIdClaim: "sub",
      keys: { secret: SECRET },
      jwtRules: { clockToleranceSeconds: 30, requireExp: true, issuer: undefined, audience: undefined },
      cacheTtlSeconds: 300,
      negativeCacheSeconds: 1,
      maxEntries: 1000,
      recheckMs: 0,
      log,
      metrics: createMetricsRegistry(),
      ...overrides,
    });
  const code = async (promise: Promise<unknown>) => {
    const error = await promise.then(() => undefined, (caught: unknown) => caught);
    expect(error).toBeInstanceOf(ConnectError);
    return { code: (error as ConnectError).code, message: (error as ConnectError).rawMessage };
  };

  beforeAll(() => auth.start());
  afterAll(() => auth.stop());

  it("makes a caller without a token anonymous without asking anyone", async () => {
    const before = auth.requests;
    for (const token of [undefined, null, ""]) expect(await resolver().resolve(token)).toMatchObject({ kind: "anonymous", userId: "anonymous" });
    expect(auth.requests).toBe(before);
  });

  it("asks the auth service, takes the user id from the configured field, and caches the answer", async () => {
    auth.mode = "up";
    const token = hs256({ sub: "ignored-when-the-service-answers" });
    auth.users.set(token, "u-100");
    const identity = resolver();
    const before = auth.requests;
    expect(await identity.resolve(token)).toMatchObject({ kind: "user", userId: "u-100", verifiedBy: "auth-service", claims: { roles: ["viewer"] } });
    expect(await identity.resolve(token)).toMatchObject({ userId: "u-100" });
    expect(auth.requests).toBe(before + 1);
  });

  it("keeps a positive answer no longer than the token's expiry", async () => {
    auth.mode = "up";
    const token = hs256({ sub: "x", exp: Math.floor(Date.now() / 1000) + 1 });
    auth.users.set(token, "u-exp");
    const identity = resolver();
    const before = auth.requests;
    await identity.resolve(token);
    await identity.resolve(token);
    expect(auth.requests).toBe(before + 1);
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    await identity.resolve(token);
    expect(auth.requests).toBe(before + 2);
  });

  it("refuses a token the auth service rejects, remembering it briefly", async () => {
    auth.mode = "up";
    const token = hs256({ sub: "revoked" });
    const identity = resolver();
    const before = auth.requests;
    expect(await code(identity.resolve(token))).toEqual({ code: Code.Unauthenticated, message: "token: rejected by the auth service (HTTP 401)" });
    expect((await code(identity.resolve(token))).code).toBe(Code.Unauthenticated);
    expect(auth.requests).toBe(before + 1);
    await new Promise((resolve) => setTimeout(resolve, 1_050));
    await code(identity.resolve(token));
    expect(auth.requests).toBe(before + 2);
  });

  it("verifies locally while the auth service is down, signature and lifetime", async () => {
    const identity = resolver({ authUrl: "http://127.0.0.1:1/v1/me" });
    const exp = now() + 600;
    expect(await identity.resolve(hs256({ sub: "u-local", exp }))).toMatchObject({ kind: "user", userId: "u-local", verifiedBy: "local", claims: { exp } });
    expect(await code(identity.resolve(hs256({ sub: "u-local" }, "wrong-secret-0123456789")))).toEqual({ code: Code.Unauthenticated, message: "token: signature does not verify" });
    expect((await code(identity.resolve("not-a-jwt"))).code).toBe(Code.Unauthenticated);
    expect((await code(identity.resolve(hs256({ name: "no subject" })))).message).toMatch(/claim "sub"/);
    const none = `${part({ alg: "none" })}.${part({ sub: "x" })}.`;
    expect((await code(identity.resolve(none))).message).toMatch(/algorithm "none" is not accepted/);
  });

  describe("token lifetime and claims, verified locally", () => {
    const local = (rules: Partial<IdentityOptions["jwtRules"]> = {}) =>
      resolver({ authUrl: undefined, jwtRules: { clockToleranceSeconds: 30, requireExp: true, issuer: undefined, audience: undefined, ...rules } });
    const refusal = async (token: string, rules: Partial<IdentityOptions["jwtRules"]> = {}) => {
      const error = await code(local(rules).resolve(token));
      expect(error.code).toBe(Code.Unauthenticated);
      // The reason never repeats the token.
      for (const piece of token.split(".")) if (piece.length > 8) expect(error.message).not.toContain(piece);
      return error.message;
    };

    it("refuses a token that expired in 2001, saying when", async () => {
      const expired = hs256({ sub: "u-2001", exp: Date.UTC(2001, 8, 9, 1, 46, 40) / 1000 });
      expect(await refusal(expired)).toBe("token: expired at 2001-09-09T01:46:40.000Z");
      // So does the fallback while the auth service is down.
      expect((await code(resolver({ authUrl: "http://127.0.0.1:1/v1/me" }).resolve(expired))).code).toBe(Code.Unauthenticated);
    });

    it("refuses a token not yet valid, or issued in the future, beyond the clock tolerance", async () => {
      const later = now() + 120;
      expect(await refusal(hs256({ sub: "u-early", nbf: later }))).toBe(`token: not valid before ${new Date(later * 1000).toISOString()}`);
      expect(await refusal(hs256({ sub: "u-early", iat: later }))).toBe(`token: issued in the future (iat ${new Date(later * 1000).toISOString()})`);
      expect(await refusal(hs256({ sub: "u-late", exp: now() - 40 }))).toMatch(/^token: expired at /);
    });

    it("accepts a lifetime that is off by less than the clock tolerance", async () => {
      const identity = local();
      expect(await identity.resolve(hs256({ sub: "u-skew", exp: now() - 20 }))).toMatchObject({ userId: "u-skew" });
      expect(await identity.resolve(hs256({ sub: "u-skew", nbf: now() + 20, iat: now() + 20 }))).toMatchObject({ userId: "u-skew" });
      expect(await local({ clockToleranceSeconds: 0 }).resolve(hs256({ sub: "u-skew", nbf: now() - 1, iat: now() - 1 }))).toMatchObject({ userId: "u-skew" });
      expect(await refusal(hs256({ sub: "u-skew", nbf: now() + 20 }), { clockToleranceSeconds: 0 })).toMatch(/^token: not valid before /);
    });

    it("refuses a token without an expiry unless told otherwise, and lifetime claims that are not numbers", async () => {
      const forever = hs256({ sub: "u-forever", exp: undefined });
      expect(await refusal(forever)).toBe("token: has no expiry (exp); AUTH_JWT_REQUIRE_EXP=false accepts such tokens");
      expect(await local({ requireExp: false }).resolve(forever)).toMatchObject({ userId: "u-forever" });
      expect(await refusal(hs256({ sub: "u-text", exp: "tomorrow" }))).toBe('token: claim "exp" is not a number');
      expect(await refusal(hs256({ sub: "u-text", nbf: "now" }), { requireExp: false })).toBe('token: claim "nbf" is not a number');
    });

    it("checks issuer and audience only when configured", async () => {
      const rules = { issuer: "https://auth.example.com", audience: "funnel" };
      const good = hs256({ sub: "u-iss", iss: "https://auth.example.com", aud: ["wallet", "funnel"] });
      expect(await local(rules).resolve(good)).toMatchObject({ userId: "u-iss" });
      expect(await refusal(hs256({ sub: "u-iss", iss: "https://evil.example.com", aud: "funnel" }), rules)).toBe(
        'token: issuer (iss) is not "https://auth.example.com" (AUTH_JWT_ISSUER)',
      );
      expect(await refusal(hs256({ sub: "u-iss", aud: "funnel" }), rules)).toBe('token: issuer (iss) is not "https://auth.example.com" (AUTH_JWT_ISSUER)');
      expect(await refusal(hs256({ sub: "u-iss", iss: "https://auth.example.com", aud: "wallet" }), rules)).toBe('token: audience (aud) does not include "funnel" (AUTH_JWT_AUDIENCE)');
      // Unset: any issuer and audience, or none.
      expect(await local().resolve(hs256({ sub: "u-any", iss: "https://elsewhere.example.com", aud: "anyone" }))).toMatchObject({ userId: "u-any" });
    });
  });

  it("falls back when the auth service is slow or failing, and asks it again after the recheck period", async () => {
    const token = hs256({ sub: "u-fallback" });
    auth.users.set(token, "u-remote");
    auth.mode = "slow";
    const asked = auth.requests;
    expect(await resolver({ timeoutMs: 100 }).resolve(token)).toMatchObject({ userId: "u-fallback", verifiedBy: "local" });
    expect(auth.requests).toBe(asked + 1);

    auth.mode = "error";
    const identity = resolver({ recheckMs: 300 });
    expect(await identity.resolve(token)).toMatchObject({ userId: "u-fallback", verifiedBy: "local" });
    const before = auth.requests;
    auth.mode = "up";
    // Within the recheck period the failing service is not asked again.
    expect(await identity.resolve(token)).toMatchObject({ verifiedBy: "local" });
    expect(auth.requests).toBe(before);
    await new Promise((resolve) => setTimeout(resolve, 350));
    expect(await identity.resolve(token)).toMatchObject({ userId: "u-remote", verifiedBy: "auth-service" });
  });

  it("verifies RS256 and ES256 with a configured public key and refuses algorithm confusion", async () => {
    const rsa = generateKeyPairSync("rsa", { modulusLength: 2048 });
    const ec = generateKeyPairSync("ec", { namedCurve: "P-256" });
    const rsaPem = rsa.publicKey.export({ type: "spki", format: "pem" }).toString();
    const down = { authUrl: undefined };
    expect(await resolver({ ...down, keys: { publicKey: rsaPem } }).resolve(signed({ sub: "rs" }, "RS256", createPrivateKey(rsa.privateKey.export({ type: "pkcs8", format: "pem" }))))).toMatchObject({ userId: "rs" });
    const ecPem = ec.publicKey.export({ type: "spki", format: "pem" }).toString();
    expect(await resolver({ ...down, keys: { publicKey: ecPem } }).resolve(signed({ sub: "es" }, "ES256", ec.privateKey))).toMatchObject({ userId: "es" });
    // HS256 "signed" with the public key text as the secret must not pass.
    expect((await code(resolver({ ...down, keys: { publicKey: rsaPem } }).resolve(hs256({ sub: "forged" }, rsaPem)))).message).toMatch(/algorithm "HS256" is not accepted/);
  });

  it("refuses every token when anonymous-only, asking no one, and keeps callers without one anonymous", async () => {
    auth.mode = "up";
    const token = hs256({ sub: "u-anon" });
    auth.users.set(token, "u-anon");
    const identity = resolver({ anonymousOnly: true });
    const before = auth.requests;
    const refusal = { code: Code.Unauthenticated, message: "token: not accepted: this server takes no user tokens (AUTH_ANONYMOUS_ONLY=true)" };
    expect(await code(identity.resolve(token))).toEqual(refusal);
    expect(await code(identity.verify(token))).toEqual(refusal);
    expect(await identity.resolve(undefined)).toMatchObject({ kind: "anonymous" });
    expect(auth.requests).toBe(before);
  });

  it("reads the one user id rule, and tells a token that names no user (a driver's) from an invalid one", async () => {
    const driver = hs256({ db_id: "park-7", uuid: "drv-9" });
    // Locally: the AUTH_JWT_USER_ID_CLAIM claim.
    const local = resolver({ authUrl: undefined });
    expect(await local.verify(driver)).toMatchObject({ userId: undefined, verifiedBy: "local", claims: { db_id: "park-7", uuid: "drv-9" } });
    expect(await code(local.resolve(driver))).toEqual({ code: Code.Unauthenticated, message: 'token: names no user: claim "sub" (AUTH_JWT_USER_ID_CLAIM) is missing' });
    expect(await local.verify(hs256({ sub: 42 }))).toMatchObject({ userId: "42" });
    // From the auth service: its answer's AUTH_USER_ID_FIELD; an answer without one is still a valid token.
    auth.mode = "up";
    auth.answers.set(driver, { db_id: "park-7", uuid: "drv-9" });
    const remote = resolver();
    expect(await remote.verify(driver)).toMatchObject({ userId: undefined, verifiedBy: "auth-service", claims: { db_id: "park-7" } });
    expect(await code(remote.resolve(driver))).toEqual({ code: Code.Unauthenticated, message: 'token: names no user: the auth service\'s answer has no "data.uid" (AUTH_USER_ID_FIELD)' });
  });

  it("answers unavailable when a token cannot be checked at all", async () => {
    const error = await code(resolver({ authUrl: "http://127.0.0.1:1/v1/me", keys: {} }).resolve(hs256({ sub: "x" })));
    expect(error.code).toBe(Code.Unavailable);
  });

  it("never writes a token to the log", async () => {
    const token = hs256({ sub: "secret-holder" });
    auth.mode = "error";
    await resolver().resolve(token);
    await resolver({ authUrl: "http://127.0.0.1:1/v1/me" }).resolve(token);
    expect(logs).toContain("verifying tokens locally");
    expect(logs).not.toContain(token.split(".")[2]);
    expect(logs).not.toContain(token.split(".")[1]);
  });
});
