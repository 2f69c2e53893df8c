import { readFile } from "node:fs/promises";
import path from "node:path";
import { gzipSync } from "node:zlib";
import { describe, expect, it } from "vitest";
import { buildConsole, CONSOLE_DIR } from "../../console/build.js";

/** The budget for what a first visit downloads. */
const INITIAL_LOAD_BUDGET = 300 * 1024;

describe("console bundle", () => {
  it("builds the app into one script and one style sheet whose initial load stays under 300 KB gzip", async () => {
    const result = await buildConsole({ outdir: "/console-out", write: false });
    expect(result.errors).toEqual([]);
    const files = new Map(result.outputFiles?.map((file) => [path.basename(file.path), file.contents]) ?? []);
    expect([...files.keys()].sort()).toEqual(["main.css", "main.js"]);
    const html = await readFile(path.join(CONSOLE_DIR, "index.html"));
    // Everything index.html loads before the first paint: itself, the script and the style sheet.
    const initial = [html, files.get("main.js"), files.get("main.css")].reduce((sum, body) => sum + gzipSync(body ?? Buffer.alloc(0), { level: 9 }).length, 0);
    console.info(`console initial load: ${(initial / 1024).toFixed(1)} KB gzip`);
    expect(initial).toBeGreaterThan(10 * 1024);
    expect(initial).toBeLessThanOrEqual(INITIAL_LOAD_BUDGET);
    const script = new TextDecoder().decode(files.get("main.js"));
    // The sign-in screen and every page are in the bundle.
    for (const text of ["Admin token", "Live preview", "Attempt timeline", "Ingest quality", "Redrive", "Tag retention"]) expect(script).toContain(text);
  });
});
