import { OpsService } from "../../gen/funnel/ops/v1/ops_pb.js";
import { analyticsBacklog } from "../core/analytics/streamer.js";
import type { ServiceModule } from "../module-contract.js";
import { createOpsService } from "./service.js";

/** The OpsService (admin token only): status, jobs, time series and analytics queries, served by the api role. */
export const opsModule: ServiceModule = {
  name: "ops",
  async start(ctx) {
    if (!ctx.roles.includes("api")) return {};
    const service = createOpsService({
      pool: ctx.pool,
      clickhouse: ctx.clickhouse,
      readiness: ctx.readiness,
      jobs: ctx.jobs,
      roles: ctx.roles,
      startedAt: ctx.startedAt,
      analyticsBacklog: () => analyticsBacklog(ctx.pool),
    });
    return {
      rpc: (router) => router.service(OpsService, service),
      adminOnly: [OpsService.typeName],
    };
  },
};
