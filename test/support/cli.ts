import { execFile } from "node:child_process";
import { promisify } from "node:util";
import type { App } from "../../services/app.js";
import { ADMIN_TOKEN } from "./stores.js";

const bin = new URL("../../cli/bin.js", import.meta.url).pathname;

export interface CliResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * Runs the real `funnel` executable as a separate process, with no token or
 * data folder from the environment unless `env` sets them.
 */
export async function runCli(args: readonly string[], env: Record<string, string> = {}): Promise<CliResult> {
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, [bin, ...args], {
      env: { ...process.env, FUNNEL_ADMIN_TOKEN: "", FUNNEL_DATA_DIR: "/nonexistent", ...env },
    });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as CliResult;
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
  }
}

/** Runs `funnel` against `app` with the admin token. */
export const runCliAsAdmin = (app: App, args: readonly string[]): Promise<CliResult> =>
  runCli(args, { FUNNEL_URL: app.url, FUNNEL_ADMIN_TOKEN: ADMIN_TOKEN });
