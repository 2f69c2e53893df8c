import { mkdtemp, readFile, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, ConnectError } from "@connectrpc/connect";
import { decodeJwt } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { App } from "../../services/app.js";
import { parseConfig } from "../../services/core/config.js";
import { developmentSecret } from "../../services/core/identity/index.js";
import { createLogger } from "../../services/core/logger.js";
import { runCli } from "../support/cli.js";
import { callIngest, clickhouseRows, drained } from "../support/ingest.js";
import { seenClients } from "../support/seen.js";
import { startTestApp } from "../support/stores.js";

const log = createLogger("silent", false);
const VIDEO = { video_id: "v-tokens", duration_total: true };

describe("token verification chosen at start-up", () => {
  it("generates a development secret into the data folder in embedded mode, once, readable by its owner only", async () => {
    const dataDir = await mkdtemp(join(tmpdir(), "funnel-tokens-"));
    const config = parseConfig({ FUNNEL_DATA_DIR: dataDir });
    const secret = await developmentSecret(config, log);
    expect(secret).toMatch(/^[A-Za-z0-9_-]{32,}$/);
    expect((await readFile(join(dataDir, "jwt-secret"), "utf8")).trim()).toBe(secret);
    expect((await stat(join(dataDir, "jwt-secret"))).mode & 0o777).toBe(0o600);
    expect(await developmentSecret(config, log)).toBe(secret);
  });

  it("generates none when tokens are verified otherwise, or refused", async () => {
    const dataDir = await mkdtemp(join(tmpdir(), "funnel-tokens-"));
    expect(await developmentSecret(parseConfig({ FUNNEL_DATA_DIR: dataDir, AUTH_JWT_SECRET: "configured-secret-0123456789" }), log)).toBeUndefined();
    expect(await developmentSecret(parseConfig({ FUNNEL_DATA_DIR: dataDir, AUTH_URL: "http://auth.example.com/me" }), log)).toBeUndefined();
    expect(await developmentSecret(parseConfig({ FUNNEL_DATA_DIR: dataDir, AUTH_ANONYMOUS_ONLY: "true" }), log)).toBeUndefined();
    await expect(stat(join(dataDir, "jwt-secret"))).rejects.toThrow(/ENOENT/);
  });

  it("refuses to start with DATABASE_URL and no way to verify tokens, naming the settings", async () => {
    const error = await startTestApp({ roles: ["api"], env: { AUTH_JWT_SECRET: "" } }).then(
      async (app) => {
        await app.stop();
        return undefined;
      },
      (failure: unknown) => failure as Error,
    );
    expect(error?.message).toBe(
      "user tokens: DATABASE_URL is set and nothing verifies tokens: set AUTH_URL, AUTH_JWT_SECRET or AUTH_JWT_PUBLIC_KEY, or AUTH_ANONYMOUS_ONLY=true to refuse every token (only the embedded mode generates a development secret)",
    );
  });
});

describe("one user id rule", () => {
  it("takes the user id from the resolver's setting only: SEEN_IDENTITY_CLAIMS cannot map user_id", () => {
    expect(() => parseConfig({ SEEN_IDENTITY_CLAIMS: "user_id=user.id" })).toThrow(
      /SEEN_IDENTITY_CLAIMS: "user_id" is the user id every service reads: set AUTH_JWT_USER_ID_CLAIM \(locally verified JWTs\) or AUTH_USER_ID_FIELD/,
    );
    expect(parseConfig({ SEEN_IDENTITY_CLAIMS: "db_id=park_id", AUTH_JWT_USER_ID_CLAIM: "user.id" })).toMatchObject({ seenIdentityClaims: { db_id: "park_id" }, authJwtUserIdClaim: "user.id" });
  });
});

describe("anonymous-only operation (AUTH_ANONYMOUS_ONLY=true)", () => {
  let app: App;
  beforeAll(async () => {
    app = await startTestApp({ roles: ["api"], env: { AUTH_JWT_SECRET: "", AUTH_ANONYMOUS_ONLY: "true" } });
  });
  afterAll(async () => {
    await app?.stop();
  });

  it("takes requests without a token and refuses any token as unauthenticated, in Ingest and Seen alike", async () => {
    const message = "token: not accepted: this server takes no user tokens (AUTH_ANONYMOUS_ONLY=true)";
    expect((await callIngest(app, "Send", { event: "video_complete", data: VIDEO })).status).toBe(200);
    const refused = await callIngest(app, "Send", { event: "video_complete", token: "a.b.c", data: VIDEO });
    expect(refused).toMatchObject({ status: 401, body: { code: "unauthenticated", message } });
    expect((await seenClients(app).seen.markSeen({ tag: "anon", id: "n-1" })).created).toBe(true);
    const seen = await seenClients(app, { authorization: "Bearer a.b.c" }).seen.markSeen({ tag: "anon", id: "n-2" }).catch((error: unknown) => error);
    expect(seen).toBeInstanceOf(ConnectError);
    expect(seen).toMatchObject({ code: Code.Unauthenticated, rawMessage: message });
  });
});

describe("funnel tokens mint, and one user id claim for Ingest and Seen", () => {
  let app: App;
  let dataDir: string;
  const mint = (args: readonly string[], env: Record<string, string> = {}) => runCli(["tokens", "mint", ...args], { FUNNEL_DATA_DIR: dataDir, ...env });

  beforeAll(async () => {
    // The CLI finds the secret where the embedded server wrote it; this app verifies with the same one.
    dataDir = await mkdtemp(join(tmpdir(), "funnel-tokens-"));
    const secret = await developmentSecret(parseConfig({ FUNNEL_DATA_DIR: dataDir }), log);
    app = await startTestApp({ env: { AUTH_JWT_SECRET: secret ?? "" } });
  });
  afterAll(async () => {
    await app?.stop();
  });

  it("mints a user token that Ingest records as that user and Seen takes as that client", async () => {
    const minted = await mint(["--user-id", "u-mint"]);
    expect(minted).toMatchObject({ code: 0, stderr: "" });
    const token = minted.stdout.trim();
    const claims = decodeJwt(token);
    expect(claims).toMatchObject({ sub: "u-mint" });
    expect(claims.exp! - claims.iat!).toBe(3600);

    const sent = await callIngest(app, "Send", { event: "video_complete", token, data: { ...VIDEO, video_id: "v-mint" } });
    expect(sent.status).toBe(200);
    await drained(app);
    expect(await clickhouseRows(app, "video_complete", "video_id = 'v-mint'")).toMatchObject([{ user_id: "u-mint" }]);

    const seen = await seenClients(app, { authorization: `Bearer ${token}` }).seen.markSeen({ tag: "minted", id: "n-1" });
    expect(seen.identity?.kind).toEqual({ case: "client", value: expect.objectContaining({ userId: "u-mint" }) as unknown });
  });

  it("mints a driver token without a user id, which Seen takes as that driver and Ingest refuses as naming no user", async () => {
    const minted = await mint(["--driver", "park-7,drv-9", "--ttl", "10m", "--json"]);
    expect(minted.code).toBe(0);
    const answer = JSON.parse(minted.stdout) as { token: string; claims: Record<string, unknown>; expires_at: string };
    expect(answer.claims).toMatchObject({ db_id: "park-7", uuid: "drv-9" });
    expect(answer.claims.sub).toBeUndefined();
    expect(Date.parse(answer.expires_at) - (answer.claims.iat as number) * 1000).toBe(600_000);

    const seen = await seenClients(app, { authorization: `Bearer ${answer.token}` }).seen.markSeen({ tag: "minted", id: "n-2" });
    expect(seen.identity?.kind).toEqual({ case: "driver", value: expect.objectContaining({ dbId: "park-7", uuid: "drv-9" }) as unknown });
    const sent = await callIngest(app, "Send", { event: "video_complete", token: answer.token, data: VIDEO });
    expect(sent).toMatchObject({ status: 401, body: { code: "unauthenticated", message: 'token: names no user: claim "sub" (AUTH_JWT_USER_ID_CLAIM) is missing' } });
  });

  it("follows the server's AUTH_JWT_USER_ID_CLAIM, AUTH_JWT_ISSUER and AUTH_JWT_AUDIENCE", async () => {
    const rules = { AUTH_JWT_USER_ID_CLAIM: "user.id", AUTH_JWT_ISSUER: "https://auth.example", AUTH_JWT_AUDIENCE: "funnel" };
    const secret = "a-shared-secret-0123456789abcdef";
    const strict = await startTestApp({ env: { AUTH_JWT_SECRET: secret, ...rules } });
    try {
      const minted = await mint(["--user-id", "u-nested", "--secret", secret], rules);
      expect(minted).toMatchObject({ code: 0, stderr: "" });
      const token = minted.stdout.trim();
      expect(decodeJwt(token)).toMatchObject({ user: { id: "u-nested" }, iss: "https://auth.example", aud: "funnel" });
      expect(decodeJwt(token).sub).toBeUndefined();
      expect((await callIngest(strict, "Send", { event: "video_complete", token, data: { ...VIDEO, video_id: "v-nested" } })).status).toBe(200);
      await drained(strict);
      expect(await clickhouseRows(strict, "video_complete", "video_id = 'v-nested'")).toMatchObject([{ user_id: "u-nested" }]);
      // Minted without the server's rules: refused for its issuer and audience.
      const plain = (await mint(["--user-id", "u-nested", "--secret", secret])).stdout.trim();
      expect((await callIngest(strict, "Send", { event: "video_complete", token: plain, data: VIDEO })).status).toBe(401);
    } finally {
      await strict.stop();
    }
  });

  it("signs with --secret or AUTH_JWT_SECRET when given, and explains usage mistakes with exit status 2", async () => {
    const other = "another-secret-0123456789abcdef";
    const flagged = await mint(["--user-id", "u-2", "--secret", other]);
    const fromEnv = await mint(["--user-id", "u-2"], { AUTH_JWT_SECRET: other });
    for (const minted of [flagged, fromEnv]) {
      expect(minted.code).toBe(0);
      // Not the server's secret: refused.
      expect((await callIngest(app, "Send", { event: "video_complete", token: minted.stdout.trim(), data: VIDEO })).status).toBe(401);
    }
    expect(await mint([])).toMatchObject({ code: 2, stderr: "funnel: tokens mint: --user-id or --driver is required\n" });
    expect(await mint(["--user-id", "u", "--ttl", "soon"])).toMatchObject({ code: 2, stderr: 'funnel: --ttl: must be a duration such as 1h, 30m or 90s, got "soon"\n' });
    expect(await mint(["--driver", "park-7"])).toMatchObject({ code: 2, stderr: 'funnel: --driver: must be DB_ID,UUID, got "park-7"\n' });
    expect(await mint(["--user-id", "u"], { FUNNEL_DATA_DIR: "/nonexistent" })).toMatchObject({
      code: 2,
      stderr: "funnel: tokens mint: no signing secret: pass --secret, set AUTH_JWT_SECRET, or start the embedded server once so that it writes /nonexistent/jwt-secret\n",
    });
  });
});
