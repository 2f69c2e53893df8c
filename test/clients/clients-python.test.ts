import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { createFunnelClients } from "@funnel/client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { App } from "../../services/app.js";
import { ADMIN_TOKEN, startTestApp } from "../support/stores.js";

const run = promisify(execFile);
const root = new URL("../..", import.meta.url).pathname;
const python = "/usr/bin/python3";

/** Why the Python path cannot be tried here, or undefined when everything it needs is present. */
async function missing(): Promise<string | undefined> {
  const lacking: string[] = [];
  if (!existsSync("/usr/bin/protoc")) lacking.push("protoc (Debian's protobuf-compiler)");
  if (!existsSync("/usr/bin/grpc_python_plugin")) lacking.push("grpc_python_plugin (protobuf-compiler-grpc)");
  try {
    await run(python, ["-c", "import grpc, google.protobuf"]);
  } catch {
    lacking.push("python3-grpcio and python3-protobuf");
  }
  return lacking.length === 0 ? undefined : `not installed: ${lacking.join(", ")} (.ci/run installs them with apt-get)`;
}

const reason = await missing();
if (reason !== undefined) console.warn(`test/clients/clients-python.test.ts skips: ${reason}`);

describe.skipIf(reason !== undefined)("a Python client generated from proto/ with buf generate", () => {
  let app: App;
  let out = "";

  beforeAll(async () => {
    app = await startTestApp();
    out = await mkdtemp(join(tmpdir(), "funnel-python-"));
    await run(join(root, "node_modules/.bin/buf"), ["generate", "--template", "clients/examples/python/buf.gen.yaml", "--output", out], { cwd: root });
  });
  afterAll(async () => {
    await app.stop();
  });

  it("calls the tracker and ingest services over gRPC, with and without the admin token", async () => {
    const { stdout } = await run(python, [join(root, "clients/examples/python/example.py")], {
      env: { ...process.env, PYTHONPATH: join(out, "gen/python"), FUNNEL_GRPC_TARGET: new URL(app.url).host, FUNNEL_ADMIN_TOKEN: ADMIN_TOKEN },
    });
    const answer = JSON.parse(stdout) as { tracker: string; value: string; event_id: string; status: string; without_token: string };
    expect(answer).toMatchObject({ value: "from-python", status: "EVENT_STATUS_ACCEPTED", without_token: "UNAUTHENTICATED" });
    expect(answer.event_id).toMatch(/^[0-9a-f-]{36}$/);
    // What Python created, the TypeScript client reads.
    const funnel = createFunnelClients({ baseUrl: app.url, token: ADMIN_TOKEN });
    expect((await funnel.tracker.getTracker({ uuid: answer.tracker })).tracker?.value).toBe("from-python");
  });
});
