import { MAX_PARTNER_ID_LENGTH } from "./stag.js";
import { bodyEscaping, parseTemplate, parseUrlTemplate, renderTemplate, SAMPLE_VALUES, TemplateError, type Template } from "./template.js";

/** The funnel events, in funnel order. */
export const EVENTS = ["download", "install", "authorization"] as const;
export type EventName = (typeof EVENTS)[number];

export type HttpMethod = "GET" | "POST";
export type DownloadPolicy = "every" | "once";

/** The request a partner receives for one event. */
export interface EventPostback {
  readonly enabled: boolean;
  readonly urlTemplate: string;
  readonly method: HttpMethod;
  readonly bodyTemplate: string;
  readonly contentType: string;
  readonly headers: Readonly<Record<string, string>>;
}

export interface RetrySettings {
  /** Attempts in all, the first included. */
  readonly maxAttempts: number;
  readonly initialDelayMs: number;
  readonly maxDelayMs: number;
}

/** One partner's postback configuration, as stored. */
export interface PartnerConfig {
  readonly id: string;
  readonly name: string;
  readonly enabled: boolean;
  readonly events: Readonly<Record<EventName, EventPostback>>;
  readonly timeoutMs: number;
  readonly retry: RetrySettings;
  readonly downloadPolicy: DownloadPolicy;
  readonly skipUnattributed: boolean;
  readonly downloadRedirectUrl: string;
}

/** A stored partner with its times. */
export interface StoredPartner extends PartnerConfig {
  readonly createdAt: Date;
  readonly updatedAt: Date;
}

export const DEFAULT_TIMEOUT_MS = 10_000;
export const DEFAULT_RETRY: RetrySettings = { maxAttempts: 10, initialDelayMs: 10_000, maxDelayMs: 3_600_000 };

export const DISABLED_EVENT: EventPostback = { enabled: false, urlTemplate: "", method: "GET", bodyTemplate: "", contentType: "", headers: {} };

/** A partner with nothing enabled beyond itself: the base of `partners add`. */
export function newPartner(id: string): PartnerConfig {
  return {
    id,
    name: id,
    enabled: true,
    events: { download: DISABLED_EVENT, install: DISABLED_EVENT, authorization: DISABLED_EVENT },
    timeoutMs: DEFAULT_TIMEOUT_MS,
    retry: DEFAULT_RETRY,
    downloadPolicy: "every",
    skipUnattributed: false,
    downloadRedirectUrl: "",
  };
}

/** One problem with a partner: the field (as the API names it) and why. */
export interface Problem {
  readonly field: string;
  readonly message: string;
}

const PARTNER_ID = /^[A-Za-z0-9.-]+$/;
const HEADER_NAME = /^[!#$%&'*+.^`|~0-9A-Za-z-]+$/;
/** Headers Funnel owns: connection management, the body's framing, and its User-Agent. */
const RESERVED_HEADERS = new Set(["host", "content-length", "connection", "transfer-encoding", "keep-alive", "upgrade", "te", "trailer", "expect", "proxy-connection", "user-agent"]);

/** Checks the partner id alone (also used for lookups and deletes). */
export function partnerIdProblem(id: string): string | undefined {
  if (id === "") return "required";
  if (id.length > MAX_PARTNER_ID_LENGTH) return `longer than ${MAX_PARTNER_ID_LENGTH} characters`;
  if (!PARTNER_ID.test(id)) return `"${id}" may hold only letters, digits, "-" and "." (a stag ends its partner id at the first "_")`;
  return undefined;
}

function templateProblem(field: string, source: string, parse: (source: string) => Template): Problem | undefined {
  try {
    parse(source);
    return undefined;
  } catch (error) {
    if (error instanceof TemplateError) return { field, message: error.message };
    throw error;
  }
}

function eventProblems(name: EventName, event: EventPostback): Problem[] {
  const problems: Problem[] = [];
  const field = (suffix: string) => `${name}.${suffix}`;
  if (event.enabled && event.urlTemplate === "") problems.push({ field: field("url_template"), message: "required when the event is enabled" });
  if (event.urlTemplate !== "") {
    if (event.urlTemplate.length > 4_000) problems.push({ field: field("url_template"), message: "longer than 4,000 characters" });
    else {
      const problem = templateProblem(field("url_template"), event.urlTemplate, parseUrlTemplate);
      if (problem !== undefined) problems.push(problem);
    }
  }
  if (event.bodyTemplate !== "") {
    if (event.method !== "POST") problems.push({ field: field("body_template"), message: "only a POST sends a body; set the method to POST" });
    if (event.bodyTemplate.length > 16_000) problems.push({ field: field("body_template"), message: "longer than 16,000 characters" });
    const problem = templateProblem(field("body_template"), event.bodyTemplate, parseTemplate);
    if (problem !== undefined) problems.push(problem);
    else if (bodyEscaping(event.contentType || "application/json") === "json") {
      try {
        JSON.parse(renderTemplate(parseTemplate(event.bodyTemplate), SAMPLE_VALUES, "json"));
      } catch (error) {
        problems.push({ field: field("body_template"), message: `not valid JSON once filled in with sample values (${(error as Error).message})` });
      }
    }
  }
  if (event.contentType !== "" && !/^[\w.+-]+\/[\w.+-]+(\s*;.*)?$/.test(event.contentType)) {
    problems.push({ field: field("content_type"), message: `"${event.contentType}" is not a media type` });
  }
  const headers = Object.entries(event.headers);
  if (headers.length > 20) problems.push({ field: field("headers"), message: "at most 20 headers" });
  for (const [name, value] of headers) {
    if (!HEADER_NAME.test(name)) problems.push({ field: field("headers"), message: `"${name}" is not a header name` });
    else if (RESERVED_HEADERS.has(name.toLowerCase())) problems.push({ field: field("headers"), message: `"${name}" is set by Funnel and cannot be configured` });
    if (/[\r\n\0]/.test(value) || value.length > 2_000) problems.push({ field: field("headers"), message: `the value of "${name}" has a line break or is longer than 2,000 characters` });
  }
  return problems;
}

/** Every problem of a partner configuration; empty when it may be stored. */
export function partnerProblems(partner: PartnerConfig): Problem[] {
  const problems: Problem[] = [];
  const idProblem = partnerIdProblem(partner.id);
  if (idProblem !== undefined) problems.push({ field: "id", message: idProblem });
  if (partner.name.length > 200) problems.push({ field: "name", message: "longer than 200 characters" });
  for (const name of EVENTS) problems.push(...eventProblems(name, partner.events[name]));
  if (partner.timeoutMs < 100 || partner.timeoutMs > 120_000) problems.push({ field: "timeout", message: "must be from 100ms to 120s" });
  const { maxAttempts, initialDelayMs, maxDelayMs } = partner.retry;
  if (!Number.isInteger(maxAttempts) || maxAttempts < 1 || maxAttempts > 100) problems.push({ field: "retry.max_attempts", message: "must be from 1 to 100" });
  if (initialDelayMs < 10 || initialDelayMs > 3_600_000) problems.push({ field: "retry.initial_delay", message: "must be from 10ms to 1h" });
  if (maxDelayMs < initialDelayMs || maxDelayMs > 86_400_000) problems.push({ field: "retry.max_delay", message: "must be from initial_delay to 24h" });
  if (partner.downloadRedirectUrl !== "") {
    let ok: boolean;
    try {
      ok = ["http:", "https:"].includes(new URL(partner.downloadRedirectUrl).protocol);
    } catch {
      ok = false;
    }
    if (!ok) problems.push({ field: "download_redirect_url", message: "must be an http or https URL" });
  }
  return problems;
}

/** A partner ready to send: its templates parsed once. */
export interface CompiledPartner {
  readonly config: StoredPartner;
  readonly templates: Readonly<Record<EventName, { readonly url: Template; readonly body: Template | undefined } | undefined>>;
}

/** Parses a stored (hence valid) partner's templates. */
export function compilePartner(config: StoredPartner): CompiledPartner {
  const compile = (event: EventPostback) =>
    event.urlTemplate === ""
      ? undefined
      : { url: parseUrlTemplate(event.urlTemplate), body: event.bodyTemplate === "" ? undefined : parseTemplate(event.bodyTemplate) };
  return {
    config,
    templates: {
      download: compile(config.events.download),
      install: compile(config.events.install),
      authorization: compile(config.events.authorization),
    },
  };
}

/** JSON with object keys sorted, so equal values give equal text whatever order they were built in. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(",")}]`;
  if (value !== null && typeof value === "object") {
    const entries = Object.entries(value).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([key, inner]) => `${JSON.stringify(key)}:${canonical(inner)}`).join(",")}}`;
  }
  return JSON.stringify(value);
}

/** Whether two configurations are the same (times aside). */
export function samePartner(a: PartnerConfig, b: PartnerConfig): boolean {
  const strip = ({ id, name, enabled, events, timeoutMs, retry, downloadPolicy, skipUnattributed, downloadRedirectUrl }: PartnerConfig) =>
    canonical({ id, name, enabled, events, timeoutMs, retry, downloadPolicy, skipUnattributed, downloadRedirectUrl });
  return strip(a) === strip(b);
}
