// `npm run bench -- console [--runs N]`: the console's pages against 10,000 partners and
// 1,000,000 postback delivery attempts (and a week of analytics rows in ClickHouse).
//
// The stores are seeded with generate_series (Postgres) and numbers() (ClickHouse): first
// ClickHouse, in a child process while no server runs (the embedded engine admits one process
// at a time), then Postgres through a running server's embedded database. Each page is the RPCs
// the console sends when it opens (in parallel, as the browser does); a page's time is from the
// first request to the last answer, on loopback. Every page runs --runs times after 3 warm-ups.
import { spawn } from "node:child_process";
import { readFile } from "node:fs/promises";
import { cpus, totalmem } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { durationFromMs, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { createClient } from "@connectrpc/connect";
import pg from "pg";
import { IngestService } from "../gen/funnel/ingest/v1/ingest_pb.js";
import { Metric } from "../gen/funnel/ops/v1/ops_pb.js";
import { DeliveryService, DeliveryStatus } from "../gen/funnel/postback/v1/delivery_pb.js";
import { EventKind, HttpMethod, PartnerService } from "../gen/funnel/postback/v1/partner_pb.js";
import { SeenAdminService } from "../gen/funnel/seen/v1/admin_pb.js";
import { TrackerService } from "../gen/funnel/tracker/v1/tracker_pb.js";
import { openClickHouseTarget } from "../services/core/clickhouse.js";
import { freePort, percentile, printTable, startBenchServer } from "./support.js";

const PARTNERS = 10_000;
/** Postbacks with 1 to 4 attempts each: 2.5 on average, 1,000,000 attempts in all. */
const POSTBACKS = 400_000;
const SEEN_DELIVERIES = 200_000;
const CLICKHOUSE_ROWS = 1_000_000;
const WEEK_SECONDS = 7 * 86_400;
const root = new URL("..", import.meta.url).pathname;

/** Fills the ClickHouse tables in `dir` (made by a server start) with a week of rows; runs in a child process. */
async function seedClickHouse(dir: string): Promise<void> {
  const clickhouse = await openClickHouseTarget({ url: undefined, database: "funnel", embeddedPath: join(dir, "clickhouse") });
  const ago = `now64(3) - toIntervalMillisecond(number * ${Math.floor((WEEK_SECONDS * 1000) / CLICKHOUSE_ROWS)})`;
  const statements = [
    `INSERT INTO funnel.postback_deliveries SELECT generateUUIDv4(), 1 + number % 4, concat('partner-', leftPad(toString(number % ${PARTNERS} + 1), 5, '0')),
       ['download', 'install', 'authorization'][number % 3 + 1], 'p_c', 'c', 'GET', 'https://partner.example/p', if(number % 20 = 0, 500, 200), 'ok', 120.5,
       if(number % 20 = 0, 'HTTP 500', ''), multiIf(number % 20 = 0, 'dead', number % 5 = 0, 'retry', 'delivered'), ${ago} FROM numbers(${CLICKHOUSE_ROWS})`,
    `INSERT INTO funnel.postback_events (event, stag, partner_id, click_id, outcome, delivery_id, attributed, params, user_id, device_id, url, ip, user_agent, occurred_at, recorded_at)
       SELECT ['download', 'install', 'authorization'][number % 3 + 1], 'p_c', concat('partner-', leftPad(toString(number % ${PARTNERS} + 1), 5, '0')), 'c',
       if(number % 10 = 0, 'duplicate', 'queued'), '', 1, map(), '', '', '', '', '', ${ago}, ${ago} FROM numbers(${CLICKHOUSE_ROWS / 2})`,
    `INSERT INTO funnel.seen_delivery_attempts SELECT generateUUIDv4(), 1, ['bench-api', 'bench-other'][number % 2 + 1], 'promo', toString(number), 'http://127.0.0.1:9/',
       200, '', 30, '', if(number % 50 = 0, 'retry', 'delivered'), ${ago} FROM numbers(${CLICKHOUSE_ROWS / 5})`,
    `INSERT INTO funnel.tracker_events SELECT toDate(${ago}), ${ago}, generateUUIDv4(), toUUID('00000000-0000-4000-8000-00000000000' || toString(number % 10)),
       toIPv6('::ffff:127.0.0.1'), generateUUIDv4(), 'Bench/1.0', 'http://example.test/', 'bench' FROM numbers(${CLICKHOUSE_ROWS})`,
    `INSERT INTO funnel.element_click (event_id, user_id, timestamp, client_time, session_id, seq, element_type, page_type)
       SELECT generateUUIDv4(), toString(number % 5000), ${ago}, NULL, '', NULL, 'trailer', 'promotion' FROM numbers(${CLICKHOUSE_ROWS})`,
  ];
  for (const query of statements) await clickhouse.client.command({ query });
  await clickhouse.close();
}

/** Fills Postgres: partners, postbacks with their attempts, Seen integrations and api deliveries. */
async function seedPostgres(url: string, config: unknown): Promise<void> {
  const pool = new pg.Pool({ connectionString: url, max: 1 });
  const statements: [string, unknown[]][] = [
    [
      `INSERT INTO postback_partners (id, name, enabled, config)
       SELECT 'partner-' || lpad(i::text, 5, '0'), 'Partner number ' || i, i % 10 <> 0, $1::jsonb FROM generate_series(1, ${PARTNERS}) i
       ON CONFLICT (id) DO NOTHING`,
      [JSON.stringify(config)],
    ],
    // A few partners get most postbacks, as in life: random()^3 leans to the low numbers.
    [
      `INSERT INTO postbacks (id, partner_id, event, stag, click_id, params, occurred_at, status, attempts, last_http_status, last_error, created_at, updated_at)
       SELECT gen_random_uuid(), p, ev, p || '_c' || i, 'c' || i, '{"clickID":"x"}'::jsonb, t,
              CASE WHEN i % 20 = 0 THEN 'dead' WHEN i % 20 = 1 THEN 'retrying' WHEN i % 97 = 2 THEN 'cancelled' ELSE 'delivered' END,
              1 + i % 4, CASE WHEN i % 20 < 2 THEN 500 ELSE 200 END, CASE WHEN i % 20 < 2 THEN 'HTTP 500' ELSE NULL END, t, t
         FROM (SELECT i, 'partner-' || lpad((1 + floor(${PARTNERS} * random() ^ 3))::int::text, 5, '0') AS p,
                      (ARRAY['download', 'install', 'authorization'])[i % 3 + 1] AS ev,
                      now() - (i * 2592000.0 / ${POSTBACKS}) * interval '1 second' AS t
                 FROM generate_series(1, ${POSTBACKS}) i) s`,
      [],
    ],
    [
      `INSERT INTO postback_deliveries (delivery_id, attempt, partner_id, event, stag, click_id, method, url, http_status, response_body, duration_ms, error, outcome, attempted_at)
       SELECT p.id, a, p.partner_id, p.event, p.stag, p.click_id, 'GET', 'https://partner.example/p?c=' || p.click_id,
              CASE WHEN a < p.attempts OR p.status <> 'delivered' THEN 500 ELSE 200 END, '\\x6f6b'::bytea, 120.5,
              CASE WHEN a < p.attempts OR p.status <> 'delivered' THEN 'HTTP 500' ELSE '' END,
              CASE WHEN a < p.attempts THEN 'retry' WHEN p.status = 'delivered' THEN 'delivered' WHEN p.status = 'dead' THEN 'dead' ELSE 'retry' END,
              p.created_at + a * interval '10 seconds'
         FROM postbacks p CROSS JOIN LATERAL generate_series(1, p.attempts) a`,
      [],
    ],
    [
      `INSERT INTO seen_deliveries (id, mark_id, integration, tag, item_id, body, status, attempts, give_up_at, last_error, created_at, finished_at)
       SELECT gen_random_uuid(), gen_random_uuid(), CASE WHEN i % 2 = 0 THEN 'bench-api' ELSE 'bench-other' END, 'promo', 'item-' || i, '{}'::jsonb,
              CASE WHEN i % 50 = 0 THEN 'dead' WHEN i % 50 = 1 THEN 'pending' ELSE 'delivered' END, 1 + i % 3, now() + interval '7 days',
              CASE WHEN i % 50 = 0 THEN 'HTTP 500' ELSE '' END, now() - (i * 604800.0 / ${SEEN_DELIVERIES}) * interval '1 second',
              CASE WHEN i % 50 = 1 THEN NULL ELSE now() END
         FROM generate_series(1, ${SEEN_DELIVERIES}) i`,
      [],
    ],
    ["ANALYZE", []],
  ];
  for (const [text, values] of statements) {
    const started = performance.now();
    await pool.query(text, values);
    console.log(`  ${text.trim().split(/\s+/).slice(0, 3).join(" ")} … ${((performance.now() - started) / 1000).toFixed(1)} s`);
  }
  await pool.end();
}

export async function run(args: readonly string[] = []): Promise<void> {
  const { values } = parseArgs({ args: [...args], options: { runs: { type: "string", default: "30" }, "seed-clickhouse": { type: "string" } } });
  if (values["seed-clickhouse"] !== undefined) {
    await seedClickHouse(values["seed-clickhouse"]);
    return;
  }
  const runs = Number(values.runs);
  console.log(`console bench: ${PARTNERS} partners, ${POSTBACKS} postbacks with 1,000,000 attempts, ${SEEN_DELIVERIES} Seen deliveries, ${CLICKHOUSE_ROWS} ClickHouse rows per table; ${cpus().length} cores, ${Math.round(totalmem() / 2 ** 30)} GiB`);

  // Migrations first (a server start), then ClickHouse in a child process while no server runs.
  const postgresPort = String(await freePort());
  const first = await startBenchServer({ EMBEDDED_POSTGRES_PORT: postgresPort });
  const dir = first.dir;
  await (await first.stopAndOpenClickHouse()).close();
  let started = performance.now();
  await new Promise<void>((resolve, reject) => {
    const child = spawn(process.execPath, ["--import", "tsx", join(root, "bench/run.ts"), "console", "--seed-clickhouse", dir], { stdio: "inherit" });
    child.once("exit", (code) => (code === 0 ? resolve() : reject(new Error(`seeding ClickHouse exited with ${code}`))));
  });
  console.log(`ClickHouse seeded in ${((performance.now() - started) / 1000).toFixed(1)} s`);

  const server = await startBenchServer({ EMBEDDED_POSTGRES_PORT: postgresPort }, dir);
  try {
    const partners = createClient(PartnerService, server.transport);
    const event = { enabled: true, urlTemplate: "https://partner.example/p?c={stag_clickID}", method: HttpMethod.GET };
    const sample = await partners.createPartner({ partner: { id: "sample", name: "Sample", enabled: true, install: event, download: event, authorization: event } });
    const seen = createClient(SeenAdminService, server.transport);
    for (const name of ["bench-api", "bench-other"]) {
      await seen.createIntegration({ integration: { name, tags: ["promo"], enabled: false, delivery: { case: "api", value: { url: "http://127.0.0.1:9/" } } } });
    }
    await seen.createIntegration({ integration: { name: "bench-feed", tags: ["promo"], enabled: true, delivery: { case: "topic", value: { topic: "bench.seen" } } } });
    const password = (await readFile(join(dir, "postgres", "password"), "utf8")).trim();
    const postgresUrl = `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${postgresPort}/funnel`;
    const pool = new pg.Pool({ connectionString: postgresUrl, max: 1 });
    const { rows } = await pool.query<{ config: unknown }>("SELECT config FROM postback_partners WHERE id = 'sample'");
    await pool.end();
    started = performance.now();
    console.log("seeding Postgres:");
    await seedPostgres(postgresUrl, rows[0]?.config ?? sample.partner);

    const deliveries = createClient(DeliveryService, server.transport);
    const trackers = createClient(TrackerService, server.transport);
    const ingest = createClient(IngestService, server.transport);
    const now = Date.now();
    const ago = (ms: number) => timestampFromDate(new Date(now - ms));
    const hour = 3_600_000;
    const day = 24 * hour;
    const overview = (range: number, step: number) => () => [
      server.ops.getStatus({}),
      ...[Metric.INGEST_EVENTS, Metric.POSTBACK_ATTEMPTS, Metric.SEEN_ATTEMPTS].map((metric) =>
        server.ops.getTimeSeries({ metric, from: ago(range), to: timestampFromDate(new Date(now)), step: durationFromMs(step) }),
      ),
    ];
    const firstDeliveries = await deliveries.listDeliveries({ limit: 50 });
    const someId = firstDeliveries.deliveries[0]?.id ?? "";
    const seenPage = await seen.listDeliveries({ limit: 50 });
    // Page tokens are opaque: reach the 100th page of 50 partners by walking the list once, untimed.
    let partnersPage100 = "";
    for (const pageSize of [1000, 1000, 1000, 1000, 950]) partnersPage100 = (await partners.listPartners({ pageSize, pageToken: partnersPage100 })).nextPageToken;
    const pages: [string, () => Promise<unknown>[]][] = [
      ["overview, last hour by minute", overview(hour, 60_000)],
      ["overview, last day by 15 minutes", overview(day, 900_000)],
      ["overview, last week by hour", overview(7 * day, hour)],
      ["partners, first page", () => [partners.listPartners({ pageSize: 50 })]],
      ["partners, search", () => [partners.listPartners({ query: "number 12", pageSize: 50 })]],
      ["partners, page 100", () => [partners.listPartners({ pageSize: 50, pageToken: partnersPage100 })]],
      ["deliveries, newest", () => [deliveries.listDeliveries({ limit: 50 })]],
      ["deliveries, next page", () => [deliveries.listDeliveries({ limit: 50, pageToken: firstDeliveries.nextPageToken })]],
      ["deliveries, busiest partner", () => [deliveries.listDeliveries({ filter: { partnerId: "partner-00001" }, limit: 50 })]],
      ["deliveries, small partner", () => [deliveries.listDeliveries({ filter: { partnerId: "partner-09999" }, limit: 50 })]],
      ["deliveries, dead", () => [deliveries.listDeliveries({ filter: { status: DeliveryStatus.DEAD }, limit: 50 })]],
      ["deliveries, installs of a day", () => [deliveries.listDeliveries({ filter: { event: EventKind.INSTALL, from: ago(2 * day), to: ago(day) }, limit: 50 })]],
      ["deliveries, one partner's dead", () => [deliveries.listDeliveries({ filter: { partnerId: "partner-00100", status: DeliveryStatus.DEAD }, limit: 50 })]],
      ["delivery with attempt timeline", () => [deliveries.getDelivery({ id: someId })]],
      ["trackers", () => [trackers.listTrackers({ pageSize: 50 }), server.ops.getTimeSeries({ metric: Metric.TRACKER_HITS, from: ago(7 * day), step: durationFromMs(day) })]],
      ["jobs", () => [server.ops.getStatus({}), server.ops.listJobs({ state: "failed", limit: 50 })]],
      [
        "ingest quality",
        () => [
          ingest.getQuality({ from: new Date(now - 7 * day).toISOString().slice(0, 10), to: new Date(now).toISOString().slice(0, 10) }),
          server.ops.getTimeSeries({ metric: Metric.INGEST_REJECTED, from: ago(7 * day), step: durationFromMs(day) }),
        ],
      ],
      [
        "seen",
        () => [
          seen.listIntegrations({}),
          seen.listDeliveries({ limit: 50 }),
          seen.listDeliveries({ status: "dead", limit: 50 }),
          seen.listDeliveries({ integration: "bench-api", limit: 50, pageToken: seenPage.nextPageToken }),
          seen.listTopics({}),
          seen.listTags({}),
        ],
      ],
    ];
    const results: { page: string; p50: number; p95: number; max: number; slowest: string }[] = [];
    for (const [page, calls] of pages) {
      const times: number[] = [];
      // Each call's own time, by its place in the page, to name the slowest.
      const callTimes: number[][] = [];
      for (let i = 0; i < runs + 3; i += 1) {
        const begin = performance.now();
        await Promise.all(
          calls().map((call, n) =>
            call.then(() => {
              if (i >= 3) (callTimes[n] ??= []).push(performance.now() - begin);
            }),
          ),
        );
        if (i >= 3) times.push(performance.now() - begin);
      }
      times.sort((a, b) => a - b);
      const callP50 = callTimes.map((list) => percentile(list.sort((a, b) => a - b), 50));
      const worst = callP50.indexOf(Math.max(...callP50));
      results.push({ page, p50: percentile(times, 50), p95: percentile(times, 95), max: times.at(-1) ?? 0, slowest: callP50.length > 1 ? `call ${worst + 1} of ${callP50.length}: p50 ${callP50[worst]?.toFixed(1)} ms` : "" });
    }
    printTable([["page", "p50 ms", "p95 ms", "max ms", "slowest call"], ...results.map((r) => [r.page, r.p50.toFixed(1), r.p95.toFixed(1), r.max.toFixed(1), r.slowest])]);
    const slowest = results.reduce((a, b) => (b.p95 > a.p95 ? b : a));
    console.log(`slowest page: ${slowest.page}: p50 ${slowest.p50.toFixed(1)} ms, p95 ${slowest.p95.toFixed(1)} ms (target p95 <= 200 ms)`);
  } finally {
    await server.remove();
  }
}
