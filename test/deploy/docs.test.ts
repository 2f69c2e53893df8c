import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { cp, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, relative } from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { renderApiReference } from "../../scripts/api-reference.js";

const run = promisify(execFile);
const root = new URL("../..", import.meta.url).pathname;

/** A service as another branch might add it: the generator must document it without being told. */
const exampleProto = `syntax = "proto3";

// Example API for the test.
package funnel.example.v1;

// EchoService says things back.
service EchoService {
  // Echo answers with the text; \`invalid_argument\` when it is empty.
  // buf:lint:ignore RPC_REQUEST_STANDARD_NAME
  rpc Echo(EchoRequest) returns (EchoResponse);
}

message EchoRequest {
  // What to say.
  string text = 1;
  // How loud.
  Volume volume = 2;
}

message EchoResponse {
  // What was said.
  string text = 1;
}

// Volume of an echo.
enum Volume {
  // Not given.
  VOLUME_UNSPECIFIED = 0;
  // Loud.
  VOLUME_LOUD = 1;
}
`;

describe("the API reference (docs/api.md)", () => {
  it("is what `npm run docs` writes from proto/ now", async () => {
    const dir = await mkdtemp(join(tmpdir(), "funnel-docs-"));
    try {
      const out = join(dir, "api.md");
      await run(process.execPath, ["--import", "tsx", join(root, "scripts/docs.ts"), "--out", out], { cwd: root });
      const fresh = await readFile(out, "utf8");
      const committed = await readFile(join(root, "docs/api.md"), "utf8");
      expect(committed === fresh, "docs/api.md is stale: run npm run docs").toBe(true);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("holds no lint directives from the .proto comments", async () => {
    const doc = await readFile(join(root, "docs/api.md"), "utf8");
    expect(doc).not.toMatch(/buf:lint/);
  });

  it("covers every service, method, message and field, the plain routes and the error codes", async () => {
    const doc = await readFile(join(root, "docs/api.md"), "utf8");
    for (const heading of ["## Plain HTTP routes", "## Errors", "### TrackerService", "#### GetStats", "#### Tracker", "#### DayCount"]) {
      expect(doc).toContain(heading);
    }
    expect(doc).toContain("| `GET /track?id={uuid}` |");
    expect(doc).toContain("| `invalid_argument` | 3 | 400 |");
    expect(doc).toContain("| `tracker_id` | `trackerId` | string | The tracker's UUID. |");
    expect(doc).toContain("| `days` | `days` | repeated [DayCount](#funnel-tracker-v1-daycount) |");
    expect(doc).toContain(`curl -s -X POST "$FUNNEL_URL/funnel.tracker.v1.TrackerService/GetStats"`);
    expect(doc).toContain(`"$FUNNEL_GRPC_URL/funnel.tracker.v1.TrackerService/GetStats"`);
    expect(doc).toContain(`-d '{"trackerId":"<trackerId>","from":"<from>","to":"<to>"}'`);
  });

  it("picks up any new .proto file under proto/, with its comments", async () => {
    const dir = await mkdtemp(join(tmpdir(), "funnel-docs-root-"));
    try {
      for (const path of ["proto", "buf.yaml", "docs/clients.md"]) await cp(join(root, path), join(dir, path), { recursive: true });
      await mkdir(join(dir, "proto/funnel/example/v1"), { recursive: true });
      await writeFile(join(dir, "proto/funnel/example/v1/example.proto"), exampleProto);
      const doc = await renderApiReference(dir);
      expect(doc).toContain("- [funnel.example.v1.EchoService](#funnel-example-v1-echoservice)");
      expect(doc).toContain("Echo answers with the text; `invalid_argument` when it is empty.\n\n`POST /funnel.example.v1.EchoService/Echo`");
      expect(doc).not.toContain("buf:lint");
      expect(doc).toContain("Errors named above: `invalid_argument`");
      expect(doc).toContain("| `volume` | `volume` | [Volume](#funnel-example-v1-volume) | How loud. |");
      expect(doc).toContain("| `VOLUME_LOUD` | 1 | Loud. |");
      expect(doc).toContain(`-d '{"text":"<text>","volume":"VOLUME_LOUD"}'`);
      expect(doc).toContain("#### GetStats");
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

/** Markdown without its fenced code blocks, whose lines are neither headings nor links. */
function withoutCode(markdown: string): string {
  let fenced = false;
  return markdown
    .split("\n")
    .filter((line) => {
      if (line.startsWith("```")) {
        fenced = !fenced;
        return false;
      }
      return !fenced;
    })
    .join("\n");
}

/** The anchors GitHub gives a Markdown file: a slug per heading (numbered when repeated), and explicit `<a id>`s. */
function anchorsOf(markdown: string): Set<string> {
  const anchors = new Set<string>();
  const seen = new Map<string, number>();
  const text = withoutCode(markdown);
  for (const match of text.matchAll(/^#{1,6} (.+)$/gm)) {
    const slug = (match[1] ?? "")
      .trim()
      .toLowerCase()
      .replace(/[^\p{L}\p{N}\s_-]/gu, "")
      .replace(/\s/g, "-");
    const count = seen.get(slug) ?? 0;
    seen.set(slug, count + 1);
    anchors.add(count === 0 ? slug : `${slug}-${count}`);
  }
  for (const match of text.matchAll(/<a (?:id|name)="([^"]+)"/g)) anchors.add(match[1] ?? "");
  return anchors;
}

/** Every link target of a Markdown file outside code (fenced blocks and inline code spans). */
function linksOf(markdown: string): string[] {
  const text = withoutCode(markdown).replace(/`[^`\n]*`/g, "");
  return [...text.matchAll(/\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)].map((match) => match[1] ?? "");
}

describe("the README and docs/", () => {
  const pages = async () => ["README.md", ...(await readdir(join(root, "docs"))).filter((name) => name.endsWith(".md")).map((name) => `docs/${name}`)];

  it("link only to files and headings that exist", async () => {
    const broken: string[] = [];
    for (const page of await pages()) {
      for (const link of linksOf(await readFile(join(root, page), "utf8"))) {
        if (/^[a-z][a-z0-9+.-]*:/i.test(link)) continue;
        const [path = "", anchor] = link.split("#", 2);
        const target = path === "" ? join(root, page) : join(root, dirname(page), decodeURIComponent(path));
        if (!existsSync(target)) {
          broken.push(`${page}: ${link} (no ${relative(root, target)})`);
          continue;
        }
        if (anchor === undefined || !target.endsWith(".md")) continue;
        if (!anchorsOf(await readFile(target, "utf8")).has(anchor)) broken.push(`${page}: ${link} (no heading #${anchor} in ${relative(root, target)})`);
      }
    }
    expect(broken).toEqual([]);
  });

  it("are read as GitHub reads them: links outside code, headings as slugs, a repeated heading numbered", () => {
    const page = "# Title\n\n## From `up` to a first hit\n\n```sh\n# not a heading\n```\n\n## Title\n\n[a](gone.md) `[b](in-code.md)` [c](#title-1)\n";
    expect(linksOf(page)).toEqual(["gone.md", "#title-1"]);
    expect([...anchorsOf(page)]).toEqual(["title", "from-up-to-a-first-hit", "title-1"]);
  });

  it("hold a README of at most 250 lines", async () => {
    const readme = await readFile(join(root, "README.md"), "utf8");
    expect(readme.trimEnd().split("\n").length).toBeLessThanOrEqual(250);
  });

  it("hold a README that names the test command .ci/run runs", async () => {
    const readme = await readFile(join(root, "README.md"), "utf8");
    const ci = await readFile(join(root, ".ci/run"), "utf8");
    const command = ci.trimEnd().split("\n").at(-1) ?? "";
    expect(command).toBe("npm test");
    expect(readme).toMatch(/^npm test +# /m);
  });
});
