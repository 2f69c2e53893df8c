import { clickhouseTime } from "../core/clickhouse.js";
import { randomUUID } from "node:crypto";
import type { AnalyticsAppender } from "../core/analytics/appender.js";
import type { Jobs } from "../core/jobs/jobs.js";
import type { PostbackMetrics } from "./metrics.js";
import type { EventName } from "./partner.js";
import type { PartnerDirectory } from "./partner-directory.js";
import { deliverQueue } from "./queue.js";
import type { PostbackRepository } from "./repository.js";
import type { Stag } from "./stag.js";

/** A validated funnel event. */
export interface FunnelEvent {
  readonly kind: EventName;
  readonly stag: Stag;
  readonly occurredAt: Date;
  /** Query parameters of the download link (downloads only). */
  readonly params: Readonly<Record<string, string>>;
  readonly url: string;
  readonly ip: string;
  readonly userAgent: string;
  readonly userId: string;
  readonly deviceId: string;
}

export type EventOutcomeName = "queued" | "duplicate" | "unknown_partner" | "disabled" | "skipped_unattributed";

export interface Recorded {
  readonly outcome: EventOutcomeName;
  /** Empty unless a postback was queued. */
  readonly deliveryId: string;
  /** For installs and authorizations: a download of the stag was found. */
  readonly attributed: boolean;
  /** Where a download's user goes next: the partner's URL or the default; empty when neither is set. */
  readonly redirectUrl: string;
}

export interface RecorderDeps {
  readonly repository: PostbackRepository;
  readonly directory: PartnerDirectory;
  readonly jobs: Jobs;
  readonly analytics: AnalyticsAppender;
  readonly metrics: PostbackMetrics;
  readonly attributionWindowMs: number;
  readonly downloadRedirectUrl: string;
}

/**
 * Records funnel events. One transaction per event writes the once-only
 * ledger row (installs, authorizations, downloads of `once` partners), the
 * stored download, the postback and its job, and the event's analytics row:
 * either all of it happened or none of it, so a duplicate, a concurrent
 * request or a crash can never queue a second postback for the same click.
 */
export function createRecorder(deps: RecorderDeps) {
  const { repository, directory, metrics } = deps;
  return async function record(event: FunnelEvent): Promise<Recorded> {
    const partner = await directory.get(event.stag.partnerId);
    const config = partner?.config;
    const redirectUrl = config?.downloadRedirectUrl || deps.downloadRedirectUrl;
    const result = await repository.transaction(async (tx) => {
      let params = event.params;
      let attributed = false;
      let outcome: EventOutcomeName | undefined;
      if (event.kind === "download") {
        await repository.storeDownload(tx, event.stag.value, event.params, event.occurredAt, new Date(event.occurredAt.getTime() + deps.attributionWindowMs));
        if (config?.downloadPolicy === "once" && !(await repository.claimOnce(tx, event.stag.value, "download"))) outcome = "duplicate";
      } else {
        if (!(await repository.claimOnce(tx, event.stag.value, event.kind))) outcome = "duplicate";
        else {
          const stored = await repository.findDownload(tx, event.stag.value, event.occurredAt);
          attributed = stored !== undefined;
          params = stored ?? {};
        }
      }
      if (outcome === undefined) {
        if (config === undefined) outcome = "unknown_partner";
        else if (!config.enabled || !config.events[event.kind].enabled) outcome = "disabled";
        else if (event.kind !== "download" && !attributed && config.skipUnattributed) outcome = "skipped_unattributed";
      }
      let deliveryId = "";
      if (outcome === undefined) {
        outcome = "queued";
        deliveryId = randomUUID();
        await repository.insertDelivery(tx, {
          id: deliveryId,
          partnerId: event.stag.partnerId,
          event: event.kind,
          stag: event.stag.value,
          clickId: event.stag.clickId,
          params,
          userId: event.userId,
          deviceId: event.deviceId,
          occurredAt: event.occurredAt,
        });
        await deps.jobs.send(deliverQueue, { deliveryId, attempt: 1 }, { tx });
      }
      await deps.analytics.appendInTransaction(tx, "postback_events", [
        {
          event: event.kind,
          stag: event.stag.value,
          partner_id: event.stag.partnerId,
          click_id: event.stag.clickId,
          outcome,
          delivery_id: deliveryId,
          attributed: attributed ? 1 : 0,
          params: event.kind === "download" ? event.params : {},
          user_id: event.userId,
          device_id: event.deviceId,
          url: event.url,
          ip: event.ip,
          user_agent: event.userAgent,
          occurred_at: clickhouseTime(event.occurredAt),
          recorded_at: clickhouseTime(new Date()),
        },
      ]);
      return { outcome, deliveryId, attributed };
    });
    deps.analytics.committed();
    metrics.events.inc({ event: event.kind, outcome: result.outcome });
    if (event.kind !== "download" && result.outcome !== "duplicate" && !result.attributed) {
      metrics.unattributed.inc({ event: event.kind, partner: config !== undefined ? metrics.partner(event.stag.partnerId) : "unknown" });
    }
    return { ...result, redirectUrl };
  };
}

export type Recorder = ReturnType<typeof createRecorder>;
