import { existsSync, readFileSync } from "node:fs";
import { resolve } from "node:path";
import { SignJWT } from "jose";
import { DEVELOPMENT_SECRET_FILE } from "../../services/core/identity/development.js";
import { parseDuration } from "../../services/core/duration.js";
import { positionals, printJson, stringFlag, UsageError, type CommandSet, type Flags } from "../command.js";

/** The shortest signing secret the server accepts (AUTH_JWT_SECRET). */
const MIN_SECRET = 16;
const DEFAULT_TTL = "1h";

/**
 * The secret to sign with: `--secret`, else `AUTH_JWT_SECRET` (what a server
 * given it verifies with), else the one the embedded server generated into
 * `$FUNNEL_DATA_DIR/jwt-secret`.
 */
function signingSecret(flags: Flags): string {
  const given = stringFlag(flags, "secret") ?? (process.env.AUTH_JWT_SECRET?.trim() || undefined);
  if (given !== undefined) {
    if (given.length < MIN_SECRET) throw new UsageError(`--secret: must be at least ${MIN_SECRET} characters, as AUTH_JWT_SECRET`);
    return given;
  }
  const file = resolve(process.env.FUNNEL_DATA_DIR?.trim() || "./data", DEVELOPMENT_SECRET_FILE);
  if (!existsSync(file)) {
    throw new UsageError(`tokens mint: no signing secret: pass --secret, set AUTH_JWT_SECRET, or start the embedded server once so that it writes ${file}`);
  }
  return readFileSync(file, "utf8").trim();
}

/**
 * Puts `value` at the dot path `path` (`user.id` → `{user: {id: value}}`): the
 * claim the server reads the user id from (`AUTH_JWT_USER_ID_CLAIM`).
 */
function setClaim(claims: Record<string, unknown>, path: string, value: string): void {
  const keys = path.split(".");
  if (keys.some((key) => key === "")) throw new UsageError(`AUTH_JWT_USER_ID_CLAIM: "${path}" is not a dot path of claim names`);
  let into = claims;
  for (const key of keys.slice(0, -1)) {
    const next = into[key];
    into = (into[key] = typeof next === "object" && next !== null ? next : {}) as Record<string, unknown>;
  }
  into[keys.at(-1)!] = value;
}

/** `funnel tokens …`: user tokens for development and tests, signed locally (no server call). */
export const tokenCommands: CommandSet = {
  help: `  tokens mint --user-id U [--driver DB_ID,UUID] [--ttl 1h] [--secret S]
                                an HS256 user token (sub = U; db_id and uuid for a driver),
                                signed with --secret, $AUTH_JWT_SECRET or the embedded
                                server's $FUNNEL_DATA_DIR/jwt-secret; --driver alone mints a
                                driver token naming no user. Follows the server's
                                $AUTH_JWT_USER_ID_CLAIM, $AUTH_JWT_ISSUER and $AUTH_JWT_AUDIENCE`,
  options: { "user-id": { type: "string" }, driver: { type: "string" }, ttl: { type: "string" }, secret: { type: "string" } },
  examples: [
    "funnel tokens mint --user-id u-42",
    "funnel tokens mint --driver park-7,drv-9 --ttl 10m",
    "funnel tokens mint --user-id u-42 --secret \"$AUTH_JWT_SECRET\" --json",
  ],
  commands: {
    async "tokens mint"({ flags, args, json, out }) {
      positionals(args, [], "tokens mint");
      const userId = stringFlag(flags, "user-id");
      const driver = stringFlag(flags, "driver");
      if (userId === undefined && driver === undefined) throw new UsageError("tokens mint: --user-id or --driver is required");
      if (userId === "") throw new UsageError("--user-id: must not be empty");
      const claims: Record<string, unknown> = {};
      if (userId !== undefined) setClaim(claims, process.env.AUTH_JWT_USER_ID_CLAIM?.trim() || "sub", userId);
      if (driver !== undefined) {
        const [dbId = "", uuid = "", extra] = driver.split(",").map((part) => part.trim());
        if (dbId === "" || uuid === "" || extra !== undefined) throw new UsageError(`--driver: must be DB_ID,UUID, got "${driver}"`);
        claims.db_id = dbId;
        claims.uuid = uuid;
      }
      const ttl = stringFlag(flags, "ttl") ?? DEFAULT_TTL;
      const ttlMs = parseDuration(ttl);
      if (ttlMs === undefined || ttlMs < 1_000) throw new UsageError(`--ttl: must be a duration such as 1h, 30m or 90s, got "${ttl}"`);
      const secret = signingSecret(flags);
      const issuedAt = Math.floor(Date.now() / 1000);
      const expiresAt = issuedAt + Math.floor(ttlMs / 1000);
      const issuer = process.env.AUTH_JWT_ISSUER?.trim();
      const audience = process.env.AUTH_JWT_AUDIENCE?.trim();
      if (issuer) claims.iss = issuer;
      if (audience) claims.aud = audience;
      const token = await new SignJWT(claims)
        .setProtectedHeader({ alg: "HS256", typ: "JWT" })
        .setIssuedAt(issuedAt)
        .setExpirationTime(expiresAt)
        .sign(new TextEncoder().encode(secret));
      if (json) return printJson(out, { token, claims: { ...claims, iat: issuedAt, exp: expiresAt }, expires_at: new Date(expiresAt * 1000).toISOString() });
      out(token);
    },
  },
};
