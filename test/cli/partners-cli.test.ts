import { execFile } from "node:child_process";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DeliveryStatus } from "../../gen/funnel/postback/v1/delivery_pb.js";
import type { App } from "../../services/app.js";
import { startPartnerServer, type PartnerServer } from "../support/partner-server.js";
import { postbackClients, seedTemplate } from "../support/postback-clients.js";
import { runCliAsAdmin } from "../support/cli.js";
import { ADMIN_TOKEN, eventually, startTestApp } from "../support/stores.js";

describe("funnel partners and deliveries (CLI as a process)", () => {
  let app: App;
  let partner: PartnerServer;

  beforeAll(async () => {
    partner = await startPartnerServer();
    app = await startTestApp({ env: { POSTBACK_ALLOW_PRIVATE: "true", JOBS_POLL_SECONDS: "1" } });
  });
  afterAll(async () => {
    await app?.stop();
    await partner?.close();
  });
  const funnel = (...args: string[]) => runCliAsAdmin(app, args);


  it("adds, updates, shows and lists partners", async () => {
    const added = await funnel("partners", "add", "777", "--install-url", seedTemplate(partner.url), "--authorization-url", seedTemplate(partner.url, "/auth"), "--max-attempts", "2", "--initial-delay", "50ms", "--max-delay", "100ms");
    expect(added).toMatchObject({ code: 0, stdout: "added partner 777\n" });
    const updated = await funnel("partners", "update", "777", "--name", "Seven", "--timeout", "3s", "--install-header", "X-Key: abc");
    expect(updated).toMatchObject({ code: 0, stdout: "updated partner 777\n" });
    const shown = JSON.parse((await funnel("partners", "show", "777", "--json")).stdout) as { name: string; timeout: string; install: { enabled: boolean; headers: Record<string, string> }; retry: { maxAttempts: number } };
    expect(shown).toMatchObject({ name: "Seven", timeout: "3s", install: { enabled: true, headers: { "X-Key": "abc" } }, retry: { maxAttempts: 2 } });
    const listed = await funnel("partners", "list");
    expect(listed.stdout).toMatch(/^777\s+Seven\s+yes\s+-\s+on\s+on\s+3s\s+2$/m);
    const bad = await funnel("partners", "add", "888", "--install-url", "https://x.example/{nope}");
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/^funnel: InvalidArgument: partner\.install\.url_template: position 19: unknown placeholder \{nope\}/);
  });

  it("exports and imports CSV, reporting bad rows and applying nothing", async () => {
    const file = join(app.config.dataDir, "partners.csv");
    expect((await funnel("partners", "export", file)).code).toBe(0);
    const csv = await readFile(file, "utf8");
    expect(csv.split("\r\n")[0]).toMatch(/^partner_id,name,enabled,timeout,/);
    const again = await funnel("partners", "import", file);
    expect(again).toMatchObject({ code: 0, stdout: "applied: created 0, updated 0, unchanged 1, deleted 0\n" });

    const broken = join(app.config.dataDir, "broken.csv");
    const columns = csv.split("\r\n")[0]!.split(",");
    const row = (cells: Record<string, string>) => columns.map((column) => cells[column] ?? "").join(",");
    await writeFile(
      broken,
      `${csv}${row({ partner_id: "new1", install_enabled: "true", install_url: "https://n.example/{stag}" })}\r\n${row({ partner_id: "new2", enabled: "nope" })}\r\n`,
    );
    const rejected = await funnel("partners", "import", broken);
    expect(rejected).toMatchObject({
      code: 1,
      stdout: 'line 4 (new2) enabled: "nope" is not true or false\n',
      stderr: `funnel: ${broken}: 1 problem(s), nothing applied\n`,
    });
    expect((await funnel("partners", "list", "--json")).stdout).not.toContain("new1");
  });

  it("summarises a large import instead of naming every partner", async () => {
    const file = join(app.config.dataDir, "many.csv");
    expect((await funnel("partners", "export", file)).code).toBe(0);
    const csv = await readFile(file, "utf8");
    const columns = csv.split("\r\n")[0]!.split(",");
    const row = (cells: Record<string, string>) => columns.map((column) => cells[column] ?? "").join(",");
    const ids = Array.from({ length: 25 }, (_, i) => `bulk${String(i).padStart(2, "0")}`);
    await writeFile(file, `${csv}${ids.map((id) => `${row({ partner_id: id })}\r\n`).join("")}`);
    const dry = await funnel("partners", "import", file, "--dry-run");
    expect(dry.code).toBe(0);
    expect(dry.stdout).toMatch(/^dry run, nothing applied: created 25 \(bulk00, bulk01, .*, bulk09, …and 15 more; --json lists every id\), updated 0, /);
    expect(dry.stdout).not.toContain("bulk10");
    const asJson = JSON.parse((await funnel("partners", "import", file, "--dry-run", "--json")).stdout) as { created: string[] };
    expect(asJson.created).toEqual(ids);
  });

  it("shows progress on a terminal while an import runs, and none in a pipe", async () => {
    const file = join(app.config.dataDir, "progress.csv");
    expect((await funnel("partners", "export", file)).code).toBe(0);
    const bin = new URL("../../cli/bin.js", import.meta.url).pathname;
    // `script` runs the CLI on a pseudo-terminal, as a person at a shell would.
    const { stdout } = await promisify(execFile)("script", ["-qec", `"${process.execPath}" "${bin}" partners import "${file}" --dry-run`, "/dev/null"], {
      env: { ...process.env, FUNNEL_URL: app.url, FUNNEL_ADMIN_TOKEN: ADMIN_TOKEN },
    });
    expect(stdout).toContain(`\rimporting ${file}… 0 s`);
    expect(stdout).toContain("dry run, nothing applied:");
    const piped = await funnel("partners", "import", file, "--dry-run");
    expect(piped.stderr).toBe("");
    expect(piped.stdout).toMatch(/^dry run, nothing applied:/);
  });

  it("previews a postback without sending it", async () => {
    const preview = await funnel("partners", "preview", "777", "--event", "install", "--click-id", "abc", "--param", "clickID=x 1", "--timestamp", "1700000000");
    expect(preview.code).toBe(0);
    expect(preview.stdout.split("\n")[0]).toBe(`GET ${partner.url}/postback/777/?clickID=abc&externalClickID=x%201&userID=USER&ts=1700000000`);
    expect(preview.stdout).toContain("X-Key: abc");
    expect(partner.requests).toHaveLength(0);
  });

  it("lists deliveries, shows attempts and replays a dead one", async () => {
    partner.answer((_req, index) => (index === 0 ? { status: 410, body: "gone for now" } : { status: 200, body: "ok" }));
    const api = postbackClients(app.url);
    const { deliveryId } = await api.events.recordInstall({ stag: "777_cli-click" });
    await eventually(async () => ((await api.deliveries.getDelivery({ id: deliveryId })).delivery?.status === DeliveryStatus.DEAD ? true : undefined), 10_000, "a dead postback");

    const listed = await funnel("deliveries", "list", "--partner", "777", "--status", "dead");
    expect(listed.stdout).toMatch(new RegExp(`^${deliveryId}\\s+777\\s+install\\s+777_cli-click\\s+dead\\s+1\\s+410\\s+HTTP 410`, "m"));
    const replayed = await funnel("deliveries", "replay", deliveryId);
    expect(replayed).toMatchObject({ code: 0, stdout: "replayed 1 postback(s)\n" });
    await eventually(async () => ((await api.deliveries.getDelivery({ id: deliveryId })).delivery?.status === DeliveryStatus.DELIVERED ? true : undefined), 10_000, "the replayed postback");
    const shown = await funnel("deliveries", "show", deliveryId);
    expect(shown.stdout).toMatch(/^status\s+delivered, 2 of 3 attempts/m);
    expect(shown.stdout).toMatch(/^1\s+\S+\s+GET\s+410\s+[\d.]+\s+dead\s+HTTP 410\s+http:\/\/127\.0\.0\.1:\d+\/postback\/777\/\?clickID=cli-click.*"gone for now"$/m);
    expect(shown.stdout).toMatch(/^2\s+\S+\s+GET\s+200\s+[\d.]+\s+delivered\s+/m);
    const refused = await funnel("deliveries", "replay");
    expect(refused).toMatchObject({ code: 2, stderr: "funnel: deliveries replay: give IDs or at least one filter option (--partner, --status, …)\n" });
  });

  it("prunes every partner with a file that lists none only when confirmed", async () => {
    const file = join(app.config.dataDir, "none.csv");
    expect((await funnel("partners", "export", file)).code).toBe(0);
    await writeFile(file, `${(await readFile(file, "utf8")).split("\r\n")[0]}\r\n`);
    const refused = await funnel("partners", "import", file, "--prune");
    expect(refused).toMatchObject({
      code: 2,
      stdout: "",
      stderr: `funnel: partners import: ${file} lists no partner, so --prune would delete every partner; add --confirm-prune-all to do that (--dry-run shows which)\n`,
    });
    expect((await funnel("partners", "list", "--json")).stdout).toContain('"777"');
    const dry = await funnel("partners", "import", file, "--prune", "--dry-run");
    expect(dry).toMatchObject({ code: 0, stdout: "dry run, nothing applied: created 0, updated 0, unchanged 0, deleted 1 (777)\n" });
    const confirmed = await funnel("partners", "import", file, "--prune", "--confirm-prune-all");
    expect(confirmed).toMatchObject({ code: 0, stdout: "applied: created 0, updated 0, unchanged 0, deleted 1 (777)\n" });
    expect((await funnel("partners", "list")).stdout).toBe("no partners\n");
  });
});
