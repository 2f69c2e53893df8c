import { execFile } from "node:child_process";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";

const run = promisify(execFile);
const root = new URL("../..", import.meta.url).pathname;

async function files(dir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const path = join(entry.parentPath, entry.name);
    out.set(relative(dir, path), await readFile(path, "utf8"));
  }
  return out;
}

describe("the contract", () => {
  it("passes buf lint", async () => {
    await expect(run(join(root, "node_modules/.bin/buf"), ["lint"], { cwd: root })).resolves.toBeDefined();
  });

  it("gen/ is exactly what buf generate writes from proto/", async () => {
    const out = await mkdtemp(join(tmpdir(), "funnel-gen-"));
    try {
      await run(join(root, "node_modules/.bin/buf"), ["generate", "--output", out], { cwd: root, env: { ...process.env, PATH: `${join(root, "node_modules/.bin")}:${process.env.PATH ?? ""}` } });
      const expected = await files(join(out, "gen"));
      const committed = await files(join(root, "gen"));
      expect([...committed.keys()].sort()).toEqual([...expected.keys()].sort());
      for (const [path, text] of expected) expect(committed.get(path), `gen/${path} is stale: run npm run generate`).toBe(text);
    } finally {
      await rm(out, { recursive: true, force: true });
    }
  });
});
