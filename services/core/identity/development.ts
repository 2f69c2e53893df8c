import { join } from "node:path";
import type { Config } from "../config.js";
import type { Logger } from "../logger.js";
import { readOrCreateSecret } from "../secret-file.js";

/** The file in `FUNNEL_DATA_DIR` holding the embedded mode's development signing secret; `funnel tokens mint` reads it. */
export const DEVELOPMENT_SECRET_FILE = "jwt-secret";

/** Whether a setting says how user tokens are verified, or that none is accepted. */
export function tokenVerificationConfigured(config: Config): boolean {
  return config.authAnonymousOnly || config.authUrl !== undefined || config.authJwtSecret !== undefined || config.authJwtPublicKey !== undefined;
}

/**
 * Decides at start-up how user tokens are verified when nothing says so.
 * With `AUTH_URL`, `AUTH_JWT_SECRET`, `AUTH_JWT_PUBLIC_KEY` or
 * `AUTH_ANONYMOUS_ONLY=true` set: as configured (undefined). Otherwise, in
 * embedded mode, HS256 with a secret generated once into
 * `$FUNNEL_DATA_DIR/jwt-secret`, so tokens from `funnel tokens mint` work with
 * the defaults; with `DATABASE_URL` set (production) it refuses to start, as
 * every token would otherwise fail as unavailable and be retried forever.
 */
export async function developmentSecret(config: Config, log: Logger): Promise<string | undefined> {
  if (tokenVerificationConfigured(config)) return undefined;
  if (config.databaseUrl !== undefined) {
    throw new Error(
      "user tokens: DATABASE_URL is set and nothing verifies tokens: set AUTH_URL, AUTH_JWT_SECRET or AUTH_JWT_PUBLIC_KEY, or AUTH_ANONYMOUS_ONLY=true to refuse every token (only the embedded mode generates a development secret)",
    );
  }
  const file = join(config.dataDir, DEVELOPMENT_SECRET_FILE);
  const { secret, created } = await readOrCreateSecret(file);
  if (created) log.info({ file }, "generated a development secret for user tokens; funnel tokens mint signs with it");
  return secret;
}
