import { create } from "@bufbuild/protobuf";
import { durationFromMs, durationMs, timestampFromDate } from "@bufbuild/protobuf/wkt";
import {
  DownloadPolicy as DownloadPolicyProto,
  EventKind,
  EventPostbackSchema,
  HttpMethod as HttpMethodProto,
  PartnerSchema,
  RetryPolicySchema,
  type EventPostback as EventPostbackProto,
  type Partner,
} from "../../gen/funnel/postback/v1/partner_pb.js";
import { DEFAULT_RETRY, DEFAULT_TIMEOUT_MS, DISABLED_EVENT, type EventName, type EventPostback, type PartnerConfig, type StoredPartner } from "./partner.js";

const KIND_OF: Readonly<Record<EventName, EventKind>> = {
  download: EventKind.DOWNLOAD,
  install: EventKind.INSTALL,
  authorization: EventKind.AUTHORIZATION,
};

/** The proto enum of an event. */
export const eventKind = (event: EventName): EventKind => KIND_OF[event];

/** The event of a proto enum; undefined for UNSPECIFIED or an unknown number. */
export function eventName(kind: EventKind): EventName | undefined {
  return (Object.keys(KIND_OF) as EventName[]).find((name) => KIND_OF[name] === kind);
}

export const methodProto = (method: "GET" | "POST"): HttpMethodProto => (method === "POST" ? HttpMethodProto.POST : HttpMethodProto.GET);

function eventFromProto(event: EventPostbackProto | undefined): EventPostback {
  if (event === undefined) return DISABLED_EVENT;
  const method = event.method === HttpMethodProto.POST ? "POST" : "GET";
  return {
    enabled: event.enabled,
    urlTemplate: event.urlTemplate.trim(),
    method,
    bodyTemplate: event.bodyTemplate,
    contentType: event.contentType.trim() || (event.bodyTemplate !== "" ? "application/json" : ""),
    headers: { ...event.headers },
  };
}

/** A partner from the API, defaults filled in (not yet validated). */
export function partnerFromProto(partner: Partner): PartnerConfig {
  const initialDelayMs = partner.retry?.initialDelay !== undefined ? durationMs(partner.retry.initialDelay) : DEFAULT_RETRY.initialDelayMs;
  return {
    id: partner.id.trim(),
    name: partner.name.trim() || partner.id.trim(),
    enabled: partner.enabled,
    events: {
      download: eventFromProto(partner.download),
      install: eventFromProto(partner.install),
      authorization: eventFromProto(partner.authorization),
    },
    timeoutMs: partner.timeout !== undefined ? durationMs(partner.timeout) : DEFAULT_TIMEOUT_MS,
    retry: {
      maxAttempts: partner.retry?.maxAttempts || DEFAULT_RETRY.maxAttempts,
      initialDelayMs,
      maxDelayMs: partner.retry?.maxDelay !== undefined ? durationMs(partner.retry.maxDelay) : Math.max(DEFAULT_RETRY.maxDelayMs, initialDelayMs),
    },
    downloadPolicy: partner.downloadPolicy === DownloadPolicyProto.ONCE ? "once" : "every",
    skipUnattributed: partner.skipUnattributed,
    downloadRedirectUrl: partner.downloadRedirectUrl.trim(),
  };
}

function eventToProto(event: EventPostback): EventPostbackProto {
  return create(EventPostbackSchema, { ...event, method: methodProto(event.method), headers: { ...event.headers } });
}

/** A stored partner for the API. */
export function partnerToProto(partner: StoredPartner): Partner {
  return create(PartnerSchema, {
    id: partner.id,
    name: partner.name,
    enabled: partner.enabled,
    download: eventToProto(partner.events.download),
    install: eventToProto(partner.events.install),
    authorization: eventToProto(partner.events.authorization),
    timeout: durationFromMs(partner.timeoutMs),
    retry: create(RetryPolicySchema, {
      maxAttempts: partner.retry.maxAttempts,
      initialDelay: durationFromMs(partner.retry.initialDelayMs),
      maxDelay: durationFromMs(partner.retry.maxDelayMs),
    }),
    downloadPolicy: partner.downloadPolicy === "once" ? DownloadPolicyProto.ONCE : DownloadPolicyProto.EVERY,
    skipUnattributed: partner.skipUnattributed,
    downloadRedirectUrl: partner.downloadRedirectUrl,
    createdAt: timestampFromDate(partner.createdAt),
    updatedAt: timestampFromDate(partner.updatedAt),
  });
}
