import { randomUUID } from "node:crypto";
import { chmod, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import pg from "pg";
import { freePort } from "../bench/support.js";
import { openClickHouseTarget } from "../services/core/clickhouse.js";
import { KINDS, type Call, type Kind, MixedLoad } from "./load.js";
import { Peer } from "./peers.js";
import { ServerProcess } from "./server.js";

/** The faults the suite injects, one phase each, in this order. */
export const FAULTS = ["sigkill", "postgres-kill", "sigterm", "partner-faults"] as const;
export type Fault = (typeof FAULTS)[number];

const DESCRIPTIONS: Record<Fault, string> = {
  sigkill: "SIGKILL of the server's process group, restarted at once",
  "postgres-kill": "SIGKILL of the embedded Postgres (the server heals it)",
  sigterm: "SIGTERM mid-load, restarted after the drain",
  "partner-faults": "partner fails 30 % (503) and times out 10 %",
};

export interface ChaosOptions {
  /** Seconds of load per phase; the fault strikes a third of the way in. */
  readonly phaseSeconds: number;
  /** Which faults to run (all by default). */
  readonly faults?: readonly Fault[];
  /** Longest wait for every acknowledged postback and mark to reach its peer after the last phase. */
  readonly settleSeconds?: number;
  readonly log?: (line: string) => void;
}

/** What one kind of call came to in one phase. */
export interface KindOutcome {
  readonly kind: Kind;
  /** Calls the server acknowledged (2xx). */
  readonly acknowledged: number;
  /** Acknowledged calls found exactly once where they must be. */
  readonly storedOnce: number;
  /** Acknowledged calls not found. */
  readonly lost: number;
  /** Calls (acknowledged or not) with a row more than once in ClickHouse. */
  readonly duplicates: number;
  /** Calls whose postback or mark the peer answered 2xx more than once (sent again after a crash cut the record of the first answer). */
  readonly redelivered: number;
  /** Calls not acknowledged that were stored anyway (allowed: the answer was lost, not the work). */
  readonly unacknowledgedStored: number;
}

export interface PhaseOutcome {
  readonly fault: Fault;
  readonly description: string;
  /** Milliseconds from the fault until every kind of call succeeded again (partner faults: from the end of the fault until every postback was delivered). */
  readonly recoverMs: number;
  /** Milliseconds from the fault until every postback acknowledged before it had reached the partner (in-flight deliveries). */
  readonly deliveriesRecoverMs: number | undefined;
  readonly kinds: readonly KindOutcome[];
}

export interface ChaosReport {
  readonly phases: readonly PhaseOutcome[];
  /** True when nothing acknowledged was lost or duplicated in any phase. */
  readonly clean: boolean;
}

const CALLERS: Record<Kind, number> = { ingest: 4, seen: 2, install: 2, track: 2 };
const ADMIN_TOKEN = `chaos-admin-${randomUUID()}`;

async function until<T>(check: () => Promise<T | undefined>, timeoutMs: number, what: string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(100);
  }
}

async function rpc(url: string, path: string, body: unknown): Promise<unknown> {
  const res = await fetch(`${url}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${ADMIN_TOKEN}` },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${path}: HTTP ${res.status} ${text}`);
  return JSON.parse(text) as unknown;
}

/**
 * The first moment after `since` at which a call of every kind that failed
 * after `since` was acknowledged again; `calls` are one phase's.
 */
function recoveredAt(calls: readonly Call[], since: number): number {
  let latest = since;
  for (const kind of KINDS) {
    const after = calls.filter((call) => call.kind === kind && call.sentAt >= since);
    const failures = after.filter((call) => !call.acked);
    if (failures.length === 0) continue;
    const lastFailure = Math.max(...failures.map((call) => call.sentAt));
    const success = after.find((call) => call.acked && call.sentAt > lastFailure);
    latest = Math.max(latest, success?.sentAt ?? Number.POSITIVE_INFINITY);
  }
  return latest;
}

/**
 * Runs a mixed load against a Funnel server in its own process and, one
 * phase at a time, injects each fault; then reconciles every call the
 * server acknowledged against what was stored: ClickHouse rows (ingest,
 * `/track`, postback events and attempts, Seen delivery attempts), Postgres
 * (Seen marks) and the peers' logs (the partner must get each install once,
 * the Seen consumer each mark at least once). Everything runs on 127.0.0.1
 * in a temporary folder that is removed at the end.
 */
export async function runChaos(options: ChaosOptions): Promise<ChaosReport> {
  const log = options.log ?? (() => undefined);
  const faults = options.faults ?? FAULTS;
  const dir = await mkdtemp(join(tmpdir(), "funnel-chaos-"));
  // As root, the embedded Postgres runs as the postgres user, who must reach its folder.
  await chmod(dir, 0o755);
  const partner = await new Peer((url) => url.searchParams.get("s") ?? "").start();
  const consumer = await new Peer((_url, body) => {
    const { id } = JSON.parse(body) as { id?: unknown };
    return typeof id === "string" ? id : "";
  }).start();
  const server = new ServerProcess(dir, await freePort(), {
    FUNNEL_DATA_DIR: dir,
    HOST: "127.0.0.1",
    LOG_LEVEL: "warn",
    FUNNEL_ADMIN_TOKEN: ADMIN_TOKEN,
    EMBEDDED_POSTGRES_PORT: String(await freePort()),
    // Not the default 9464, which a server started by hand may hold.
    METRICS_PORT: String(await freePort()),
    POSTBACK_ALLOW_PRIVATE: "true",
    SEEN_ALLOW_PRIVATE: "true",
    SHUTDOWN_TIMEOUT_SECONDS: "10",
    JOBS_HEARTBEAT_SECONDS: "2",
    JOBS_HEARTBEAT_STALE_SECONDS: "10",
  });
  let load: MixedLoad | undefined;
  const phases: { fault: Fault; at: number; healedAt: number; inFlight: Call[] }[] = [];
  try {
    log(`starting the server in ${dir}`);
    await server.start();
    const tracker = (await rpc(server.url, "/funnel.tracker.v1.TrackerService/CreateTracker", { value: "chaos" })) as { tracker: { uuid: string } };
    await rpc(server.url, "/funnel.postback.v1.PartnerService/CreatePartner", {
      partner: {
        id: "chaos",
        name: "chaos",
        enabled: true,
        install: { enabled: true, method: "HTTP_METHOD_GET", urlTemplate: `${partner.url}/pb?s={stag}` },
        timeout: "1s",
        retry: { maxAttempts: 100, initialDelay: "0.1s", maxDelay: "1s" },
      },
    });
    await rpc(server.url, "/funnel.seen.v1.SeenAdminService/CreateIntegration", {
      integration: {
        name: "chaos",
        tags: ["chaos"],
        enabled: true,
        api: { url: `${consumer.url}/seen`, timeout: "1s", initialBackoff: "0.1s", maxBackoff: "1s" },
      },
    });
    const mixed = new MixedLoad({ url: server.url, adminToken: ADMIN_TOKEN, trackerId: tracker.tracker.uuid, seenTag: "chaos", callers: CALLERS, pauseMs: 10 });
    load = mixed;
    mixed.phase = "warm-up";
    mixed.start();
    await sleep(1_000);

    for (const fault of faults) {
      mixed.phase = fault;
      log(`phase ${fault}: ${DESCRIPTIONS[fault]}`);
      await sleep((options.phaseSeconds * 1000) / 3);
      if (fault === "sigkill") {
        // The partner answers slowly for a moment, so that the kill catches postbacks in flight.
        partner.delayMs = 2_000;
        await sleep(1_000);
      }
      const at = Date.now();
      const inFlight = mixed.calls.filter((call) => call.kind === "install" && call.acked && !partner.succeeded.has(`chaos_${call.key}`));
      let healedAt = at;
      switch (fault) {
        case "sigkill":
          await server.killGroup();
          partner.delayMs = 0;
          await server.start();
          break;
        case "postgres-kill":
          process.kill(await server.postmasterPid(), "SIGKILL");
          break;
        case "sigterm":
          await server.terminate();
          await server.start();
          break;
        case "partner-faults":
          partner.faults = { failRate: 0.3, hangRate: 0.1 };
          await sleep((options.phaseSeconds * 1000) / 3);
          partner.heal();
          healedAt = Date.now();
          break;
      }
      phases.push({ fault, at, healedAt, inFlight });
      await sleep((options.phaseSeconds * 1000 * 2) / 3 - (Date.now() - at));
    }
    await mixed.stop();

    log("settling: waiting for every acknowledged postback and mark to reach its peer");
    const settle = (options.settleSeconds ?? 120) * 1000;
    const installs = mixed.calls.filter((call) => call.kind === "install" && call.acked);
    const marks = mixed.calls.filter((call) => call.kind === "seen" && call.acked);
    await until(async () => (installs.every((call) => partner.succeeded.has(`chaos_${call.key}`)) ? true : undefined), settle, "the partner to get every acknowledged install").catch((error: unknown) => log(String(error)));
    await until(async () => (marks.every((call) => consumer.succeeded.has(call.key)) ? true : undefined), settle, "the consumer to get every acknowledged mark").catch((error: unknown) => log(String(error)));
    await until(
      async () => {
        const status = (await rpc(server.url, "/funnel.ops.v1.OpsService/GetStatus", {})) as { analytics?: { backlogRows?: string } };
        return Number(status.analytics?.backlogRows ?? 0) === 0 ? true : undefined;
      },
      settle,
      "the analytics stream to drain",
    );

    const pool = new pg.Pool({ connectionString: await server.postgresUrl(), max: 2 });
    const storedMarks = new Set(
      (await pool.query<{ item_id: string }>("SELECT item_id FROM seen_marks WHERE tag = 'chaos'")).rows.map((row) => row.item_id),
    );
    await pool.end();

    log("stopping the server to read its ClickHouse");
    await server.terminate();
    const clickhouse = await openClickHouseTarget({ url: undefined, database: "funnel", embeddedPath: join(dir, "clickhouse") });
    const counts = async (sql: string): Promise<Map<string, number>> => {
      const rows = await (await clickhouse.client.query({ query: sql, format: "JSONEachRow" })).json<{ key: string; n: string }>();
      return new Map(rows.map((row) => [row.key, Number(row.n)]));
    };
    const stored: Record<Kind, Map<string, number>> = {
      ingest: await counts("SELECT toString(event_id) AS key, count() AS n FROM funnel.element_click WHERE element_type = 'chaos' GROUP BY key"),
      track: await counts(
        `SELECT extract(url, 'n=([^&]+)') AS key, count() AS n FROM funnel.tracker_events WHERE tracker_id = '${tracker.tracker.uuid}' GROUP BY key`,
      ),
      install: await counts("SELECT substring(stag, 7) AS key, count() AS n FROM funnel.postback_events WHERE partner_id = 'chaos' AND event = 'install' GROUP BY key"),
      seen: await counts("SELECT item_id AS key, countIf(outcome = 'delivered') AS n FROM funnel.seen_delivery_attempts WHERE tag = 'chaos' GROUP BY key"),
    };
    // Attempt rows are keyed by (delivery, attempt): any repeat is a duplicate in ClickHouse.
    const repeatedAttempts = {
      install: await counts(
        "SELECT stag AS key, count() - uniqExact(delivery_id, attempt) AS n FROM funnel.postback_deliveries WHERE partner_id = 'chaos' GROUP BY key HAVING n > 0",
      ),
      seen: await counts(
        "SELECT item_id AS key, count() - uniqExact(delivery_id, attempt) AS n FROM funnel.seen_delivery_attempts WHERE tag = 'chaos' GROUP BY key HAVING n > 0",
      ),
    };
    await clickhouse.close();

    const outcomes: PhaseOutcome[] = phases.map(({ fault, at, healedAt, inFlight }) => {
      const kinds = KINDS.map((kind): KindOutcome => {
        const calls = mixed.of(kind, fault);
        const acked = calls.filter((call) => call.acked);
        const found = (call: Call): number => {
          if (kind === "seen") return storedMarks.has(call.key) ? Math.min(1, stored.seen.get(call.key) ?? 0) : 0;
          return stored[kind].get(call.key) ?? 0;
        };
        // In ClickHouse, a row twice: an event or an attempt row (keyed by delivery and attempt) written again.
        const duplicated = (call: Call): boolean => {
          if (kind === "install") return (stored.install.get(call.key) ?? 0) > 1 || repeatedAttempts.install.has(`chaos_${call.key}`);
          if (kind === "seen") return repeatedAttempts.seen.has(call.key);
          return found(call) > 1;
        };
        // A peer that answered 2xx more than once for one call: a delivery sent again because the process that
        // sent it died before it could record the answer. Delivery is at least once: a partner that must not count
        // it twice deduplicates on `{delivery_id}`, a consumer on the `Idempotency-Key` header.
        const peer = kind === "install" ? partner : kind === "seen" ? consumer : undefined;
        const peerKey = (call: Call) => (kind === "install" ? `chaos_${call.key}` : call.key);
        return {
          kind,
          acknowledged: acked.length,
          storedOnce: acked.filter((call) => found(call) === 1).length,
          lost: acked.filter((call) => found(call) === 0).length,
          duplicates: calls.filter(duplicated).length,
          redelivered: peer === undefined ? 0 : calls.filter((call) => (peer.succeeded.get(peerKey(call)) ?? 0) > 1).length,
          unacknowledgedStored: calls.filter((call) => !call.acked && found(call) > 0).length,
        };
      });
      const delivered = (call: Call) => partner.firstSuccessAt.get(`chaos_${call.key}`) ?? Number.POSITIVE_INFINITY;
      const recoverMs =
        fault === "partner-faults"
          ? Math.max(0, ...mixed.of("install", fault).filter((call) => call.acked).map(delivered)) - healedAt
          : recoveredAt(
              mixed.calls.filter((call) => call.phase === fault),
              at,
            ) - at;
      return {
        fault,
        description: DESCRIPTIONS[fault],
        recoverMs,
        deliveriesRecoverMs: inFlight.length > 0 ? Math.max(...inFlight.map(delivered)) - at : undefined,
        kinds,
      };
    });
    const clean = outcomes.every((phase) => phase.kinds.every((kind) => kind.lost === 0 && kind.duplicates === 0));
    return { phases: outcomes, clean };
  } finally {
    await load?.close();
    await server.killGroup().catch(() => undefined);
    const postmaster = await server.postmasterPid().catch(() => undefined);
    if (postmaster !== undefined) {
      try {
        process.kill(postmaster, "SIGKILL");
      } catch {
        // already gone
      }
    }
    await partner.stop();
    await consumer.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

/** The report as an aligned table, one row per phase and kind. */
export function formatReport(report: ChaosReport): string {
  const rows: string[][] = [["fault", "kind", "acknowledged", "stored once", "lost", "duplicates in ClickHouse", "delivered twice", "unacked but stored", "recovered in", "in-flight postbacks in"]];
  const seconds = (ms: number | undefined) => (ms === undefined ? "-" : Number.isFinite(ms) ? `${(ms / 1000).toFixed(1)} s` : "never");
  for (const phase of report.phases) {
    for (const [i, kind] of phase.kinds.entries()) {
      rows.push([
        i === 0 ? phase.fault : "",
        kind.kind,
        String(kind.acknowledged),
        String(kind.storedOnce),
        String(kind.lost),
        String(kind.duplicates),
        kind.kind === "install" || kind.kind === "seen" ? String(kind.redelivered) : "-",
        String(kind.unacknowledgedStored),
        i === 0 ? seconds(phase.recoverMs) : "",
        i === 0 ? seconds(phase.deliveriesRecoverMs) : "",
      ]);
    }
  }
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((row) => row[c]!.length)));
  return rows.map((row) => row.map((cell, c) => cell.padEnd(widths[c]!)).join("  ").trimEnd()).join("\n");
}
