import path from "node:path";
import { build, type BuildOptions, type BuildResult } from "esbuild";

/** The console's folder (holds `index.html` and `src/`). */
export const CONSOLE_DIR = import.meta.dirname;

/**
 * How the console is bundled: one ES module and one style sheet from
 * `src/main.tsx`, minified for the browsers of the last few years. Every
 * caller (the server, the size test) builds with these options, so what is
 * measured is what is served.
 */
export const CONSOLE_BUILD_OPTIONS: Readonly<BuildOptions> = Object.freeze({
  entryPoints: { main: path.join(CONSOLE_DIR, "src/main.tsx") },
  bundle: true,
  format: "esm",
  platform: "browser",
  target: "es2022",
  minify: true,
  sourcemap: false,
  jsx: "automatic",
  jsxImportSource: "preact",
  legalComments: "none",
  logLevel: "silent",
  define: { "process.env.NODE_ENV": '"production"' },
});

/**
 * Bundles the console into `outdir` (`main.js`, `main.css`) and copies
 * nothing else: `index.html` is served from {@link CONSOLE_DIR} as it is.
 * With `write: false` the files are returned in `outputFiles` instead.
 */
export function buildConsole(options: { outdir: string; write?: boolean }): Promise<BuildResult<{ metafile: true }>> {
  return build({ ...CONSOLE_BUILD_OPTIONS, outdir: options.outdir, write: options.write ?? true, metafile: true });
}
