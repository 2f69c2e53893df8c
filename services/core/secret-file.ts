import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { dirname } from "node:path";

/**
 * The secret kept in `file`, made on first use: 24 random bytes as base64url,
 * written readable by its owner only. Returns whether it was just made, so the
 * caller can say where it went.
 */
export async function readOrCreateSecret(file: string): Promise<{ readonly secret: string; readonly created: boolean }> {
  if (existsSync(file)) return { secret: (await readFile(file, "utf8")).trim(), created: false };
  await mkdir(dirname(file), { recursive: true });
  const secret = randomBytes(24).toString("base64url");
  await writeFile(file, `${secret}\n`, { mode: 0o600 });
  return { secret, created: true };
}
