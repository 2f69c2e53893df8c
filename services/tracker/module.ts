import { TrackerService } from "../../gen/funnel/tracker/v1/tracker_pb.js";
import { TrustedProxies } from "../core/client-address.js";
import type { ServiceModule } from "../module-contract.js";
import { TrackerCache } from "./cache.js";
import { createPixelRoutes } from "./pixel.js";
import { createTrackerRepository } from "./repository.js";
import { createTrackerService } from "./service.js";

/**
 * The Tracker: `GET /track` (the pixel), `GET /stats` and the TrackerService.
 * Only the api role serves it; hits reach ClickHouse through the analytics
 * stream, which the worker role runs.
 */
export const trackerModule: ServiceModule = {
  name: "tracker",
  async start(ctx) {
    if (!ctx.roles.includes("api")) return {};
    const repository = createTrackerRepository(ctx.pool);
    const cache = new TrackerCache({
      repository,
      url: ctx.postgresUrl,
      log: ctx.log,
      metrics: ctx.metrics,
      refreshMs: ctx.config.trackerCacheRefreshSeconds * 1000,
    });
    await cache.start();
    const service = createTrackerService({ repository, cache, clickhouse: ctx.clickhouse });
    return {
      rpc: (router) => router.service(TrackerService, service),
      routes: createPixelRoutes({
        cache,
        analytics: ctx.analytics,
        clickhouse: ctx.clickhouse,
        proxies: new TrustedProxies(ctx.config.trustedProxies),
        cookie: { domain: ctx.config.trackerCookieDomain, sameSite: ctx.config.trackerCookieSameSite },
        log: ctx.log,
        metrics: ctx.metrics,
      }),
      // GetStats stays public (counts only, like GET /stats); a tracker's value
      // names a campaign, which the pixel's UUID in a page must not reveal.
      adminOnly: [
        `${TrackerService.typeName}/CreateTracker`,
        `${TrackerService.typeName}/GetTracker`,
        `${TrackerService.typeName}/UpdateTracker`,
        `${TrackerService.typeName}/ListTrackers`,
      ],
      stop: () => cache.stop(),
    };
  },
};
