import { create } from "@bufbuild/protobuf";
import { durationFromMs, durationMs, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import { TagRetentionSchema, type SeenAdminService } from "../../gen/funnel/seen/v1/admin_pb.js";
import { integrationFromMessage, integrationToMessage } from "./integration.js";
import type { SeenRepository } from "./repository.js";
import { requireIntegrationName, requireMs, requireTag } from "./validation.js";

const TEN_YEARS_MS = 3_650 * 86_400_000;

const tagRetention = (row: { tag: string; retentionSeconds: number; updatedAt: Date }) =>
  create(TagRetentionSchema, { tag: row.tag, retention: durationFromMs(row.retentionSeconds * 1000), updatedAt: timestampFromDate(row.updatedAt) });

/** The SeenAdminService: integrations and tag retention (admin token). */
export function createSeenAdminService(deps: { repository: SeenRepository; defaultRetentionSeconds: number }): ServiceImpl<typeof SeenAdminService> {
  const { repository } = deps;
  const notFound = (name: string) => new ConnectError(`name: no integration "${name}"`, Code.NotFound);
  return {
    async createIntegration(req) {
      const input = integrationFromMessage(req.integration);
      const stored = await repository.createIntegration(input);
      if (stored === undefined) throw new ConnectError(`integration.name: "${input.name}" already exists`, Code.AlreadyExists);
      return { integration: integrationToMessage(stored) };
    },

    async updateIntegration(req) {
      const input = integrationFromMessage(req.integration);
      const stored = await repository.updateIntegration(input);
      if (stored === undefined) throw notFound(input.name);
      return { integration: integrationToMessage(stored) };
    },

    async getIntegration(req) {
      const name = requireIntegrationName(req.name);
      const stored = await repository.getIntegration(name);
      if (stored === undefined) throw notFound(name);
      const counts = await repository.deliveryCounts(name);
      return { integration: integrationToMessage(stored), pendingDeliveries: BigInt(counts.pending), deadDeliveries: BigInt(counts.dead) };
    },

    async listIntegrations() {
      return { integrations: (await repository.listIntegrations()).map(integrationToMessage) };
    },

    async deleteIntegration(req) {
      const name = requireIntegrationName(req.name);
      if (!(await repository.deleteIntegration(name))) throw notFound(name);
      return {};
    },

    async setTagRetention(req) {
      const tag = requireTag(req.tag);
      if (req.retention === undefined) throw new ConnectError("retention: required", Code.InvalidArgument);
      const ms = requireMs(durationMs(req.retention), "retention", 0, 1_000, TEN_YEARS_MS);
      return { tag: tagRetention(await repository.setTagRetention(tag, Math.round(ms / 1000))) };
    },

    async listTags() {
      return { tags: (await repository.listTags()).map(tagRetention), defaultRetention: durationFromMs(deps.defaultRetentionSeconds * 1000) };
    },
  };
}
