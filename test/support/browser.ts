import { existsSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import path from "node:path";
import { chromium, type Browser, type BrowserContext, type Page } from "playwright-core";

/**
 * Where the browser tests find Chromium: `CHROMIUM_PATH`, else Debian's
 * package (`.ci/run` installs it). Nothing is downloaded.
 */
export function chromiumPath(): string {
  const candidates = [process.env.CHROMIUM_PATH, "/usr/bin/chromium", "/usr/bin/chromium-browser"].filter((p): p is string => Boolean(p));
  const found = candidates.find((p) => existsSync(p));
  if (found === undefined) throw new Error(`no Chromium at ${candidates.join(", ")}: install Debian's chromium package or set CHROMIUM_PATH`);
  return found;
}

/** Starts a headless Chromium; extra flags for tests that need them (certificates, site isolation). */
export function launchChromium(args: readonly string[] = []): Promise<Browser> {
  return chromium.launch({ executablePath: chromiumPath(), headless: true, args: ["--no-sandbox", "--disable-dev-shm-usage", ...args] });
}

/** Folder the browser tests write screenshots to (kept out of git). */
export const SCREENSHOTS = path.resolve(import.meta.dirname, "../../data/screenshots");

/**
 * Runs `body` with a fresh page; when it throws, saves a full-page screenshot
 * named after `name` to {@link SCREENSHOTS} before rethrowing, so a failure in
 * CI leaves a picture of what the browser showed.
 */
export async function withPage<T>(context: Browser | BrowserContext, name: string, body: (page: Page) => Promise<T>): Promise<T> {
  const page = await context.newPage();
  try {
    return await body(page);
  } catch (error) {
    await mkdir(SCREENSHOTS, { recursive: true });
    await page.screenshot({ path: path.join(SCREENSHOTS, `${name}-failure.png`), fullPage: true }).catch(() => undefined);
    throw error;
  } finally {
    await page.close().catch(() => undefined);
  }
}
