import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DownloadPolicy } from "../../gen/funnel/postback/v1/partner_pb.js";
import type { App } from "../../services/app.js";
import { createMetricsRegistry } from "../../services/core/metrics.js";
import { createPostbackMetrics } from "../../services/postback/metrics.js";
import { createPartnerDirectory } from "../../services/postback/partner-directory.js";
import { createRecorder, type FunnelEvent, type Recorded } from "../../services/postback/recorder.js";
import { createDeliveryRepository } from "../../services/postback/delivery-repository.js";
import { createEventRepository } from "../../services/postback/event-repository.js";
import { createPartnerRepository } from "../../services/postback/partner-repository.js";
import { parseStag } from "../../services/postback/stag.js";
import { postbackClients, testPartner } from "../support/postback-clients.js";
import { startTestApp } from "../support/stores.js";

/**
 * The recorder's group commit, driven directly so that the groups are known:
 * with one transaction in flight, the first call commits alone and every call
 * made meanwhile waits and commits in the next group.
 */
describe("postback recorder group commit", () => {
  let app: App;

  beforeAll(async () => {
    // No worker: postbacks stay queued, so the tests read what the recorder stored.
    app = await startTestApp({ roles: ["api"] });
    const { partners } = postbackClients(app.url);
    await partners.createPartner({ partner: testPartner("grp", "http://127.0.0.1:9/pb?c={stag_clickID}") });
    await partners.createPartner({ partner: testPartner("once", "http://127.0.0.1:9/pb?c={stag_clickID}", { downloadPolicy: DownloadPolicy.ONCE }) });
  });
  afterAll(async () => {
    await app?.stop();
  });

  /** A recorder of its own, as another API process would have; `groups` reads how many events its groups committed. */
  function recorder() {
    const registry = createMetricsRegistry();
    const deliveries = createDeliveryRepository(app.pool);
    const record = createRecorder({
      pool: app.pool,
      events: createEventRepository(app.pool),
      deliveries,
      directory: createPartnerDirectory(createPartnerRepository(app.pool)),
      jobs: app.jobs,
      analytics: app.analytics,
      metrics: createPostbackMetrics(registry, deliveries),
      registry,
      attributionWindowMs: 3_600_000,
      downloadRedirectUrl: "",
      maxInFlight: 1,
    });
    /** A sample of the recorder's own registry, 0 when absent. */
    const sample = async (line: RegExp): Promise<number> => Number(line.exec(await registry.metrics())?.[1] ?? 0);
    return {
      record,
      /** Groups committed. */
      groups: () => sample(/^funnel_postback_event_group_events_count (\d+)$/m),
      /** Groups committed again in halves. */
      splits: () => sample(/^funnel_group_commit_splits_total\{group="postback_events"\} (\d+)$/m),
    };
  }

  const event = (kind: FunnelEvent["kind"], stag: string, more: Partial<FunnelEvent> = {}): FunnelEvent => ({
    kind,
    stag: parseStag(stag),
    occurredAt: new Date(),
    params: {},
    url: "",
    ip: "",
    userAgent: "",
    userId: "",
    deviceId: "",
    ...more,
  });

  const outcomes = (results: readonly Recorded[]) => results.map((result) => result.outcome).sort();
  const postbacksOf = async (stagPrefix: string) =>
    (await app.pool.query<{ stag: string; event: string }>("SELECT stag, event FROM postbacks WHERE stag LIKE $1 ORDER BY stag, event", [`${stagPrefix}%`])).rows;

  it("queues a repeated stag and event once within one group, and answers every caller", async () => {
    const { record, groups } = recorder();
    const first = record(event("install", "grp_g1-first"));
    const downloadOnce = (i: number) => record(event("download", "once_g1-d", { params: { n: String(i) } }));
    const [installs, auths, onceDownloads, distinct, attributed] = await Promise.all([
      Promise.all(Array.from({ length: 10 }, () => record(event("install", "grp_g1-a")))),
      Promise.all(Array.from({ length: 10 }, (_, i) => record(event("authorization", "grp_g1-a", { userId: `u${i}` })))),
      Promise.all(Array.from({ length: 10 }, (_, i) => downloadOnce(i))),
      Promise.all(Array.from({ length: 10 }, (_, i) => record(event("install", `grp_g1-c${i}`)))),
      // An install arriving with its download: the group stores downloads before it claims.
      Promise.all([record(event("download", "grp_g1-e", { params: { clickID: "ext" } })), record(event("install", "grp_g1-e"))]),
    ]);
    await first;
    // 43 events in a few groups, not one transaction each.
    const committed = await groups();
    expect(committed).toBeGreaterThanOrEqual(2);
    expect(committed).toBeLessThan(10);

    expect(outcomes(installs)).toEqual([...Array<string>(9).fill("duplicate"), "queued"]);
    expect(installs.find((r) => r.outcome === "queued")?.deliveryId).toMatch(/^[0-9a-f-]{36}$/);
    expect(installs.filter((r) => r.outcome === "duplicate").every((r) => r.deliveryId === "")).toBe(true);
    expect(auths.filter((r) => r.outcome === "queued")).toHaveLength(1);
    expect(onceDownloads.filter((r) => r.outcome === "queued")).toHaveLength(1);
    expect(onceDownloads.filter((r) => r.outcome === "duplicate")).toHaveLength(9);
    expect(distinct.every((r) => r.outcome === "queued")).toBe(true);
    expect(new Set(distinct.map((r) => r.deliveryId)).size).toBe(10);
    expect(attributed[1]).toMatchObject({ outcome: "queued", attributed: true });

    expect(await postbacksOf("grp_g1-a")).toEqual([
      { stag: "grp_g1-a", event: "authorization" },
      { stag: "grp_g1-a", event: "install" },
    ]);
    expect(await postbacksOf("once_g1-")).toHaveLength(1);
    const { rows } = await app.pool.query<{ params: Record<string, string> }>("SELECT params FROM postbacks WHERE stag = 'grp_g1-e' AND event = 'install'");
    expect(rows).toEqual([{ params: { clickID: "ext" } }]);
    const jobs = await app.pool.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM pgboss.job WHERE name = 'postback.deliver' AND data->'payload'->>'deliveryId' IN (SELECT id::text FROM postbacks WHERE stag LIKE 'grp_g1-%' OR stag LIKE 'once_g1-%')",
    );
    expect(jobs.rows[0]?.n).toBe(16);
  });

  it("queues once per stag when two processes' groups race for the same stags", async () => {
    const one = recorder();
    const two = recorder();
    const stags = Array.from({ length: 20 }, (_, i) => `grp_g2-${i}`);
    const results = await Promise.all(
      [one, two, one, two].map(({ record }) => Promise.all(stags.map((stag) => record(event("install", stag))))),
    );
    for (const [i, stag] of stags.entries()) {
      const answers = results.map((answer) => answer[i]!.outcome);
      expect(answers.filter((outcome) => outcome === "queued"), stag).toHaveLength(1);
      expect(answers.filter((outcome) => outcome === "duplicate"), stag).toHaveLength(3);
    }
    expect(await postbacksOf("grp_g2-")).toHaveLength(20);
  });

  it("fails only the event whose data Postgres refuses, and stores nothing of it", async () => {
    const { record, splits } = recorder();
    const first = record(event("install", "grp_g3-first"));
    // A NUL reaches Postgres only past the RPC's validation: the recorder must still contain it.
    const poisoned = record(event("authorization", "grp_g3-bad", { userId: "u\u0000" }));
    const honest = Array.from({ length: 8 }, (_, i) => record(event("authorization", `grp_g3-${i}`, { userId: `u${i}` })));
    await expect(poisoned).rejects.toMatchObject({ code: "22021" });
    expect((await Promise.all(honest)).map((r) => r.outcome)).toEqual(Array<string>(8).fill("queued"));
    await first;
    expect(await splits()).toBeGreaterThan(0);
    expect(await postbacksOf("grp_g3-bad")).toEqual([]);
    // Its ledger claim was rolled back with it: the same event, sent clean, is the first.
    expect(await record(event("authorization", "grp_g3-bad", { userId: "u" }))).toMatchObject({ outcome: "queued" });
  });
});
