import { SeenAdminService } from "../../gen/funnel/seen/v1/admin_pb.js";
import { SeenFeedService } from "../../gen/funnel/seen/v1/feed_pb.js";
import { SeenService } from "../../gen/funnel/seen/v1/seen_pb.js";
import { TrustedProxies } from "../core/client-address.js";
import { startDeliveries } from "../core/delivery/index.js";
import type { QueueDefinition } from "../core/jobs/queue.js";
import type { ServiceModule, StartedModule } from "../module-contract.js";
import { createSeenAdminService } from "./admin-service.js";
import { BODY_PREFIX_BYTES, USER_AGENT } from "./api-request.js";
import { SeenCleanup } from "./cleanup.js";
import { createSeenDeliveries } from "./deliveries.js";
import { createFeedService, TopicWaker } from "./feed.js";
import { createCallerIdentity } from "./identity.js";
import { createMarker } from "./marker.js";
import { createSeenMetrics } from "./metrics.js";
import { deliverQueue } from "./queue.js";
import { createSeenRoute, SEEN_PATH } from "./route.js";
import { createSeenService } from "./service.js";

/** How often a subscriber re-reads its topic when no notification came. */
const FEED_POLL_MS = 1_000;

/**
 * The Seen service: marks in (RPC and `POST /v1/seen`, api role), the topic
 * feed (api role), and the worker that delivers marks to api integrations and
 * forgets what is past its retention (worker role).
 */
export const seenModule: ServiceModule = {
  name: "seen",
  queues: [deliverQueue as QueueDefinition<never>],
  async start(ctx): Promise<StartedModule> {
    const { config, log } = ctx;
    const { pool } = ctx;
    const metrics = createSeenMetrics(ctx.metrics, pool);
    const defaultRetentionSeconds = config.seenDefaultRetentionSeconds;
    const stops: (() => Promise<void>)[] = [];
    const stop = async (): Promise<void> => {
      for (const step of stops.reverse()) await step();
    };

    if (ctx.roles.includes("worker")) {
      const deliveries = await startDeliveries({
        kind: createSeenDeliveries({ pool, analytics: ctx.analytics, metrics }),
        queue: deliverQueue,
        group: "seen_attempts",
        jobs: ctx.jobs,
        metrics: ctx.metrics,
        log,
        concurrency: config.seenDeliveryConcurrency,
        shutdownTimeoutMs: config.shutdownTimeoutMs,
        outbound: { allowPrivate: config.seenAllowPrivate, allowSetting: "SEEN_ALLOW_PRIVATE", userAgent: USER_AGENT, bodyPrefixBytes: BODY_PREFIX_BYTES },
      });
      const cleanup = new SeenCleanup({
        pool,
        log,
        defaultRetentionSeconds,
        historyMs: config.seenHistorySeconds * 1000,
        intervalMs: config.jobsMaintenanceSeconds * 1000,
      });
      cleanup.start();
      stops.push(async () => {
        await cleanup.stop();
        await deliveries.stop();
      });
    }

    if (!ctx.roles.includes("api")) return { stop };

    const serviceTokens = [ctx.adminToken, ...(config.seenServiceToken !== undefined ? [config.seenServiceToken] : [])];
    const caller = createCallerIdentity({
      resolver: ctx.identity,
      proxies: new TrustedProxies(config.trustedProxies),
      claims: config.seenIdentityClaims,
    });
    const mark = createMarker({ pool, jobs: ctx.jobs, metrics, registry: ctx.metrics, defaultRetentionSeconds });
    stops.push(() => mark.flush());
    const waker = new TopicWaker({ url: ctx.postgresUrl, log });
    await waker.start();
    stops.push(() => waker.stop());
    const seen = createSeenService({ pool, mark, caller, metrics, serviceTokens, defaultRetentionSeconds });
    const admin = createSeenAdminService({ pool, jobs: ctx.jobs, defaultRetentionSeconds });
    const feed = createFeedService({ pool, waker, metrics, serviceTokens, pollMs: FEED_POLL_MS });
    return {
      stop,
      rpc(router) {
        router.service(SeenService, seen);
        router.service(SeenAdminService, admin);
        router.service(SeenFeedService, feed);
      },
      routes: new Map([[SEEN_PATH, createSeenRoute({ mark, caller, metrics, log })]]),
      adminOnly: [SeenAdminService.typeName],
      corsPaths: [SEEN_PATH, ...["MarkSeen", "IsSeen", "ListSeen"].map((method) => `/${SeenService.typeName}/${method}`)],
      closing: () => waker.close(),
    };
  },
};
