import { randomUUID } from "node:crypto";
import type { AnalyticsAppender, AnalyticsRow } from "../core/analytics/appender.js";
import { clickhouseTime } from "../core/clickhouse.js";
import { GroupCommit } from "../core/group-commit.js";
import type { Jobs } from "../core/jobs/jobs.js";
import type { Registry } from "../core/metrics.js";
import { retryingDeadlocks, withTransaction, type Pool, type Transaction } from "../core/postgres.js";
import type { DeliveryRepository, NewDelivery } from "./delivery-repository.js";
import type { Claimed, EventRepository } from "./event-repository.js";
import type { PostbackMetrics } from "./metrics.js";
import type { EventName, PartnerConfig } from "./partner.js";
import type { PartnerDirectory } from "./partner-directory.js";
import { deliverQueue } from "./queue.js";
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
  readonly pool: Pool;
  readonly events: EventRepository;
  readonly deliveries: Pick<DeliveryRepository, "insertDeliveries">;
  readonly directory: PartnerDirectory;
  readonly jobs: Jobs;
  readonly analytics: AnalyticsAppender;
  readonly metrics: PostbackMetrics;
  /** Where the group commit counts its splits. */
  readonly registry: Registry;
  readonly attributionWindowMs: number;
  readonly downloadRedirectUrl: string;
  /**
   * Transactions in flight at once (each holds a pooled connection); events
   * gather while all are busy. 2 by default: one group commits while the next
   * gathers. More split the same load into smaller groups, each paying its
   * own round trips and commit, and recorded fewer events a second in
   * `npm run bench -- postback` (see docs/benchmarks.md).
   */
  readonly maxInFlight?: number;
}

/** An event with its partner as it was read when the event arrived (undefined: no such partner). */
interface Submitted {
  readonly event: FunnelEvent;
  readonly partner: PartnerConfig | undefined;
}

type Stored = Omit<Recorded, "redirectUrl">;

/** Events that happen once per stag: installs, authorizations, and downloads of partners with `download_policy: once`. */
const onceOnly = ({ event, partner }: Submitted): boolean => event.kind !== "download" || partner?.downloadPolicy === "once";

/** Why an event that is not a repeat queues no postback, if it does not. */
function refusal(event: FunnelEvent, partner: PartnerConfig | undefined, attributed: boolean): EventOutcomeName | undefined {
  if (partner === undefined) return "unknown_partner";
  if (!partner.enabled || !partner.events[event.kind].enabled) return "disabled";
  if (event.kind !== "download" && !attributed && partner.skipUnattributed) return "skipped_unattributed";
  return undefined;
}

/** The event's row of the ClickHouse table `postback_events`. */
const analyticsRow = (event: FunnelEvent, stored: Stored, recordedAt: string): AnalyticsRow => ({
  event: event.kind,
  stag: event.stag.value,
  partner_id: event.stag.partnerId,
  click_id: event.stag.clickId,
  outcome: stored.outcome,
  delivery_id: stored.deliveryId,
  attributed: stored.attributed ? 1 : 0,
  params: event.kind === "download" ? event.params : {},
  user_id: event.userId,
  device_id: event.deviceId,
  url: event.url,
  ip: event.ip,
  user_agent: event.userAgent,
  occurred_at: clickhouseTime(event.occurredAt),
  recorded_at: recordedAt,
});

/**
 * Records funnel events. Concurrent events share one transaction (group
 * commit) that writes, a few statements for the whole group: the downloads,
 * the once-only ledger rows (installs, authorizations, downloads of `once`
 * partners) with the stored download each install or authorization is
 * attributed to, the postbacks and their jobs, and the events' analytics
 * rows. Either all of a group happened or none of it (every caller in it gets
 * the error), so a duplicate, a concurrent request or a crash can never queue
 * a second postback for the same click. A call resolves only after its group
 * committed.
 */
export function createRecorder(deps: RecorderDeps) {
  const { events, directory, metrics } = deps;

  /** Writes one group in the caller's transaction; one answer per event, in order. */
  const store = async (tx: Transaction, group: readonly Submitted[]): Promise<Stored[]> => {
    await events.storeDownloads(
      tx,
      group
        .filter(({ event }) => event.kind === "download")
        .map(({ event }) => ({
          stag: event.stag.value,
          params: event.params,
          occurredAt: event.occurredAt,
          expiresAt: new Date(event.occurredAt.getTime() + deps.attributionWindowMs),
        })),
    );
    const claiming = group.filter(onceOnly);
    const answers = await events.claim(
      tx,
      claiming.map(({ event }) => ({ stag: event.stag.value, event: event.kind, at: event.occurredAt })),
    );
    const claims = new Map<Submitted, Claimed>(claiming.map((submitted, i) => [submitted, answers[i]!]));

    const deliveries: NewDelivery[] = [];
    const stored = group.map((submitted): Stored => {
      const { event, partner } = submitted;
      const claim = claims.get(submitted);
      if (claim === false) return { outcome: "duplicate", deliveryId: "", attributed: false };
      const download = event.kind === "download" ? undefined : claim?.download;
      const attributed = download !== undefined;
      const refused = refusal(event, partner, attributed);
      if (refused !== undefined) return { outcome: refused, deliveryId: "", attributed };
      const id = randomUUID();
      deliveries.push({
        id,
        partnerId: event.stag.partnerId,
        event: event.kind,
        stag: event.stag.value,
        clickId: event.stag.clickId,
        params: event.kind === "download" ? event.params : (download ?? {}),
        userId: event.userId,
        deviceId: event.deviceId,
        occurredAt: event.occurredAt,
      });
      return { outcome: "queued", deliveryId: id, attributed };
    });
    await deps.deliveries.insertDeliveries(tx, deliveries);
    await deps.jobs.sendMany(deliverQueue, deliveries.map((delivery) => ({ payload: { deliveryId: delivery.id, attempt: 1 } })), { tx });
    const recordedAt = clickhouseTime(new Date());
    await deps.analytics.appendInTransaction(tx, "postback_events", group.map(({ event }, i) => analyticsRow(event, stored[i]!, recordedAt)));
    return stored;
  };

  const group = new GroupCommit<Submitted, Stored>({
    name: "postback_events",
    metrics: deps.registry,
    maxInFlight: deps.maxInFlight ?? 2,
    observe: { items: metrics.groupEvents, seconds: metrics.groupSeconds },
    // Downloads and ledger keys are locked in key order; the clean-up deleting expired downloads may still deadlock with a group renewing one.
    commit: (submitted) => retryingDeadlocks(() => withTransaction(deps.pool, (tx) => store(tx, submitted))),
  });

  const record = async (event: FunnelEvent): Promise<Recorded> => {
    const partner = (await directory.get(event.stag.partnerId))?.config;
    const stored = await group.submit({ event, partner });
    metrics.events.inc({ event: event.kind, outcome: stored.outcome });
    if (event.kind !== "download" && stored.outcome !== "duplicate" && !stored.attributed) {
      metrics.unattributed.inc({ event: event.kind, partner: partner !== undefined ? metrics.partner(event.stag.partnerId) : "unknown" });
    }
    return { ...stored, redirectUrl: partner?.downloadRedirectUrl || deps.downloadRedirectUrl };
  };
  /** Waits for every event already submitted to be committed (or to fail). */
  const flush = (): Promise<void> => group.flush();
  return Object.assign(record, { flush });
}

export type Recorder = ReturnType<typeof createRecorder>;
