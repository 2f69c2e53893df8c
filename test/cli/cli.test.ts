import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { App } from "../../services/app.js";
import { runCli } from "../support/cli.js";
import { defineQueue } from "../../services/core/jobs/queue.js";
import { deliverQueue } from "../../services/postback/queue.js";
import { ADMIN_TOKEN, eventually, startTestApp } from "../support/stores.js";

const funnel = runCli;


describe("funnel CLI", () => {
  let app: App;
  beforeAll(async () => {
    app = await startTestApp();
  });
  afterAll(async () => {
    await app.stop();
  });

  it("prints the status as a table", async () => {
    const { code, stdout } = await funnel(["status"], { FUNNEL_URL: app.url, FUNNEL_ADMIN_TOKEN: ADMIN_TOKEN });
    expect(code).toBe(0);
    expect(stdout).toMatch(/^postgres\s+server\s+healthy\s+\d+/m);
    expect(stdout).toMatch(new RegExp(`^clickhouse\\s+${app.clickhouse.backend}\\s+healthy`, "m"));
  });

  it("prints the status as JSON with --json", async () => {
    const { code, stdout } = await funnel(["status", "--json", "--url", app.url, "--token", ADMIN_TOKEN]);
    expect(code).toBe(0);
    const status = JSON.parse(stdout) as { postgres: { healthy: boolean }; clickhouse: { healthy: boolean; backend: string } };
    expect(status.postgres.healthy).toBe(true);
    expect(status.clickhouse).toMatchObject({ healthy: true, backend: app.clickhouse.backend });
  });

  it("reads the dev token file when no token is given", async () => {
    const { writeFile, mkdtemp } = await import("node:fs/promises");
    const dir = await mkdtemp(`${app.config.dataDir}/cli-`);
    await writeFile(`${dir}/admin-token`, `${ADMIN_TOKEN}\n`);
    const { code } = await funnel(["status"], { FUNNEL_URL: app.url, FUNNEL_DATA_DIR: dir });
    expect(code).toBe(0);
  });

  it("says one clear line for a bad token", async () => {
    const { code, stdout, stderr } = await funnel(["status"], { FUNNEL_URL: app.url, FUNNEL_ADMIN_TOKEN: "wrong-token-wrong-token" });
    expect(code).toBe(1);
    expect(stdout).toBe("");
    expect(stderr.trim().split("\n")).toEqual(["funnel: authorization: admin token is not valid (set FUNNEL_ADMIN_TOKEN or pass --token)"]);
  });

  it("says one clear line when the server is unreachable", async () => {
    const { code, stderr } = await funnel(["status", "--url", "http://127.0.0.1:9"]);
    expect(code).toBe(1);
    expect(stderr.trim().split("\n")).toEqual(["funnel: cannot reach the Funnel server at http://127.0.0.1:9 (is it running? set FUNNEL_URL or --url)"]);
  });

  it("prints JSON of one shape: every field, 64-bit numbers as numbers, enums as lower-case words", async () => {
    const env = { FUNNEL_URL: app.url, FUNNEL_ADMIN_TOKEN: ADMIN_TOKEN };
    const uuid = (await funnel(["trackers", "create", "--value", "json-shape"], env)).stdout.trim();
    const stats = JSON.parse((await funnel(["trackers", "stats", uuid, "--from", "2026-01-01", "--to", "2026-01-02", "--json"], env)).stdout) as { count: unknown; days: unknown[] };
    expect(stats).toMatchObject({ count: 0, days: [] });
    const queues = JSON.parse((await funnel(["jobs", "stats", "--json"], env)).stdout) as Record<string, unknown>[];
    expect(queues[0]).toMatchObject({ queued: 0, active: 0, retrying: 0, failed: 0, dead: 0, oldestWaitingSeconds: 0 });
    await funnel(["partners", "add", "json-shape", "--install-url", "https://x.example/?c={stag_clickID}"], env);
    const partner = JSON.parse((await funnel(["partners", "show", "json-shape", "--json"], env)).stdout) as { install: { method: string }; download: { enabled: boolean; urlTemplate: string } };
    expect(partner.install.method).toBe("get");
    expect(partner.download).toMatchObject({ enabled: false, urlTemplate: "" });
  });

  it("exits 2 for a request the server calls invalid, and writes errors as JSON with --json", async () => {
    const env = { FUNNEL_URL: app.url, FUNNEL_ADMIN_TOKEN: ADMIN_TOKEN };
    const invalid = await funnel(["trackers", "stats", "00000000-0000-0000-0000-000000000000", "--from", "2026-01-02", "--to", "2026-01-01", "--json"], env);
    expect(invalid.code).toBe(2);
    expect(invalid.stdout).toBe("");
    expect(JSON.parse(invalid.stderr)).toMatchObject({ error: { code: "invalid_argument", message: expect.any(String) as unknown } });
    const unknown = await funnel(["jobs", "stat", "--json"]);
    expect(unknown.code).toBe(2);
    expect(JSON.parse(unknown.stderr)).toEqual({ error: { code: "usage", message: 'unknown command "jobs stat" (did you mean "funnel jobs stats"?)' } });
    const unreachable = await funnel(["status", "--json", "--url", "http://127.0.0.1:9"]);
    expect(unreachable.code).toBe(1);
    expect(JSON.parse(unreachable.stderr)).toMatchObject({ error: { message: expect.stringContaining("cannot reach the Funnel server") as unknown } });
  });

  it("says so when the server at the URL is not Funnel", async () => {
    const { createServer } = await import("node:http");
    const server = createServer((req, res) => {
      res.writeHead(req.url?.startsWith("/missing/") === true ? 404 : 200, { "content-type": "text/html" });
      res.end("<html>a web site</html>");
    });
    await new Promise<void>((done) => server.listen(0, "127.0.0.1", done));
    const { port } = server.address() as { port: number };
    try {
      for (const url of [`http://127.0.0.1:${port}`, `http://127.0.0.1:${port}/missing`]) {
        const answer = await funnel(["status", "--url", url]);
        expect(answer.code).toBe(1);
        expect(answer.stderr).toMatch(new RegExp(`^funnel: the server at ${url} is not a Funnel server \\(it answered (text/html|HTTP 404);`));
      }
    } finally {
      server.close();
    }
  });

  it("rejects unknown commands and flags with exit status 2", async () => {
    const unknown = await funnel(["frobnicate"]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/^funnel: unknown command "frobnicate"/);
    const flag = await funnel(["status", "--frob"]);
    expect(flag.code).toBe(2);
    expect(flag.stderr).toMatch(/^funnel: Unknown option '--frob'/);
    expect(flag.stderr.trim().split("\n")).toHaveLength(1);
  });
});

describe("funnel help and discovery", () => {
  it("prints the help of the CLI, a group or one command, with examples", async () => {
    const all = await funnel(["help"]);
    expect(all.code).toBe(0);
    expect(all.stdout).toMatch(/^ {2}jobs stats\s/m);
    expect(all.stdout).toMatch(/^ {2}partners import\s/m);
    const group = await funnel(["jobs", "--help"]);
    expect(group.code).toBe(0);
    expect(group.stdout).toMatch(/^usage: funnel jobs <command>/);
    expect(group.stdout).toMatch(/^ {2}jobs failed\s/m);
    expect(group.stdout).toMatch(/^ {2}funnel jobs stats --json$/m);
    expect(group.stdout).not.toMatch(/trackers|partners/);
    const command = await funnel(["help", "trackers", "create"]);
    expect(command.code).toBe(0);
    expect(command.stdout).toMatch(/^usage: funnel trackers create/);
    expect(command.stdout).toMatch(/^ {2}funnel trackers create --value summer-sale$/m);
    expect(command.stdout).not.toMatch(/trackers list|set-value/);
    expect(await funnel(["seen", "integrations", "add", "-h"])).toMatchObject({ code: 0, stdout: expect.stringMatching(/--tags T1,T2/) as unknown });
  });

  it("prints its version", async () => {
    const { readFile } = await import("node:fs/promises");
    const { version } = JSON.parse(await readFile(new URL("../../package.json", import.meta.url), "utf8")) as { version: string };
    expect(await funnel(["--version"])).toMatchObject({ code: 0, stdout: `funnel ${version}\n` });
  });

  it("suggests the nearest command or flag for a typo", async () => {
    expect(await funnel(["trakers", "list"])).toMatchObject({ code: 2, stderr: 'funnel: unknown command "trakers list" (did you mean "funnel trackers list"?)\n' });
    expect(await funnel(["jobs", "stat"])).toMatchObject({ code: 2, stderr: 'funnel: unknown command "jobs stat" (did you mean "funnel jobs stats"?)\n' });
    expect(await funnel(["seen", "integratons", "ad"])).toMatchObject({ code: 2, stderr: expect.stringContaining('did you mean "funnel seen integrations add"?') as unknown });
    expect(await funnel(["jobs", "failed", "--limt", "3"])).toMatchObject({ code: 2, stderr: "funnel: Unknown option '--limt' (did you mean --limit?)\n" });
  });

  it("prints shell completion scripts that list the commands", async () => {
    const { execFile } = await import("node:child_process");
    const { promisify } = await import("node:util");
    const bash = await funnel(["completion", "bash"]);
    expect(bash.code).toBe(0);
    const complete = async (words: string) => {
      const script = `${bash.stdout}\nCOMP_WORDS=(${words}); COMP_CWORD=$((\${#COMP_WORDS[@]} - 1)); _funnel; echo "\${COMPREPLY[*]}"`;
      return (await promisify(execFile)("bash", ["-c", script])).stdout.trim();
    };
    expect(await complete('funnel jobs ""')).toBe("stats failed show retry redrive cancel");
    expect(await complete("funnel --url http://x seen in")).toBe("integrations");
    expect((await complete("funnel jobs failed --li")).split(" ")).toContain("--limit");
    const zsh = await funnel(["completion", "zsh"]);
    expect(zsh.stdout).toMatch(/bashcompinit/);
    const fish = await funnel(["completion", "fish"]);
    expect(fish.stdout).toMatch(/^complete -c funnel .*"jobs".*'stats failed show retry redrive cancel'$/m);
    expect(await funnel(["completion", "tcsh"])).toMatchObject({ code: 2 });
  });
});

describe("funnel startup", () => {
  const cache = new URL("../../node_modules/.cache/funnel-cli/", import.meta.url);

  it("runs from a bundle that is rebuilt when a file it was built from changes", async () => {
    const { readFile, stat, writeFile } = await import("node:fs/promises");
    await funnel(["--help"]);
    const inputs = new URL("inputs.tsv", cache);
    const read = async () => new Map((await readFile(inputs, "utf8")).split("\n").map((line) => line.split("\t") as [string, string]));
    const stamps = await read();
    expect([...stamps.keys()]).toEqual(expect.arrayContaining(["cli/main.ts", "cli/commands/trackers.ts"]));
    await writeFile(inputs, [...stamps].map(([file, stamp]) => `${file}\t${file === "cli/main.ts" ? "0:0" : stamp}`).join("\n"));
    const { code, stdout } = await funnel(["--help"]);
    expect(code).toBe(0);
    expect(stdout).toMatch(/^usage: funnel/);
    const main = await stat(new URL("../../cli/main.ts", import.meta.url));
    expect((await read()).get("cli/main.ts")).toBe(`${main.size}:${main.mtimeMs}`);
  });
});

describe("funnel jobs", () => {
  const failing = defineQueue<{ n: number }>("test.cli-failing", { retry: { limit: 0, delay: 1, backoff: false } });
  let app: App;
  beforeAll(async () => {
    app = await startTestApp({ roles: ["api"], queues: [failing as never] });
  });
  afterAll(async () => {
    await app.stop();
  });
  const env = () => ({ FUNNEL_URL: app.url, FUNNEL_ADMIN_TOKEN: ADMIN_TOKEN });

  it("lists stats and failed jobs, as text and JSON", async () => {
    const stats = await funnel(["jobs", "stats", "--json"], env());
    expect(stats.code).toBe(0);
    expect(Array.isArray(JSON.parse(stats.stdout))).toBe(true);
    const failed = await funnel(["jobs", "failed"], env());
    expect(failed).toMatchObject({ code: 0, stdout: "no failed jobs\n" });
  });

  it("shows why a job failed, whole, and one job as a table unless --json", async () => {
    const reason = `the consumer answered 503 Service Unavailable after ${"a very long wait, ".repeat(6)}so it gave up`;
    await app.jobs.work(failing, () => {
      throw new Error(reason);
    });
    const id = await app.jobs.send(failing, { n: 1 });
    const failed = await eventually(async () => {
      const answer = await funnel(["jobs", "failed", "--queue", "test.cli-failing"], env());
      return answer.stdout.includes(id) ? answer : undefined;
    }, 10_000, "the failed job");
    expect(failed.stdout).toContain(reason);
    const shown = await funnel(["jobs", "show", id], env());
    expect(shown.code).toBe(0);
    expect(shown.stdout).toMatch(new RegExp(`^id\\s+${id}$`, "m"));
    expect(shown.stdout).toMatch(/^state\s+failed$/m);
    expect(shown.stdout).toMatch(/^attempts\s+1 of 1$/m);
    expect(shown.stdout).toMatch(new RegExp(`^error\\s+${reason}$`, "m"));
    const asJson = JSON.parse((await funnel(["jobs", "show", id, "--json"], env())).stdout) as { id: string; state: string };
    expect(asJson).toMatchObject({ id, state: "failed" });
  });

  it("refuses to retry or redrive postback jobs, pointing to deliveries replay", async () => {
    const redrive = await funnel(["jobs", "redrive", "--queue", "postback.deliver.dead"], env());
    expect(redrive.code).toBe(1);
    expect(redrive.stderr).toMatch(/^funnel: FailedPrecondition: queue: jobs of postback\.deliver are not retried or redriven, .*funnel deliveries replay/);
    const id = await app.jobs.send(deliverQueue, { deliveryId: "00000000-0000-0000-0000-000000000001", attempt: 1, replay: 1 });
    const retry = await funnel(["jobs", "retry", id], env());
    expect(retry.code).toBe(1);
    expect(retry.stderr).toMatch(new RegExp(`^funnel: FailedPrecondition: ids: ${id}: jobs of postback\\.deliver are not retried or redriven, .*funnel deliveries replay`));
    await funnel(["jobs", "cancel", id], env());
  });

  it("explains bad job commands in one line", async () => {
    const redrive = await funnel(["jobs", "redrive"], env());
    expect(redrive).toMatchObject({ code: 2, stderr: "funnel: jobs redrive: --queue is required\n" });
    const unknown = await funnel(["jobs", "redrive", "--queue", "no.such"], env());
    expect(unknown).toMatchObject({ code: 2, stderr: 'funnel: InvalidArgument: queue: unknown queue "no.such"\n' });
    const show = await funnel(["jobs", "show", "00000000-0000-0000-0000-000000000000"], env());
    expect(show).toMatchObject({ code: 1, stderr: "funnel: NotFound: id: no job 00000000-0000-0000-0000-000000000000\n" });
  });
});
