import { execFile } from "node:child_process";
import { accessSync, constants } from "node:fs";
import { chmod, mkdtemp, readFile, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse, stringify } from "yaml";
import type { App } from "../../services/app.js";
import type { Registry } from "../../services/core/metrics.js";
import { freePort } from "../support/ports.js";
import { eventually, startTestApp, testStores } from "../support/stores.js";

const root = new URL("../..", import.meta.url).pathname;
const dashboardPath = join(root, "deploy/grafana/dashboards/funnel.json");
const alertsPath = join(root, "deploy/prometheus/alerts.yml");
const run = promisify(execFile);

/** promtool (Debian's `prometheus` package installs it in /usr/bin), or undefined when it is not installed. */
function findPromtool(): string | undefined {
  for (const dir of [...(process.env.PATH ?? "").split(delimiter), "/usr/bin", "/usr/local/bin"]) {
    if (dir === "") continue;
    try {
      accessSync(join(dir, "promtool"), constants.X_OK);
      return join(dir, "promtool");
    } catch {
      // not here
    }
  }
  return undefined;
}

const promtool = findPromtool();
if (promtool === undefined) {
  console.warn("test/deploy/monitoring.test.ts: promtool checks skipped, promtool is not installed (`.ci/run` installs it: apt-get install prometheus)");
}

/** Series names mapped to the label names each can carry once Prometheus has scraped it. */
type Series = Map<string, Set<string>>;

/** The labels Prometheus adds to every series it scrapes. */
const TARGET_LABELS = ["job", "instance"];

/** Series that Prometheus makes itself rather than scrapes from Funnel. */
const prometheusSeries: Series = new Map([["up", new Set(TARGET_LABELS)]]);

/**
 * Every series name `registry` exposes, read from its text exposition (a
 * histogram as its `_bucket`, `_sum` and `_count` series), with the label
 * names each is declared with or carries.
 */
async function exposedSeries(registry: Registry): Promise<Series> {
  const text = await registry.metrics();
  const declared = new Map(registry.getMetricsAsArray().map((metric) => [metric.name, (metric as { labelNames?: readonly string[] }).labelNames ?? []]));
  const series: Series = new Map();
  for (const [, name = "", type] of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
    const labels = new Set([...(declared.get(name) ?? []), ...TARGET_LABELS]);
    if (type === "histogram") {
      series.set(`${name}_bucket`, new Set([...labels, "le"]));
      series.set(`${name}_sum`, labels);
      series.set(`${name}_count`, labels);
    } else if (type === "summary") {
      series.set(name, new Set([...labels, "quantile"]));
      series.set(`${name}_sum`, labels);
      series.set(`${name}_count`, labels);
    } else {
      series.set(name, labels);
    }
  }
  for (const [, name = "", labels = ""] of text.matchAll(/^([a-zA-Z_:][\w:]*)\{([^}]*)\}/gm)) {
    for (const [, label = ""] of labels.matchAll(/([a-zA-Z_]\w*)="/g)) series.get(name)?.add(label);
  }
  return series;
}

/** PromQL's aggregation operators: a name followed by `by (…)` or `(`, never a metric. */
const AGGREGATIONS = new Set(["sum", "min", "max", "avg", "count", "stddev", "stdvar", "topk", "bottomk", "quantile", "count_values", "group", "limitk", "limit_ratio"]);
/** Keywords whose parenthesised list holds label names. */
const LABEL_LISTS = new Set(["by", "without", "on", "ignoring", "group_left", "group_right"]);
const OPERATORS = new Set(["and", "or", "unless", "offset", "bool", "inf", "nan"]);

/** What a PromQL expression reads: each metric with the labels it matches on, and the labels it groups or joins by. */
interface Reads {
  readonly selectors: { readonly metric: string; readonly labels: readonly string[] }[];
  readonly grouping: readonly string[];
}

/**
 * Reads the metric selectors and grouping labels out of a PromQL expression
 * (Grafana's `$variables` allowed): enough of PromQL's grammar to tell a
 * metric name from a function, an operator or a label.
 */
function promqlReads(expr: string): Reads {
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""')
    .replace(/\[[^\]]*\]/g, "")
    .replace(/\$\{?\w+\}?/g, "0");
  const tokens = [...stripped.matchAll(/\d[\w.]*|[a-zA-Z_:][\w:]*|\{[^}]*\}|\S/g)].map((match) => match[0]);
  const selectors: { metric: string; labels: string[] }[] = [];
  const grouping: string[] = [];
  const matcherLabels = (block: string) => [...block.matchAll(/([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)/g)].map((match) => match[1] ?? "");
  for (let i = 0; i < tokens.length; i += 1) {
    const token = tokens[i] ?? "";
    const next = tokens[i + 1] ?? "";
    if (LABEL_LISTS.has(token) && next === "(") {
      for (i += 2; i < tokens.length && tokens[i] !== ")"; i += 1) if (/^[a-zA-Z_]\w*$/.test(tokens[i] ?? "")) grouping.push(tokens[i] ?? "");
    } else if (token.startsWith("{")) {
      selectors.push({ metric: "", labels: matcherLabels(token) });
    } else if (/^[a-zA-Z_:]/.test(token) && next !== "(" && !AGGREGATIONS.has(token) && !OPERATORS.has(token)) {
      const labels = next.startsWith("{") ? matcherLabels(next) : [];
      if (next.startsWith("{")) i += 1;
      selectors.push({ metric: token, labels });
    }
  }
  return { selectors, grouping };
}

/** What `expr` reads that `series` does not have: unknown metrics, and labels none of its metrics carry. */
function unknownReads(expr: string, series: Series): string[] {
  const reads = promqlReads(expr);
  const problems: string[] = [];
  const labelsOfExpr = new Set<string>();
  for (const { metric, labels } of reads.selectors) {
    const known = series.get(metric) ?? prometheusSeries.get(metric);
    if (known === undefined) {
      problems.push(metric === "" ? "a selector without a metric name" : `metric ${metric}`);
      continue;
    }
    for (const label of known) labelsOfExpr.add(label);
    for (const label of labels) if (!known.has(label)) problems.push(`label ${label} of ${metric}`);
  }
  for (const label of reads.grouping) if (!labelsOfExpr.has(label)) problems.push(`grouping label ${label}`);
  return problems;
}

interface Panel {
  readonly id: number;
  readonly type: string;
  readonly title: string;
  readonly datasource?: { type: string; uid: string };
  readonly gridPos: { h: number; w: number; x: number; y: number };
  readonly targets?: { expr: string; datasource?: { uid: string } }[];
}
interface Dashboard {
  readonly uid: string;
  readonly title: string;
  readonly schemaVersion: number;
  readonly panels: Panel[];
  readonly templating: { list: { name: string; type: string; query: unknown; current?: { value: unknown } }[] };
}
interface Rule {
  readonly alert?: string;
  readonly record?: string;
  readonly expr: string;
  readonly for?: string;
  readonly labels?: Record<string, string>;
  readonly annotations?: Record<string, string>;
}

const dashboard = JSON.parse(await readFile(dashboardPath, "utf8")) as Dashboard;
const rules = (parse(await readFile(alertsPath, "utf8")) as { groups: { name: string; rules: Rule[] }[] }).groups.flatMap((group) => group.rules);
const queries = dashboard.panels.flatMap((panel) => (panel.targets ?? []).map((target) => ({ panel: panel.title, expr: target.expr })));

describe("reading PromQL", () => {
  it("finds metrics, their matchers and the grouping labels, and not functions, operators or variables", () => {
    expect(
      promqlReads('sum by (partner) (rate(funnel_a_total{outcome=~"retry|dead", job=~"$job"}[$__rate_interval])) / on (partner) sum by (partner) (funnel_b offset 1h) > 0.5 and up == 0'),
    ).toEqual({
      selectors: [
        { metric: "funnel_a_total", labels: ["outcome", "job"] },
        { metric: "funnel_b", labels: [] },
        { metric: "up", labels: [] },
      ],
      grouping: ["partner", "partner", "partner"],
    });
  });

  it("reports a metric, a label and a grouping label the registry does not have", () => {
    const series: Series = new Map([["funnel_a_total", new Set(["outcome", ...TARGET_LABELS])]]);
    expect(unknownReads('sum by (outcome) (rate(funnel_a_total{outcome="x"}[5m]))', series)).toEqual([]);
    expect(unknownReads('sum by (partner) (rate(funnel_a_total{partner="x"}[5m])) + funnel_nope', series)).toEqual([
      "label partner of funnel_a_total",
      "metric funnel_nope",
      "grouping label partner",
    ]);
  });
});

describe("deploy/: the Grafana dashboard and the Prometheus alert rules", () => {
  let app: App;
  let series: Series;

  beforeAll(async () => {
    // The embedded Postgres, so that its restart counter is registered too;
    // never restarted, so that a test can watch the process turn unready.
    const { dataDir } = await testStores();
    // Run as root, Postgres runs as its own user, who must be able to enter the data folder.
    await chmod(dataDir, 0o755);
    app = await startTestApp({ env: { DATABASE_URL: "", EMBEDDED_POSTGRES_PORT: String(await freePort()), EMBEDDED_POSTGRES_RESTART_ATTEMPTS: "0" } });
    series = await exposedSeries(app.metrics);
  });
  afterAll(async () => {
    await app?.stop();
  });

  it("the dashboard is a Grafana 11/12 dashboard whose panels take their data source from a variable that defaults to the provisioned one", async () => {
    expect(dashboard.uid).toMatch(/^[\w-]{1,40}$/);
    expect(dashboard.schemaVersion).toBeGreaterThanOrEqual(39);
    const ids = dashboard.panels.map((panel) => panel.id);
    expect(new Set(ids).size).toBe(ids.length);
    const variable = dashboard.templating.list.find((entry) => entry.type === "datasource");
    expect(variable?.query).toBe("prometheus");
    const provisioned = parse(await readFile(join(root, "deploy/grafana/provisioning/datasources/prometheus.yml"), "utf8")) as { datasources: { uid: string }[] };
    expect(variable?.current?.value).toBe(provisioned.datasources[0]?.uid);
    for (const panel of dashboard.panels) {
      expect(panel.gridPos.x + panel.gridPos.w, panel.title).toBeLessThanOrEqual(24);
      if (panel.type === "row") continue;
      expect(panel.datasource?.uid, panel.title).toBe(`\${${variable?.name}}`);
      expect(panel.targets?.length ?? 0, `${panel.title} has no query`).toBeGreaterThan(0);
    }
  });

  it("every metric and label the dashboard queries is one the application exposes", () => {
    expect(series.size).toBeGreaterThan(50);
    const problems = queries.flatMap(({ panel, expr }) => unknownReads(expr, series).map((problem) => `${panel}: ${problem}`));
    for (const variable of dashboard.templating.list) {
      if (variable.type !== "query") continue;
      const query = (variable.query as { query: string }).query;
      const match = /^label_values\((.*),\s*(\w+)\)$/.exec(query);
      expect(match, `variable ${variable.name}`).not.toBeNull();
      // label_values(selector, label) lists the values of a label the selected series carry.
      problems.push(...unknownReads(`count by (${match?.[2]}) (${match?.[1]})`, series).map((problem) => `variable ${variable.name}: ${problem}`));
    }
    expect(problems).toEqual([]);
  });

  it("the dashboard shows the golden signals of every service, queues, analytics, deliveries and ingest quality", () => {
    const read = new Set(queries.flatMap(({ expr }) => promqlReads(expr).selectors.map((selector) => selector.metric)));
    for (const metric of [
      "funnel_rpc_requests_total",
      "funnel_rpc_duration_seconds_bucket",
      "funnel_tracker_hits_total",
      "funnel_seen_mark_requests_total",
      "funnel_http_connections",
      "funnel_jobs",
      "funnel_jobs_oldest_waiting_seconds",
      "funnel_jobs_rescued_total",
      "funnel_analytics_lag_seconds",
      "funnel_analytics_backlog_rows",
      "funnel_postback_attempts_total",
      "funnel_seen_deliveries_total",
      "funnel_ingest_events_total",
      "funnel_ingest_rejected_total",
      "funnel_ingest_seq_gaps_total",
      "funnel_group_commit_splits_total",
      "funnel_embedded_postgres_restarts_total",
      "funnel_postgres_up",
    ]) {
      expect(read, metric).toContain(metric);
    }
  });

  it("every alert has a duration, a severity, a summary and a description, and reads only what the application exposes", () => {
    expect(rules.length).toBeGreaterThan(0);
    const problems: string[] = [];
    for (const rule of rules) {
      expect(rule.alert, `a rule without an alert name: ${rule.expr}`).toBeDefined();
      expect(rule.for, `${rule.alert}: for`).toMatch(/^\d+[smh]$/);
      expect(["warning", "critical"], `${rule.alert}: severity`).toContain(rule.labels?.severity);
      expect(rule.annotations?.summary?.length ?? 0, `${rule.alert}: summary`).toBeGreaterThan(10);
      expect(rule.annotations?.description?.length ?? 0, `${rule.alert}: description`).toBeGreaterThan(40);
      problems.push(...unknownReads(rule.expr, series).map((problem) => `${rule.alert}: ${problem}`));
    }
    expect(problems).toEqual([]);
    const names = rules.map((rule) => rule.alert);
    expect(new Set(names).size).toBe(names.length);
    for (const alert of [
      "FunnelProcessDown",
      "FunnelNotReady",
      "FunnelAnalyticsLagging",
      "FunnelDeadLettersGrowing",
      "FunnelPartnerFailing",
      "FunnelQueueOldestWaiting",
      "FunnelEmbeddedPostgresGaveUp",
      "FunnelGroupCommitSplits",
    ]) {
      expect(names).toContain(alert);
    }
  });

  it("funnel_postgres_up, which the readiness alert reads, turns 0 with /readyz when Postgres stops answering", async () => {
    const sample = async (selector: string) => {
      const line = (await app.metrics.metrics()).split("\n").find((entry) => entry.startsWith(`${selector} `));
      return line === undefined ? undefined : Number(line.slice(selector.length + 1));
    };
    expect(await sample("funnel_postgres_up")).toBe(1);
    expect((await fetch(`${app.url}/readyz`)).status).toBe(200);
    const pid = Number((await readFile(join(app.config.dataDir, "postgres", "cluster", "postmaster.pid"), "utf8")).split("\n")[0]);
    process.kill(pid, "SIGKILL");
    await eventually(async () => ((await sample("funnel_postgres_up")) === 0 ? true : undefined), 15_000, "funnel_postgres_up to be 0");
    expect((await fetch(`${app.url}/readyz`)).status).toBe(503);
  });

  it.skipIf(promtool === undefined)("promtool accepts the rules, the scrape config and the dashboard's queries, and the rules pass their unit tests", async () => {
    const tool = promtool ?? "promtool";
    // The dashboard's queries as recording rules, Grafana's variables filled in, so promtool parses them too.
    const dashboardRules = join(await mkdtemp(join(tmpdir(), "funnel-dashboard-")), "queries.yml");
    const filled = queries.map(({ expr }, index) => ({
      record: `dashboard:query_${index}`,
      expr: expr.replaceAll("$__rate_interval", "1m").replace(/\$\w+/g, ".*"),
    }));
    await writeFile(dashboardRules, stringify({ groups: [{ name: "dashboard", rules: filled }] }));
    const checks = [
      ["check", "rules", alertsPath],
      ["check", "rules", dashboardRules],
      ["check", "config", join(root, "deploy/prometheus/prometheus.yml")],
      ["test", "rules", join(root, "deploy/prometheus/alerts.test.yml")],
    ];
    for (const args of checks) {
      const result = await run(tool, args).then(
        () => "",
        (error: { stdout?: string; stderr?: string }) => `${error.stdout ?? ""}${error.stderr ?? ""}`,
      );
      expect(result, `promtool ${args.join(" ")}`).toBe("");
    }
  });
});
