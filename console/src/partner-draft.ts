import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { durationFromMs, durationMs, type Duration } from "@bufbuild/protobuf/wkt";
import { DownloadPolicy, HttpMethod, PartnerSchema, type EventPostback, type Partner } from "../../gen/funnel/postback/v1/partner_pb.js";

/** The events a partner configures, in the order the form shows them. */
export const EVENTS = ["download", "install", "authorization"] as const;
export type EventName = (typeof EVENTS)[number];

/** One event's postback as the form holds it (text as typed). */
export interface EventDraft {
  readonly enabled: boolean;
  readonly urlTemplate: string;
  readonly method: "GET" | "POST";
  readonly bodyTemplate: string;
  readonly contentType: string;
  /** `Name: value`, one header a line. */
  readonly headers: string;
}

/** A partner as the form holds it; numbers stay text so a half-typed value is kept. */
export interface PartnerDraft {
  readonly id: string;
  readonly name: string;
  readonly enabled: boolean;
  readonly download: EventDraft;
  readonly install: EventDraft;
  readonly authorization: EventDraft;
  readonly timeoutMs: string;
  readonly maxAttempts: string;
  readonly initialDelayMs: string;
  readonly maxDelayMs: string;
  readonly downloadPolicy: "every" | "once";
  readonly skipUnattributed: boolean;
  readonly downloadRedirectUrl: string;
}

const emptyEvent: EventDraft = { enabled: false, urlTemplate: "", method: "GET", bodyTemplate: "", contentType: "", headers: "" };

/** A new partner's form: install postbacks on, server defaults for the rest. */
export const NEW_PARTNER: PartnerDraft = {
  id: "",
  name: "",
  enabled: true,
  download: emptyEvent,
  install: { ...emptyEvent, enabled: true },
  authorization: emptyEvent,
  timeoutMs: "",
  maxAttempts: "",
  initialDelayMs: "",
  maxDelayMs: "",
  downloadPolicy: "every",
  skipUnattributed: false,
  downloadRedirectUrl: "",
};

const msText = (d: Duration | undefined) => (d === undefined ? "" : String(durationMs(d)));

function eventDraft(event: EventPostback | undefined): EventDraft {
  if (event === undefined) return emptyEvent;
  return {
    enabled: event.enabled,
    urlTemplate: event.urlTemplate,
    method: event.method === HttpMethod.POST ? "POST" : "GET",
    bodyTemplate: event.bodyTemplate,
    contentType: event.contentType,
    headers: Object.entries(event.headers)
      .map(([k, v]) => `${k}: ${v}`)
      .join("\n"),
  };
}

/** A stored partner as the form shows it. */
export function draftFromPartner(p: Partner): PartnerDraft {
  return {
    id: p.id,
    name: p.name,
    enabled: p.enabled,
    download: eventDraft(p.download),
    install: eventDraft(p.install),
    authorization: eventDraft(p.authorization),
    timeoutMs: msText(p.timeout),
    maxAttempts: p.retry?.maxAttempts ? String(p.retry.maxAttempts) : "",
    initialDelayMs: msText(p.retry?.initialDelay),
    maxDelayMs: msText(p.retry?.maxDelay),
    downloadPolicy: p.downloadPolicy === DownloadPolicy.ONCE ? "once" : "every",
    skipUnattributed: p.skipUnattributed,
    downloadRedirectUrl: p.downloadRedirectUrl,
  };
}

/** `Name: value` lines as a map; a line without a colon becomes a name the server refuses by name. */
function parseHeaders(text: string): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const line of text.split("\n")) {
    if (line.trim() === "") continue;
    const colon = line.indexOf(":");
    if (colon < 0) headers[line.trim()] = "";
    else headers[line.slice(0, colon).trim()] = line.slice(colon + 1).trim();
  }
  return headers;
}

/** Milliseconds typed in a box: empty leaves the server's default, anything else goes as typed for the server to judge. */
function duration(text: string): Duration | undefined {
  if (text.trim() === "") return undefined;
  const ms = Number(text);
  return durationFromMs(Number.isFinite(ms) ? Math.round(ms) : -1);
}

function eventInit(e: EventDraft): MessageInitShape<typeof PartnerSchema>["install"] {
  return {
    enabled: e.enabled,
    urlTemplate: e.urlTemplate,
    method: e.method === "POST" ? HttpMethod.POST : HttpMethod.GET,
    bodyTemplate: e.bodyTemplate,
    contentType: e.contentType,
    headers: parseHeaders(e.headers),
  };
}

/** The form as the API's Partner; the server validates it. */
export function partnerFromDraft(d: PartnerDraft): Partner {
  const initialDelay = duration(d.initialDelayMs);
  const maxDelay = duration(d.maxDelayMs);
  const timeout = duration(d.timeoutMs);
  const maxAttempts = d.maxAttempts.trim() === "" ? 0 : Number(d.maxAttempts);
  return create(PartnerSchema, {
    id: d.id,
    name: d.name,
    enabled: d.enabled,
    download: eventInit(d.download),
    install: eventInit(d.install),
    authorization: eventInit(d.authorization),
    ...(timeout !== undefined ? { timeout } : {}),
    retry: {
      // 101 is out of range on purpose: the server names the field.
      maxAttempts: Number.isInteger(maxAttempts) && maxAttempts >= 0 ? Math.min(maxAttempts, 101) : 101,
      ...(initialDelay !== undefined ? { initialDelay } : {}),
      ...(maxDelay !== undefined ? { maxDelay } : {}),
    },
    downloadPolicy: d.downloadPolicy === "once" ? DownloadPolicy.ONCE : DownloadPolicy.EVERY,
    skipUnattributed: d.skipUnattributed,
    downloadRedirectUrl: d.downloadRedirectUrl,
  });
}
