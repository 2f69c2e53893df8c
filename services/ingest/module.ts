import { IngestService } from "../../gen/funnel/ingest/v1/ingest_pb.js";
import type { ServiceModule } from "../module-contract.js";
import { type EventTypes, eventTypes } from "./registry.js";
import { createIngestService } from "./service.js";
import { PageViewSweep } from "./sweep.js";
import { IngestWriter } from "./writer.js";

export interface IngestModuleOptions {
  /** The event types taken; the registry's by default (tests add throwaway ones). */
  readonly types?: EventTypes;
}

/** The Ingest service: analytics events in, to their ClickHouse tables; page views paired. */
export function createIngestModule(options: IngestModuleOptions = {}): ServiceModule {
  const types = options.types ?? eventTypes;
  return {
    name: "ingest",
    async start({ config, log, roles, pool, analytics, metrics, identity }) {
      const writer = new IngestWriter({ pool, analytics, metrics, log });
      const service = createIngestService({
        types,
        identity,
        writer,
        pool,
        limits: { maxEventBytes: config.ingestMaxEventBytes, maxBatchBytes: config.ingestMaxBatchBytes, maxBatchEvents: config.ingestMaxBatchEvents },
        credentialedOrigins: new Set(config.corsAllowedOrigins.filter((origin) => origin !== "*")),
      });
      let sweep: PageViewSweep | undefined;
      if (roles.includes("worker")) {
        sweep = new PageViewSweep({
          pool,
          analytics,
          log,
          metrics,
          timeoutSeconds: config.pageViewTimeoutSeconds,
          retentionDays: config.ingestDedupDays,
          intervalSeconds: config.ingestSweepSeconds,
        });
        sweep.start();
      }
      return {
        rpc: (router) => router.service(IngestService, service),
        adminOnly: [`${IngestService.typeName}/GetQuality`],
        corsPaths: [`/${IngestService.typeName}/Send`, `/${IngestService.typeName}/SendBatch`],
        // checkEvent checks each event, so a bad event of a batch is rejected alone.
        handlerChecks: { [`${IngestService.typeName}/Send`]: "all", [`${IngestService.typeName}/SendBatch`]: ["events"] },
        async stop() {
          await sweep?.stop();
          await writer.flush();
        },
      };
    },
  };
}

/** The Ingest module with the registry's event types. */
export const ingestModule: ServiceModule = createIngestModule();
