#!/usr/bin/env node
// Starts the CLI from one esbuild bundle kept in node_modules/.cache/funnel-cli. Loading tsx and
// compiling the CLI's TypeScript and generated code at every start took about 0.4 s of each call;
// the bundle starts in about 0.15 s. The bundle remembers the size and modification time of every
// file it was built from and is rebuilt (in well under a second) when one of them changes, so an
// edited source or an upgraded package never runs stale. Where the cache cannot be written or
// esbuild is missing, the CLI runs through tsx's loader as before.
import { mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";
import { fileURLToPath, pathToFileURL, URL } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const cache = join(root, "node_modules", ".cache", "funnel-cli");
const bundle = join(cache, "funnel.mjs");
// One line per input file: its path, a tab, and its stamp.
const inputs = join(cache, "inputs.tsv");

/**
 * Size and modification time of a file, or "" when it is gone.
 * @param {string} file path from the checkout's root
 */
function stamp(file) {
  try {
    const stats = statSync(join(root, file));
    return `${stats.size}:${stats.mtimeMs}`;
  } catch {
    return "";
  }
}

/** Whether the bundle was built from the files as they are now. */
function bundleIsCurrent() {
  try {
    const lines = readFileSync(inputs, "utf8").split("\n");
    return lines.length > 1 && lines.every((line) => stamp(line.slice(0, line.indexOf("\t"))) === line.slice(line.indexOf("\t") + 1));
  } catch {
    return false;
  }
}

/** Builds the bundle; concurrent builds each write their own file and rename it into place. */
async function buildBundle() {
  const { build } = await import("esbuild");
  const suffix = `${process.pid}-${Date.now()}`;
  const result = await build({
    entryPoints: [join(root, "cli", "run.ts")],
    absWorkingDir: root,
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node22",
    outfile: `${bundle}.${suffix}`,
    metafile: true,
    logLevel: "silent",
    // Bundled CommonJS packages call require(); ESM output has none of its own.
    banner: { js: "import { createRequire as funnelCreateRequire } from 'node:module'; const require = funnelCreateRequire(import.meta.url);" },
  });
  const lines = Object.keys(result.metafile.inputs).map((file) => `${file}\t${stamp(file)}`);
  writeFileSync(`${inputs}.${suffix}`, lines.join("\n"));
  renameSync(`${bundle}.${suffix}`, bundle);
  renameSync(`${inputs}.${suffix}`, inputs);
}

let ready = bundleIsCurrent();
if (!ready) {
  try {
    mkdirSync(cache, { recursive: true });
    await buildBundle();
    ready = true;
  } catch {
    ready = false;
  }
}
if (ready) {
  await import(pathToFileURL(bundle).href);
} else {
  const { register } = await import("tsx/esm/api");
  register();
  await import("./run.ts");
}
