import { create } from "@bufbuild/protobuf";
import { durationFromMs, durationMs, timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import { SeenAttemptSchema, SeenDeliverySchema, TagRetentionSchema, TopicConsumerSchema, TopicSchema, SeenAdminService } from "../../gen/funnel/seen/v1/admin_pb.js";
import type pg from "pg";
import type { Jobs } from "../core/jobs/jobs.js";
import { definePaging, isMicros } from "../core/paging.js";
import { integrationFromMessage, integrationToMessage } from "./integration.js";
import { deliverQueue } from "./queue.js";
import { deliveryAttempts, deliveryCounts, deliverySummaries, listDeliveries, type DeliveryAttempt, type DeliverySummary } from "./sql/deliveries.js";
import { createIntegration, deleteIntegration, getIntegration, listIntegrations, updateIntegration } from "./sql/integrations.js";
import { listTags, setTagRetention } from "./sql/tags.js";
import { listTopics } from "./sql/topics.js";
import { requireIntegrationName, requireMs, requireTag } from "./validation.js";

const TEN_YEARS_MS = 3_650 * 86_400_000;
const STATUSES = ["pending", "delivered", "dead", "cancelled"];
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

const invalid = (message: string) => new ConnectError(message, Code.InvalidArgument);

/** Delivery ids: 1 to 1000 UUIDs. */
function requireDeliveryIds(ids: readonly string[], field = "ids"): string[] {
  if (ids.length === 0) throw invalid(`${field}: at least one delivery id is required`);
  if (ids.length > 1000) throw invalid(`${field}: at most 1000 ids, got ${ids.length}`);
  ids.forEach((id, i) => {
    if (!UUID.test(id)) throw invalid(`${field}[${i}]: "${id.slice(0, 80)}" is not a UUID`);
  });
  return ids.map((id) => id.toLowerCase());
}

/** Deliveries page newest first, after the (created_at, id) of the previous page's last one. */
const PAGES = definePaging({ method: SeenAdminService.method.listDeliveries, sizeField: "limit", defaultSize: 100, key: [isMicros, (id) => UUID.test(id)] });

const deliveryMessage = (row: DeliverySummary, attempts: readonly DeliveryAttempt[] = []) =>
  create(SeenDeliverySchema, {
    attemptLog: attempts.map((attempt) =>
      create(SeenAttemptSchema, { ...attempt, responseBody: attempt.responseBody.slice(0, 1024), attemptedAt: timestampFromDate(attempt.attemptedAt) }),
    ),
    id: row.id,
    integration: row.integration,
    tag: row.tag,
    itemId: row.itemId,
    status: row.status,
    attempts: row.attempts,
    lastError: row.lastError,
    createdAt: timestampFromDate(row.createdAt),
    ...(row.nextAttemptAt !== null ? { nextAttemptAt: timestampFromDate(row.nextAttemptAt) } : {}),
    ...(row.finishedAt !== null ? { finishedAt: timestampFromDate(row.finishedAt) } : {}),
  });

const tagRetention = (row: { tag: string; retentionSeconds: number; updatedAt: Date }) =>
  create(TagRetentionSchema, { tag: row.tag, retention: durationFromMs(row.retentionSeconds * 1000), updatedAt: timestampFromDate(row.updatedAt) });

/** The SeenAdminService: integrations and tag retention (admin token). */
export function createSeenAdminService(deps: { pool: pg.Pool; jobs: Jobs; defaultRetentionSeconds: number }): ServiceImpl<typeof SeenAdminService> {
  const { pool } = deps;
  const notFound = (name: string) => new ConnectError(`name: no integration "${name}"`, Code.NotFound);
  return {
    async createIntegration(req) {
      const input = integrationFromMessage(req.integration);
      const stored = await createIntegration(pool, input);
      if (stored === undefined) throw new ConnectError(`integration.name: "${input.name}" already exists`, Code.AlreadyExists);
      return { integration: integrationToMessage(stored) };
    },

    async updateIntegration(req) {
      const input = integrationFromMessage(req.integration);
      const stored = await updateIntegration(pool, input);
      if (stored === undefined) throw notFound(input.name);
      return { integration: integrationToMessage(stored) };
    },

    async getIntegration(req) {
      const name = requireIntegrationName(req.name);
      const stored = await getIntegration(pool, name);
      if (stored === undefined) throw notFound(name);
      const counts = await deliveryCounts(pool, name);
      return { integration: integrationToMessage(stored), pendingDeliveries: BigInt(counts.pending), deadDeliveries: BigInt(counts.dead) };
    },

    async listIntegrations() {
      return { integrations: (await listIntegrations(pool)).map(integrationToMessage) };
    },

    async deleteIntegration(req) {
      const name = requireIntegrationName(req.name);
      if (!(await deleteIntegration(pool, name))) throw notFound(name);
      return {};
    },

    async setTagRetention(req) {
      const tag = requireTag(req.tag);
      if (req.retention === undefined) throw new ConnectError("retention: required", Code.InvalidArgument);
      const ms = requireMs(durationMs(req.retention), "retention", 0, 1_000, TEN_YEARS_MS);
      return { tag: tagRetention(await setTagRetention(pool, tag, Math.round(ms / 1000))) };
    },

    async listTags() {
      return { tags: (await listTags(pool)).map(tagRetention), defaultRetention: durationFromMs(deps.defaultRetentionSeconds * 1000) };
    },

    async listDeliveries(req) {
      const integration = req.integration === "" ? "" : requireIntegrationName(req.integration, "integration");
      if (req.status !== "" && !STATUSES.includes(req.status)) throw invalid(`status: one of ${STATUSES.join(", ")}, got "${req.status.slice(0, 80)}"`);
      const limit = PAGES.size(req.limit);
      const tag = req.tag === "" ? "" : requireTag(req.tag, "tag");
      const from = req.from !== undefined ? timestampDate(req.from) : undefined;
      const to = req.to !== undefined ? timestampDate(req.to) : undefined;
      if (from !== undefined && to !== undefined && from >= to) throw invalid("from: must be before to");
      const filters = [integration, req.status, tag, from ?? null, to ?? null];
      const after = PAGES.after(req.pageToken, filters);
      const rows = await listDeliveries(
        pool,
        { integration, status: req.status, tag, ...(from !== undefined ? { from } : {}), ...(to !== undefined ? { to } : {}) },
        limit + 1,
        after === undefined ? undefined : { createdUs: after[0], id: after[1] },
      );
      const page = PAGES.page(rows, limit, (row) => [row.createdUs, row.id], filters);
      return { deliveries: page.rows.map((row) => deliveryMessage(row)), nextPageToken: page.nextPageToken };
    },

    async getDelivery(req) {
      const [id = ""] = requireDeliveryIds([req.id], "id");
      const [row] = await deliverySummaries(pool, [id]);
      if (row === undefined) throw new ConnectError(`id: no delivery ${id}`, Code.NotFound);
      return { delivery: deliveryMessage(row, await deliveryAttempts(pool, id)) };
    },

    async replayDeliveries(req) {
      const ids = [...new Set(requireDeliveryIds(req.ids))];
      const rows = new Map((await deliverySummaries(pool, ids)).map((row) => [row.id, row]));
      const dead = ids.flatMap((id) => {
        const row = rows.get(id);
        return row?.status === "dead" ? [row] : [];
      });
      // A job for the attempt a dead delivery ended on is what the engine takes as a redriven dead letter:
      // it replays the delivery, a new round of attempts (see core/delivery/worker.ts).
      if (dead.length > 0) await deps.jobs.sendMany(deliverQueue, dead.map((row) => ({ payload: { deliveryId: row.id, attempt: row.attempts } })));
      return {
        replayed: dead.map((row) => row.id),
        notFound: ids.filter((id) => !rows.has(id)),
        notDead: ids.filter((id) => rows.has(id) && rows.get(id)?.status !== "dead"),
      };
    },

    async listTopics() {
      const at = (text: string | null) => (text === null ? undefined : timestampFromDate(new Date(text)));
      return {
        topics: (await listTopics(pool)).map((topic) =>
          create(TopicSchema, {
            name: topic.topic,
            integrations: topic.integrations,
            retention: durationFromMs(topic.retentionSeconds * 1000),
            messages: BigInt(topic.messages),
            ...(topic.oldestAt !== null ? { oldestMessageAt: timestampFromDate(topic.oldestAt) } : {}),
            ...(topic.newestAt !== null ? { newestMessageAt: timestampFromDate(topic.newestAt) } : {}),
            consumers: topic.consumers.map((consumer) => {
              const oldest = at(consumer.oldestUnackedAt);
              return create(TopicConsumerSchema, {
                name: consumer.name,
                ackedAt: at(consumer.ackedAt),
                lagMessages: BigInt(consumer.lagMessages),
                lagSeconds: oldest === undefined ? 0 : Math.max(0, (Date.now() - timestampDate(oldest).getTime()) / 1000),
              });
            }),
          }),
        ),
      };
    },
  };
}
