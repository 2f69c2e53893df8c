import { create } from "@bufbuild/protobuf";
import { durationFromMs, durationMs, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { IntegrationSchema, type Integration as IntegrationMessage } from "../../gen/funnel/seen/v1/admin_pb.js";
import { requireDeliveryUrl, requireIntegrationName, requireMs, requireTag, requireTopic } from "./validation.js";

/** How an api integration is called. */
export interface ApiSettings {
  readonly url: string;
  readonly timeoutMs: number;
  /** 0: retry until the mark's retention ends. */
  readonly maxAttempts: number;
  readonly initialBackoffMs: number;
  readonly maxBackoffMs: number;
}

/** Where a topic integration's messages go. */
export interface TopicSettings {
  readonly topic: string;
  readonly retentionMs: number;
}

/** An integration as stored. */
export interface Integration {
  readonly name: string;
  readonly tags: readonly string[];
  readonly enabled: boolean;
  readonly delivery: { readonly kind: "api"; readonly api: ApiSettings } | { readonly kind: "topic"; readonly topic: TopicSettings };
  readonly createdAt: Date;
  readonly updatedAt: Date;
}

export type IntegrationInput = Omit<Integration, "createdAt" | "updatedAt">;

const SECOND = 1_000;
const DAY = 86_400_000;
const MAX_TAGS = 100;

export const apiDefaults = { timeoutMs: 5 * SECOND, initialBackoffMs: SECOND, maxBackoffMs: 3_600 * SECOND } as const;
export const topicDefaults = { retentionMs: 7 * DAY } as const;

/** Validates an integration from the API, filling defaults; errors name the field. */
export function integrationFromMessage(message: IntegrationMessage | undefined): IntegrationInput {
  if (message === undefined) throw new ConnectError("integration: required", Code.InvalidArgument);
  const name = requireIntegrationName(message.name, "integration.name");
  if (message.tags.length === 0) throw new ConnectError("integration.tags: at least one tag is required", Code.InvalidArgument);
  if (message.tags.length > MAX_TAGS) throw new ConnectError(`integration.tags: at most ${MAX_TAGS} tags`, Code.InvalidArgument);
  const tags = [...new Set(message.tags.map((tag, i) => requireTag(tag, `integration.tags[${i}]`)))].sort();
  const delivery = message.delivery;
  if (delivery.case === "api") {
    const api = delivery.value;
    const ms = (value: typeof api.timeout): number | undefined => (value === undefined ? undefined : durationMs(value));
    if (api.maxAttempts > 1_000) throw new ConnectError("integration.api.max_attempts: at most 1000 (0 means until the mark's retention ends)", Code.InvalidArgument);
    const initialBackoffMs = requireMs(ms(api.initialBackoff), "integration.api.initial_backoff", apiDefaults.initialBackoffMs, 10, 3_600 * SECOND);
    const maxBackoffMs = requireMs(ms(api.maxBackoff), "integration.api.max_backoff", Math.max(apiDefaults.maxBackoffMs, initialBackoffMs), initialBackoffMs, DAY);
    return {
      name,
      tags,
      enabled: message.enabled,
      delivery: {
        kind: "api",
        api: {
          url: requireDeliveryUrl(api.url, "integration.api.url"),
          timeoutMs: requireMs(ms(api.timeout), "integration.api.timeout", apiDefaults.timeoutMs, 100, 60 * SECOND),
          maxAttempts: api.maxAttempts,
          initialBackoffMs,
          maxBackoffMs,
        },
      },
    };
  }
  if (delivery.case === "topic") {
    const topic = delivery.value;
    return {
      name,
      tags,
      enabled: message.enabled,
      delivery: {
        kind: "topic",
        topic: {
          topic: requireTopic(topic.topic, "integration.topic.topic"),
          retentionMs: requireMs(
            topic.retention === undefined ? undefined : durationMs(topic.retention),
            "integration.topic.retention",
            topicDefaults.retentionMs,
            60 * SECOND,
            400 * DAY,
          ),
        },
      },
    };
  }
  throw new ConnectError("integration.delivery: one of api or topic is required", Code.InvalidArgument);
}

/** The API form of a stored integration. */
export function integrationToMessage(integration: Integration): IntegrationMessage {
  const { delivery } = integration;
  return create(IntegrationSchema, {
    name: integration.name,
    tags: [...integration.tags],
    enabled: integration.enabled,
    delivery:
      delivery.kind === "api"
        ? {
            case: "api",
            value: {
              url: delivery.api.url,
              timeout: durationFromMs(delivery.api.timeoutMs),
              maxAttempts: delivery.api.maxAttempts,
              initialBackoff: durationFromMs(delivery.api.initialBackoffMs),
              maxBackoff: durationFromMs(delivery.api.maxBackoffMs),
            },
          }
        : { case: "topic", value: { topic: delivery.topic.topic, retention: durationFromMs(delivery.topic.retentionMs) } },
    createdAt: timestampFromDate(integration.createdAt),
    updatedAt: timestampFromDate(integration.updatedAt),
  });
}
