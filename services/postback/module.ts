import { DeliveryService } from "../../gen/funnel/postback/v1/delivery_pb.js";
import { PartnerService } from "../../gen/funnel/postback/v1/partner_pb.js";
import { PostbackService } from "../../gen/funnel/postback/v1/postback_pb.js";
import { TrustedProxies } from "../core/client-address.js";
import type { HttpRoute } from "../core/http-server.js";
import { startDeliveries } from "../core/delivery/index.js";
import { runPeriodically } from "../core/periodic.js";
import type { QueueDefinition } from "../core/jobs/queue.js";
import type { ServiceModule, StartedModule } from "../module-contract.js";
import { createPostbackDeliveries } from "./deliveries.js";
import { createDeliveryService } from "./delivery-service.js";
import { createDownloadRoute } from "./download-route.js";
import { createPostbackMetrics } from "./metrics.js";
import { createPartnerDirectory } from "./partner-directory.js";
import { createPartnerService } from "./partner-service.js";
import { createPostbackService } from "./postback-service.js";
import { deliverQueue } from "./queue.js";
import { createRecorder } from "./recorder.js";
import { createDeliveryRepository } from "./delivery-repository.js";
import { createEventRepository } from "./event-repository.js";
import { createPartnerRepository } from "./partner-repository.js";
import { BODY_PREFIX_BYTES, USER_AGENT } from "./outbound.js";

/** Rows one housekeeping statement deletes, so a large clean-up never holds long locks. */
const CLEANUP_BATCH = 5_000;

/**
 * The postback service: funnel events in (RPC and `GET /download`), partner
 * configuration and deliveries for ops (admin), and the worker that sends
 * postbacks and keeps the stored downloads within the attribution window.
 */
export const postbackModule: ServiceModule = {
  name: "postback",
  queues: [deliverQueue as QueueDefinition<never>],
  async start(ctx): Promise<StartedModule> {
    const { config } = ctx;
    const partners = createPartnerRepository(ctx.pool);
    const events = createEventRepository(ctx.pool);
    const deliveries = createDeliveryRepository(ctx.pool);
    const metrics = createPostbackMetrics(ctx.metrics, deliveries);
    const directory = createPartnerDirectory(partners);
    const record = createRecorder({
      pool: ctx.pool,
      events,
      deliveries,
      directory,
      jobs: ctx.jobs,
      analytics: ctx.analytics,
      metrics,
      registry: ctx.metrics,
      attributionWindowMs: config.attributionWindowMs,
      downloadRedirectUrl: config.downloadRedirectUrl ?? "",
    });
    const stops: (() => Promise<void>)[] = [() => record.flush()];

    if (ctx.roles.includes("worker")) {
      const worker = await startDeliveries({
        kind: createPostbackDeliveries({ pool: ctx.pool, repository: deliveries, directory, analytics: ctx.analytics, metrics }),
        queue: deliverQueue,
        group: "postback_attempts",
        jobs: ctx.jobs,
        metrics: ctx.metrics,
        log: ctx.log,
        concurrency: config.postbackConcurrency,
        shutdownTimeoutMs: config.shutdownTimeoutMs,
        outbound: { allowPrivate: config.postbackAllowPrivate, allowSetting: "POSTBACK_ALLOW_PRIVATE", userAgent: USER_AGENT, bodyPrefixBytes: BODY_PREFIX_BYTES },
      });

      const cleanup = async (): Promise<void> => {
        const before = new Date(Date.now() - config.postbackRetentionMs);
        while ((await events.deleteExpiredDownloads(CLEANUP_BATCH)) === CLEANUP_BATCH);
        while ((await deliveries.deleteFinishedDeliveries(before, CLEANUP_BATCH)) === CLEANUP_BATCH);
      };
      const periodic = runPeriodically(config.jobsMaintenanceSeconds * 1000, cleanup, (error) => ctx.log.warn({ err: error }, "postback clean-up failed"));

      stops.push(async () => {
        await periodic.stop();
        await worker.stop();
      });
    }

    const download: HttpRoute = createDownloadRoute({
      record,
      redirectFor: async (partnerId) => (await directory.get(partnerId))?.config.downloadRedirectUrl || (config.downloadRedirectUrl ?? ""),
      proxies: new TrustedProxies(config.trustedProxies),
      log: ctx.log,
    });
    const serviceTokens = [ctx.adminToken, ...(config.postbackServiceToken !== undefined ? [config.postbackServiceToken] : [])];
    return {
      rpc(router) {
        router.service(PostbackService, createPostbackService({ record, serviceTokens }));
        router.service(PartnerService, createPartnerService({ pool: ctx.pool, repository: partners, directory }));
        router.service(DeliveryService, createDeliveryService({ pool: ctx.pool, repository: deliveries, directory, jobs: ctx.jobs }));
      },
      routes: new Map([["/download", download]]),
      adminOnly: [PartnerService.typeName, DeliveryService.typeName],
      async stop() {
        for (const stop of stops) await stop();
      },
    };
  },
};
