import { createHash } from "node:crypto";
import { mkdir, readFile, rename, stat, writeFile } from "node:fs/promises";
import { basename, extname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";
import { build } from "esbuild";
import { CONSOLE_BUILD_OPTIONS, CONSOLE_DIR } from "../../console/build.js";
import type { HttpRequest, HttpResponse, HttpRoute } from "./http-server.js";
import { sendJson } from "./http-server.js";
import type { Logger } from "./logger.js";

/** One file of the built console, ready to send. */
export interface ConsoleFile {
  readonly body: Buffer;
  /** The body gzip-compressed, when that is smaller. */
  readonly gzip: Buffer | undefined;
  readonly contentType: string;
  readonly etag: string;
  /** Named by its content hash: cached for good. */
  readonly immutable: boolean;
}

/** The built console by name under `/console/` (`index.html`, `main-<hash>.js`, …). */
export type ConsoleFiles = ReadonlyMap<string, ConsoleFile>;

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const INDEX = join(CONSOLE_DIR, "index.html");
/** The bundle of the last build and the stamps of the files it came from. */
export const CONSOLE_CACHE_DIR = join(ROOT, "node_modules", ".cache", "funnel-console");

const CONTENT_TYPES: Readonly<Record<string, string>> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".woff2": "font/woff2",
  ".json": "application/json",
};

/**
 * The console's policy: scripts, styles and data from this origin only, no
 * inline script or style element, no framing, no plugins.
 */
export const CONSOLE_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "font-src 'self'",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join("; ");

const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  "content-security-policy": CONSOLE_CSP,
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "x-frame-options": "DENY",
  "cross-origin-opener-policy": "same-origin",
};

function consoleFile(name: string, body: Buffer, immutable: boolean): ConsoleFile {
  const gzip = gzipSync(body, { level: 9 });
  return {
    body,
    gzip: gzip.length < body.length ? gzip : undefined,
    contentType: CONTENT_TYPES[extname(name)] ?? "application/octet-stream",
    etag: `"${createHash("sha256").update(body).digest("base64url").slice(0, 27)}"`,
    immutable,
  };
}

/** Size and modification time of a file, or "" when it is gone. */
async function stampOf(file: string): Promise<string> {
  try {
    const stats = await stat(join(ROOT, file));
    return `${stats.size}:${stats.mtimeMs}`;
  } catch {
    return "";
  }
}

interface Manifest {
  /** Input files (from the checkout's root) and their stamps. */
  readonly inputs: Record<string, string>;
  /** Names of the built files, `index.html` first. */
  readonly files: string[];
}

/** The cached build, when every file it was built from is unchanged. */
async function readCache(): Promise<Map<string, Buffer> | undefined> {
  try {
    const manifest = JSON.parse(await readFile(join(CONSOLE_CACHE_DIR, "manifest.json"), "utf8")) as Manifest;
    for (const [file, stamp] of Object.entries(manifest.inputs)) {
      if ((await stampOf(file)) !== stamp) return undefined;
    }
    const built = new Map<string, Buffer>();
    for (const name of manifest.files) built.set(name, await readFile(join(CONSOLE_CACHE_DIR, name)));
    return built;
  } catch {
    return undefined;
  }
}

/** Writes the build to the cache, best effort: a read-only install builds at every start instead. */
async function writeCache(built: ReadonlyMap<string, Buffer>, inputs: readonly string[], log: Logger): Promise<void> {
  try {
    await mkdir(CONSOLE_CACHE_DIR, { recursive: true });
    for (const [name, body] of built) await writeFile(join(CONSOLE_CACHE_DIR, name), body);
    const manifest: Manifest = {
      inputs: Object.fromEntries(await Promise.all(inputs.map(async (file) => [file, await stampOf(file)] as const))),
      files: [...built.keys()],
    };
    // Renamed into place last, so a concurrent start never reads a manifest naming missing files.
    const temporary = join(CONSOLE_CACHE_DIR, `manifest.${process.pid}.${Date.now()}.json`);
    await writeFile(temporary, JSON.stringify(manifest));
    await rename(temporary, join(CONSOLE_CACHE_DIR, "manifest.json"));
  } catch (error) {
    log.debug({ err: error, dir: CONSOLE_CACHE_DIR }, "console build not cached");
  }
}

/**
 * Bundles the console with esbuild (console/build.ts's options, files named
 * by content hash) and writes `index.html` pointing at them.
 */
async function buildFiles(): Promise<{ built: Map<string, Buffer>; inputs: string[] }> {
  const outdir = join(CONSOLE_CACHE_DIR, "out");
  const result = await build({ ...CONSOLE_BUILD_OPTIONS, absWorkingDir: ROOT, entryNames: "[name]-[hash]", assetNames: "[name]-[hash]", outdir, write: false, metafile: true });
  const built = new Map<string, Buffer>();
  let html = await readFile(INDEX, "utf8");
  for (const file of result.outputFiles) {
    const name = relative(outdir, file.path);
    built.set(name, Buffer.from(file.contents));
    // `main-<hash>.js` replaces the `./main.js` that index.html names, and so on.
    const plain = `./${name.replace(/-[A-Z0-9]{8}(\.[a-z0-9]+)$/, "$1")}`;
    if (plain !== `./${name}` && html.includes(`"${plain}"`)) html = html.replaceAll(`"${plain}"`, `"./${name}"`);
  }
  if (!/src="\.\/main-[A-Z0-9]{8}\.js"/.test(html)) throw new Error(`${INDEX} must load "./main.js", the bundle of console/src/main.tsx`);
  const inputs = [...Object.keys(result.metafile.inputs), relative(ROOT, INDEX)];
  return { built: new Map([["index.html", Buffer.from(html)], ...built]), inputs };
}

/**
 * The console's files: from the cache in node_modules/.cache/funnel-console
 * when no file they came from changed, else built now (about a second) and
 * cached for the next start.
 */
export async function loadConsole(log: Logger): Promise<ConsoleFiles> {
  let built = await readCache();
  if (built === undefined) {
    const started = performance.now();
    const fresh = await buildFiles();
    built = fresh.built;
    log.info({ files: built.size, ms: Math.round(performance.now() - started) }, "console built");
    await writeCache(built, fresh.inputs, log);
  }
  return new Map([...built].map(([name, body]) => [name, consoleFile(name, body, name !== "index.html")]));
}

function send(req: HttpRequest, res: HttpResponse, file: ConsoleFile): void {
  const headers: Record<string, string> = {
    ...SECURITY_HEADERS,
    "content-type": file.contentType,
    etag: file.etag,
    vary: "accept-encoding",
    // The page is revalidated every time (it names the current bundle);
    // hashed files never change under their name.
    "cache-control": file.immutable ? "public, max-age=31536000, immutable" : "no-cache",
  };
  if (req.headers["if-none-match"]?.split(",").some((tag) => tag.trim().replace(/^W\//, "") === file.etag) === true) {
    res.writeHead(304, headers);
    res.end();
    return;
  }
  const gzip = file.gzip !== undefined && /\bgzip\b/.test(req.headers["accept-encoding"] ?? "");
  const body = gzip ? (file.gzip ?? file.body) : file.body;
  res.writeHead(200, { ...headers, ...(gzip ? { "content-encoding": "gzip" } : {}), "content-length": String(body.length) });
  res.end(req.method === "HEAD" ? undefined : body);
}

function refuseMethod(req: HttpRequest, res: HttpResponse): boolean {
  if (req.method === "GET" || req.method === "HEAD") return false;
  sendJson(res, 405, { error: `${String(req.method).slice(0, 20)} is not allowed here; use GET` }, { allow: "GET, HEAD" });
  return true;
}

function redirect(res: HttpResponse, location: string): void {
  // 302, not 301: a browser would keep a permanent redirect of `/` for good,
  // and the root may serve something else one day.
  res.writeHead(302, { location, "cache-control": "no-cache", "content-length": "0" });
  res.end();
}

/**
 * Routes that serve the console: `GET /` and `GET /console` redirect (302) to
 * `/console/`, which serves index.html; `/console/<name>` serves the built
 * files. The build starts on the first request and is kept for the process's
 * life; while it fails every request answers 503 and the next one tries again.
 */
export function consoleRoutes(log: Logger, load: () => Promise<ConsoleFiles> = () => loadConsole(log)): { exact: Map<string, HttpRoute>; prefix: Map<string, HttpRoute> } {
  let files: Promise<ConsoleFiles> | undefined;
  const current = (): Promise<ConsoleFiles> => {
    files ??= load().catch((error: unknown) => {
      files = undefined;
      throw error;
    });
    return files;
  };
  const serve: HttpRoute = async (req, res) => {
    if (refuseMethod(req, res)) return;
    const path = (req.url ?? "/").split("?", 1)[0] ?? "/";
    // Only names the build made are served: anything else, `..` and
    // encoded separators included, matches no entry.
    const name = path === "/console/" ? "index.html" : path.slice("/console/".length);
    let built: ConsoleFiles;
    try {
      built = await current();
    } catch (error) {
      log.error({ err: error }, "console build failed");
      sendJson(res, 503, { error: "the console could not be built; see the server log" });
      return;
    }
    const file = name.includes("/") || name !== basename(name) ? undefined : built.get(name);
    if (file === undefined) sendJson(res, 404, { error: `no route for ${path.slice(0, 200)}` });
    else send(req, res, file);
  };
  const toConsole: HttpRoute = (req, res) => {
    if (refuseMethod(req, res)) return;
    redirect(res, "/console/");
  };
  return {
    exact: new Map([
      ["/", toConsole],
      ["/console", toConsole],
    ]),
    prefix: new Map([["/console/", serve]]),
  };
}
