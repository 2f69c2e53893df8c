import { execFile } from "node:child_process";
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { renderApiReference } from "../scripts/api-reference.js";

const run = promisify(execFile);
const root = new URL("..", import.meta.url).pathname;

/** A service as another branch might add it: the generator must document it without being told. */
const exampleProto = `syntax = "proto3";

// Example API for the test.
package funnel.example.v1;

// EchoService says things back.
service EchoService {
  // Echo answers with the text; \`invalid_argument\` when it is empty.
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
      for (const path of ["proto", "buf.yaml", "README.md"]) await cp(join(root, path), join(dir, path), { recursive: true });
      await mkdir(join(dir, "proto/funnel/example/v1"), { recursive: true });
      await writeFile(join(dir, "proto/funnel/example/v1/example.proto"), exampleProto);
      const doc = await renderApiReference(dir);
      expect(doc).toContain("- [funnel.example.v1.EchoService](#funnel-example-v1-echoservice)");
      expect(doc).toContain("Echo answers with the text; `invalid_argument` when it is empty.");
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
