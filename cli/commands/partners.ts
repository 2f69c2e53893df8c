import { readFile, writeFile } from "node:fs/promises";
import { create } from "@bufbuild/protobuf";
import { jsonOf } from "../json.js";
import { durationFromMs, durationMs, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  DownloadPolicy,
  EventKind,
  EventPostbackSchema,
  HttpMethod,
  PartnerSchema,
  RetryPolicySchema,
  type EventPostback,
  type Partner,
} from "../../gen/funnel/postback/v1/partner_pb.js";
import { formatDuration, parseDuration } from "../../services/core/duration.js";
import { positionals, printJson, stringFlag, untimed, UsageError, type CommandSet, type Flags } from "../command.js";
import { withProgress } from "../progress.js";
import { table } from "../table.js";

const EVENTS = ["download", "install", "authorization"] as const;
type Event = (typeof EVENTS)[number];
const KINDS: Readonly<Record<Event, EventKind>> = { download: EventKind.DOWNLOAD, install: EventKind.INSTALL, authorization: EventKind.AUTHORIZATION };

/** Every value of a repeatable flag. */
function repeated(flags: Flags, name: string): string[] {
  const value = (flags as Readonly<Record<string, unknown>>)[name];
  return Array.isArray(value) ? value.map(String) : typeof value === "string" ? [value] : [];
}

function booleanFlag(flags: Flags, name: string): boolean | undefined {
  const value = stringFlag(flags, name)?.toLowerCase();
  if (value === undefined) return undefined;
  if (["true", "yes", "1", "on"].includes(value)) return true;
  if (["false", "no", "0", "off"].includes(value)) return false;
  throw new UsageError(`--${name}: must be true or false, got "${value}"`);
}

function durationFlag(flags: Flags, name: string) {
  const value = stringFlag(flags, name);
  if (value === undefined) return undefined;
  const ms = parseDuration(value);
  if (ms === undefined) throw new UsageError(`--${name}: not a duration such as 10s, 500ms or 1h: "${value}"`);
  return durationFromMs(ms);
}

/** `Name: value` pairs from repeated `--EVENT-header` flags. */
function headers(values: readonly string[], name: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const value of values) {
    const colon = value.indexOf(":");
    if (colon <= 0) throw new UsageError(`--${name}: expected "Name: value", got "${value}"`);
    out[value.slice(0, colon).trim()] = value.slice(colon + 1).trim();
  }
  return out;
}

function eventFromFlags(flags: Flags, event: Event, base: EventPostback | undefined): EventPostback {
  const url = stringFlag(flags, `${event}-url`);
  const method = stringFlag(flags, `${event}-method`)?.toUpperCase();
  if (method !== undefined && method !== "GET" && method !== "POST") throw new UsageError(`--${event}-method: GET or POST, got "${method}"`);
  const body = stringFlag(flags, `${event}-body`);
  const headerValues = repeated(flags, `${event}-header`);
  const next = create(EventPostbackSchema, base ?? {});
  if (url !== undefined) {
    next.urlTemplate = url;
    next.enabled = true;
  }
  if (method !== undefined) next.method = method === "POST" ? HttpMethod.POST : HttpMethod.GET;
  if (body !== undefined) {
    next.bodyTemplate = body;
    if (method === undefined) next.method = HttpMethod.POST;
  }
  const contentType = stringFlag(flags, `${event}-content-type`);
  if (contentType !== undefined) next.contentType = contentType;
  if (headerValues.length > 0) next.headers = headers(headerValues, `${event}-header`);
  const enabled = booleanFlag(flags, `${event}-enabled`);
  if (enabled !== undefined) next.enabled = enabled;
  return next;
}

/** Applies the command-line flags to a partner (a new one for `add`). */
function applyFlags(flags: Flags, partner: Partner): Partner {
  const next = create(PartnerSchema, partner);
  const name = stringFlag(flags, "name");
  if (name !== undefined) next.name = name;
  const enabled = booleanFlag(flags, "enabled");
  if (enabled !== undefined) next.enabled = enabled;
  next.download = eventFromFlags(flags, "download", partner.download);
  next.install = eventFromFlags(flags, "install", partner.install);
  next.authorization = eventFromFlags(flags, "authorization", partner.authorization);
  const timeout = durationFlag(flags, "timeout");
  if (timeout !== undefined) next.timeout = timeout;
  const maxAttempts = stringFlag(flags, "max-attempts");
  if (maxAttempts !== undefined && !/^\d+$/.test(maxAttempts)) throw new UsageError(`--max-attempts: a whole number, got "${maxAttempts}"`);
  const initialDelay = durationFlag(flags, "initial-delay");
  const maxDelay = durationFlag(flags, "max-delay");
  if (maxAttempts !== undefined || initialDelay !== undefined || maxDelay !== undefined) {
    const retry = create(RetryPolicySchema, partner.retry ?? {});
    if (maxAttempts !== undefined) retry.maxAttempts = Number(maxAttempts);
    if (initialDelay !== undefined) retry.initialDelay = initialDelay;
    if (maxDelay !== undefined) retry.maxDelay = maxDelay;
    next.retry = retry;
  }
  const policy = stringFlag(flags, "download-policy")?.toLowerCase();
  if (policy !== undefined) {
    if (policy !== "every" && policy !== "once") throw new UsageError(`--download-policy: every or once, got "${policy}"`);
    next.downloadPolicy = policy === "once" ? DownloadPolicy.ONCE : DownloadPolicy.EVERY;
  }
  const skip = booleanFlag(flags, "skip-unattributed");
  if (skip !== undefined) next.skipUnattributed = skip;
  const redirect = stringFlag(flags, "redirect-url");
  if (redirect !== undefined) next.downloadRedirectUrl = redirect;
  return next;
}

const ms = (value: Parameters<typeof durationMs>[0] | undefined) => (value === undefined ? "" : formatDuration(durationMs(value)));

function describePartner(partner: Partner): string {
  const lines = [
    `partner     ${partner.id} (${partner.name})${partner.enabled ? "" : "  [disabled]"}`,
    `timeout     ${ms(partner.timeout)}`,
    `retries     ${partner.retry?.maxAttempts ?? 0} attempts, ${ms(partner.retry?.initialDelay)} doubling up to ${ms(partner.retry?.maxDelay)}`,
    `downloads   postback ${partner.downloadPolicy === DownloadPolicy.ONCE ? "once per stag" : "every time"}${partner.downloadRedirectUrl !== "" ? `, redirect to ${partner.downloadRedirectUrl}` : ""}`,
    `unattributed ${partner.skipUnattributed ? "skipped" : "sent with empty params"}`,
  ];
  for (const event of EVENTS) {
    const e = partner[event];
    if (e === undefined || e.urlTemplate === "") {
      lines.push(`${event.padEnd(12)}-`);
      continue;
    }
    lines.push(`${event.padEnd(12)}${e.method === HttpMethod.POST ? "POST" : "GET"} ${e.urlTemplate}${e.enabled ? "" : "  [disabled]"}`);
    if (e.bodyTemplate !== "") lines.push(`${"".padEnd(12)}body (${e.contentType}): ${e.bodyTemplate}`);
    for (const [name, value] of Object.entries(e.headers)) lines.push(`${"".padEnd(12)}${name}: ${value}`);
  }
  return lines.join("\n");
}

/** `--event NAME` as the proto enum; UNSPECIFIED when absent and not required. */
export function eventFlag(flags: Flags, required: boolean): EventKind {
  const value = stringFlag(flags, "event");
  if (value === undefined) {
    if (required) throw new UsageError("--event is required (download, install or authorization)");
    return EventKind.UNSPECIFIED;
  }
  if (!(EVENTS as readonly string[]).includes(value)) throw new UsageError(`--event: download, install or authorization, got "${value}"`);
  return KINDS[value as Event];
}

async function readInput(path: string): Promise<string> {
  if (path !== "-") return readFile(path, "utf8");
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

const eventOptions = Object.fromEntries(
  EVENTS.flatMap((event) => [
    [`${event}-url`, { type: "string" }],
    [`${event}-method`, { type: "string" }],
    [`${event}-body`, { type: "string" }],
    [`${event}-content-type`, { type: "string" }],
    [`${event}-header`, { type: "string", multiple: true }],
    [`${event}-enabled`, { type: "string" }],
  ]),
) as NonNullable<CommandSet["options"]>;

/** Ids or problems an import names one by one before it only counts the rest. */
const SHOWN = 10;

/** `funnel partners …`: the PartnerService. */
export const partnerCommands: CommandSet = {
  help: `  partners list                 every partner with its enabled events
  partners show ID              one partner's configuration
  partners add ID [options]     add a partner; an event is enabled by giving its URL:
                                --install-url T  --install-method GET|POST  --install-body T
                                --install-content-type T  --install-header "Name: value"
                                (same for download- and authorization-), --name N,
                                --timeout 10s, --max-attempts N, --initial-delay 10s,
                                --max-delay 1h, --download-policy every|once,
                                --skip-unattributed true, --redirect-url URL, --enabled false
  partners update ID [options]  change the given fields (and --EVENT-enabled true|false)
  partners remove ID            delete a partner
  partners import FILE|- [--dry-run] [--prune [--confirm-prune-all]]
                                apply a CSV file: all rows or none, with a per-row report;
                                --prune deletes partners the file does not list (a file
                                listing none needs --confirm-prune-all)
  partners export [FILE]        every partner as CSV (stdout without FILE)
  partners preview ID --event E [--click-id C] [--param NAME=VALUE]... [--user-id U]
                   [--device-id D] [--timestamp UNIX] [--url-template T] [--body-template T]
                                render a postback for sample values without sending it`,
  options: {
    name: { type: "string" },
    enabled: { type: "string" },
    timeout: { type: "string" },
    "max-attempts": { type: "string" },
    "initial-delay": { type: "string" },
    "max-delay": { type: "string" },
    "download-policy": { type: "string" },
    "skip-unattributed": { type: "string" },
    "redirect-url": { type: "string" },
    ...eventOptions,
    "dry-run": { type: "boolean" },
    prune: { type: "boolean" },
    "confirm-prune-all": { type: "boolean" },
    event: { type: "string" },
    "click-id": { type: "string" },
    param: { type: "string", multiple: true },
    "user-id": { type: "string" },
    "device-id": { type: "string" },
    timestamp: { type: "string" },
    "url-template": { type: "string" },
    "body-template": { type: "string" },
  },
  examples: [
    "funnel partners add acme --install-url \"https://acme.example/pb?click={stag_clickID}\"",
    "funnel partners list",
    "funnel partners import partners.csv --dry-run",
    "funnel partners export partners.csv",
    "funnel partners preview acme --event install --click-id abc",
  ],
  commands: {
    async "partners list"({ clients, json, out }) {
      const { partners } = await clients.partners.listPartners({});
      if (json) return printJson(out, partners.map((p) => jsonOf(PartnerSchema, p)));
      if (partners.length === 0) return out("no partners");
      const on = (e: EventPostback | undefined) => (e?.enabled === true ? "on" : "-");
      out(
        table(
          ["id", "name", "enabled", "download", "install", "authorization", "timeout", "attempts"],
          partners.map((p) => [p.id, p.name, p.enabled ? "yes" : "no", on(p.download), on(p.install), on(p.authorization), ms(p.timeout), String(p.retry?.maxAttempts ?? "")]),
        ),
      );
    },
    async "partners show"({ clients, args, json, out }) {
      const [id = ""] = positionals(args, ["ID"], "partners show");
      const { partner } = await clients.partners.getPartner({ id });
      if (partner === undefined) throw new UsageError(`no partner ${id}`);
      if (json) return printJson(out, jsonOf(PartnerSchema, partner));
      out(describePartner(partner));
    },
    async "partners add"({ clients, args, flags, json, out }) {
      const [id = ""] = positionals(args, ["ID"], "partners add");
      const base = create(PartnerSchema, { id, enabled: true });
      const { partner } = await clients.partners.createPartner({ partner: applyFlags(flags, base) });
      if (json && partner !== undefined) return printJson(out, jsonOf(PartnerSchema, partner));
      out(`added partner ${id}`);
    },
    async "partners update"({ clients, args, flags, json, out }) {
      const [id = ""] = positionals(args, ["ID"], "partners update");
      const client = clients.partners;
      const { partner: current } = await client.getPartner({ id });
      if (current === undefined) throw new UsageError(`no partner ${id}`);
      const { partner } = await client.updatePartner({ partner: applyFlags(flags, current) });
      if (json && partner !== undefined) return printJson(out, jsonOf(PartnerSchema, partner));
      out(`updated partner ${id}`);
    },
    async "partners remove"({ clients, args, out }) {
      const [id = ""] = positionals(args, ["ID"], "partners remove");
      await clients.partners.deletePartner({ id });
      out(`removed partner ${id}`);
    },
    async "partners import"({ clients, args, flags, json, out }) {
      const [file = ""] = positionals(args, ["FILE"], "partners import");
      const csv = await readInput(file);
      const call = clients.partners.importPartners({ csv, dryRun: flags["dry-run"] === true, prune: flags.prune === true, confirmPruneAll: flags["confirm-prune-all"] === true }, untimed);
      const res = await withProgress(`importing ${file === "-" ? "stdin" : file}`, call)
        .catch((error: unknown) => {
          if (error instanceof ConnectError && error.code === Code.InvalidArgument && error.rawMessage.startsWith("confirm_prune_all:")) {
            throw new UsageError(`partners import: ${file} lists no partner, so --prune would delete every partner; add --confirm-prune-all to do that (--dry-run shows which)`);
          }
          throw error;
        });
      if (json) {
        printJson(out, { applied: res.applied, created: res.created, updated: res.updated, unchanged: res.unchanged, deleted: res.deleted, errors: res.errors.map((e) => ({ line: e.line, partnerId: e.partnerId, column: e.column, message: e.message })) });
      } else if (res.errors.length > 0) {
        for (const e of res.errors.slice(0, SHOWN)) out(`line ${e.line}${e.partnerId !== "" ? ` (${e.partnerId})` : ""}${e.column !== "" ? ` ${e.column}` : ""}: ${e.message}`);
        if (res.errors.length > SHOWN) out(`…and ${res.errors.length - SHOWN} more problem(s) (--json lists every one)`);
      } else {
        const list = (ids: readonly string[]) =>
          ids.length === 0 ? "0" : ids.length <= SHOWN ? `${ids.length} (${ids.join(", ")})` : `${ids.length} (${ids.slice(0, SHOWN).join(", ")}, …and ${ids.length - SHOWN} more; --json lists every id)`;
        out(`${res.applied ? "applied" : "dry run, nothing applied"}: created ${list(res.created)}, updated ${list(res.updated)}, unchanged ${res.unchanged.length}, deleted ${list(res.deleted)}`);
      }
      if (res.errors.length > 0) throw new Error(`${file}: ${res.errors.length} problem(s), nothing applied`);
    },
    async "partners export"({ clients, args, out }) {
      if (args.length > 1) throw new UsageError("partners export: at most one FILE");
      const { csv } = await clients.partners.exportPartners({});
      if (args[0] === undefined || args[0] === "-") process.stdout.write(csv);
      else {
        await writeFile(args[0], csv);
        out(`wrote ${args[0]}`);
      }
    },
    async "partners preview"({ clients, args, flags, json, out }) {
      const [id = ""] = positionals(args, ["ID"], "partners preview");
      const params: Record<string, string> = {};
      for (const pair of repeated(flags, "param")) {
        const eq = pair.indexOf("=");
        if (eq <= 0) throw new UsageError(`--param: expected NAME=VALUE, got "${pair}"`);
        params[pair.slice(0, eq)] = pair.slice(eq + 1);
      }
      const timestamp = stringFlag(flags, "timestamp");
      if (timestamp !== undefined && !/^\d+$/.test(timestamp)) throw new UsageError(`--timestamp: unix seconds, got "${timestamp}"`);
      const res = await clients.partners.previewPostback({
        partnerId: id,
        event: eventFlag(flags, true),
        urlTemplate: stringFlag(flags, "url-template") ?? "",
        bodyTemplate: stringFlag(flags, "body-template") ?? "",
        sample: {
          clickId: stringFlag(flags, "click-id") ?? "",
          params,
          userId: stringFlag(flags, "user-id") ?? "",
          deviceId: stringFlag(flags, "device-id") ?? "",
          ...(timestamp !== undefined ? { occurredAt: timestampFromDate(new Date(Number(timestamp) * 1000)) } : {}),
        },
      });
      const method = res.method === HttpMethod.POST ? "POST" : "GET";
      if (json) return printJson(out, { method, url: res.url, headers: res.headers, body: res.body, wouldSend: res.wouldSend });
      out(`${method} ${res.url}`);
      for (const [name, value] of Object.entries(res.headers)) out(`${name}: ${value}`);
      if (res.body !== "") out(`\n${res.body}`);
      if (!res.wouldSend) out("(not sent: the partner or this event is disabled)");
    },
  },
};
