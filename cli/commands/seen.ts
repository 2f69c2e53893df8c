import { create } from "@bufbuild/protobuf";
import { jsonOf } from "../json.js";
import { durationFromMs, durationMs, timestampDate, type Duration } from "@bufbuild/protobuf/wkt";
import {
  ApiDeliverySchema,
  GetIntegrationResponseSchema,
  IntegrationSchema,
  ListTagsResponseSchema,
  TagRetentionSchema,
  TopicDeliverySchema,
  SeenDeliverySchema,
  type Integration,
  type SeenDelivery,
} from "../../gen/funnel/seen/v1/admin_pb.js";
import { formatDuration, parseDuration } from "../../services/core/duration.js";
import { limitFlag, positionals, printJson, stringFlag, untimed, UsageError, type CommandSet, type Flags } from "../command.js";
import { withProgress } from "../progress.js";
import { table } from "../table.js";

/** `--NAME 30s` as a Duration, or undefined when absent. */
function durationFlag(flags: Flags, name: string): Duration | undefined {
  const text = stringFlag(flags, name);
  if (text === undefined) return undefined;
  const ms = parseDuration(text);
  if (ms === undefined) throw new UsageError(`--${name}: not a duration such as 500ms, 30s, 5m, 1h or 7d, got "${text}"`);
  return durationFromMs(ms);
}

function tagsFlag(flags: Flags): string[] | undefined {
  const text = stringFlag(flags, "tags");
  return text === undefined ? undefined : text.split(",").map((tag) => tag.trim()).filter((tag) => tag !== "");
}

function maxAttemptsFlag(flags: Flags): number | undefined {
  const text = stringFlag(flags, "max-attempts");
  if (text === undefined) return undefined;
  if (!/^\d+$/.test(text)) throw new UsageError(`--max-attempts: must be a whole number (0 = until the mark's retention ends), got "${text}"`);
  return Number(text);
}

const show = (duration: Duration | undefined): string => (duration === undefined ? "" : formatDuration(durationMs(duration)));

/** Applies the delivery flags to `current` (undefined: a new integration). */
function applyFlags(name: string, flags: Flags, current: Integration | undefined): Integration {
  const endpoint = stringFlag(flags, "endpoint");
  const topic = stringFlag(flags, "topic");
  if (endpoint !== undefined && topic !== undefined) throw new UsageError("--endpoint and --topic: give one (api or topic delivery)");
  const apiFlags = ["timeout", "max-attempts", "initial-backoff", "max-backoff"].filter((flag) => flags[flag] !== undefined);
  if (flags.enable === true && flags.disable === true) throw new UsageError("--enable and --disable: give one");
  const integration = create(IntegrationSchema, current ?? { name, enabled: true });
  integration.name = name;
  integration.tags = tagsFlag(flags) ?? integration.tags;
  if (flags.enable === true) integration.enabled = true;
  if (flags.disable === true) integration.enabled = false;
  if (topic !== undefined || (integration.delivery.case === "topic" && endpoint === undefined)) {
    if (apiFlags.length > 0) throw new UsageError(`--${apiFlags[0]}: only for api delivery (--endpoint)`);
    const previous = integration.delivery.case === "topic" ? integration.delivery.value : create(TopicDeliverySchema);
    const retention = durationFlag(flags, "retention");
    integration.delivery = {
      case: "topic",
      value: create(TopicDeliverySchema, { topic: topic ?? previous.topic, ...(retention ?? previous.retention ? { retention: retention ?? previous.retention } : {}) }),
    };
  } else if (endpoint !== undefined || integration.delivery.case === "api") {
    if (flags.retention !== undefined) throw new UsageError("--retention: only for topic delivery (--topic)");
    const previous = integration.delivery.case === "api" ? integration.delivery.value : create(ApiDeliverySchema);
    const api = create(ApiDeliverySchema, previous);
    api.url = endpoint ?? previous.url;
    api.timeout = durationFlag(flags, "timeout") ?? previous.timeout;
    api.maxAttempts = maxAttemptsFlag(flags) ?? previous.maxAttempts;
    api.initialBackoff = durationFlag(flags, "initial-backoff") ?? previous.initialBackoff;
    api.maxBackoff = durationFlag(flags, "max-backoff") ?? previous.maxBackoff;
    integration.delivery = { case: "api", value: api };
  } else {
    throw new UsageError("seen integrations add: --endpoint URL (api delivery) or --topic NAME (topic delivery) is required");
  }
  return integration;
}

function describeDelivery(integration: Integration): [string, string] {
  const { delivery } = integration;
  if (delivery.case === "api") {
    const api = delivery.value;
    const attempts = api.maxAttempts === 0 ? "until retention" : `${api.maxAttempts} attempts`;
    return ["api", `${api.url} (timeout ${show(api.timeout)}, ${attempts}, backoff ${show(api.initialBackoff)}..${show(api.maxBackoff)})`];
  }
  if (delivery.case === "topic") return ["topic", `${delivery.value.topic} (retention ${show(delivery.value.retention)})`];
  return ["", ""];
}

const row = (integration: Integration): string[] => [integration.name, integration.enabled ? "yes" : "no", integration.tags.join(","), ...describeDelivery(integration)];
const HEADER = ["name", "enabled", "tags", "kind", "delivery"];

const stamp = (ts: SeenDelivery["createdAt"]): string => (ts === undefined ? "" : timestampDate(ts).toISOString().replace(/\.\d+Z$/, "Z"));

function deliveryRows(deliveries: readonly SeenDelivery[]): string {
  return table(
    ["id", "integration", "tag", "item", "status", "attempts", "error", "created"],
    deliveries.map((d) => [d.id, d.integration, d.tag, d.itemId, d.status, String(d.attempts), d.lastError.replace(/\s*\n\s*/g, " "), stamp(d.createdAt)]),
  );
}

/** `funnel seen …`: the SeenAdminService. */
export const seenCommands: CommandSet = {
  help: `  seen integrations add NAME --tags T1,T2 (--endpoint URL | --topic TOPIC) [options]
                                add an integration owning the tags; api options:
                                --timeout 5s --max-attempts N (0 = until the mark's
                                retention ends) --initial-backoff 1s --max-backoff 1h;
                                topic option: --retention 7d; --disable to add it disabled
  seen integrations update NAME [same options] [--enable | --disable]
                                change the given settings, keep the others
  seen integrations list        every integration
  seen integrations show NAME   one integration, with its pending and dead deliveries
  seen integrations remove NAME remove an integration (pending deliveries are cancelled)
  seen tags set-retention TAG DURATION
                                how long marks of TAG are remembered (e.g. 30d, 12h)
  seen tags list                tags with a retention of their own, and the default
  seen deliveries list [--integration NAME] [--status S] [--limit N]
                                api deliveries, newest first (S: pending, delivered, dead,
                                cancelled; at most N, default 100)
  seen deliveries show ID       one api delivery
  seen deliveries replay ID...  start a new round of attempts for dead deliveries, now`,
  options: {
    tags: { type: "string" },
    endpoint: { type: "string" },
    topic: { type: "string" },
    timeout: { type: "string" },
    "max-attempts": { type: "string" },
    "initial-backoff": { type: "string" },
    "max-backoff": { type: "string" },
    retention: { type: "string" },
    integration: { type: "string" },
    enable: { type: "boolean" },
    disable: { type: "boolean" },
  },
  examples: [
    "funnel seen integrations add crm --tags order,invoice --endpoint https://crm.example/seen",
    "funnel seen integrations list",
    "funnel seen integrations show crm",
    "funnel seen tags set-retention order 30d",
    "funnel seen deliveries list --integration crm --status dead",
    "funnel seen deliveries replay ID",
  ],
  commands: {
    async "seen integrations add"({ clients, flags, json, out, args }) {
      const [name = ""] = positionals(args, ["NAME"], "seen integrations add");
      if (flags.enable === true) throw new UsageError("seen integrations add: --enable is the default; --disable adds it disabled");
      const { integration } = await clients.seenAdmin.createIntegration({ integration: applyFlags(name, flags, undefined) });
      if (integration === undefined) return;
      if (json) return printJson(out, jsonOf(IntegrationSchema, integration));
      out(table(HEADER, [row(integration)]));
    },
    async "seen integrations update"({ clients, flags, json, out, args }) {
      const [name = ""] = positionals(args, ["NAME"], "seen integrations update");
      const client = clients.seenAdmin;
      const { integration: current } = await client.getIntegration({ name });
      const { integration } = await client.updateIntegration({ integration: applyFlags(name, flags, current) });
      if (integration === undefined) return;
      if (json) return printJson(out, jsonOf(IntegrationSchema, integration));
      out(table(HEADER, [row(integration)]));
    },
    async "seen integrations list"({ clients, json, out, args }) {
      positionals(args, [], "seen integrations list");
      const { integrations } = await clients.seenAdmin.listIntegrations({});
      if (json) return printJson(out, integrations.map((integration) => jsonOf(IntegrationSchema, integration)));
      if (integrations.length === 0) return out("no integrations");
      out(table(HEADER, integrations.map(row)));
    },
    async "seen integrations show"({ clients, json, out, args }) {
      const [name = ""] = positionals(args, ["NAME"], "seen integrations show");
      const answer = await clients.seenAdmin.getIntegration({ name });
      if (json) return printJson(out, jsonOf(GetIntegrationResponseSchema, answer));
      if (answer.integration === undefined) return;
      out(table([...HEADER, "pending", "dead"], [[...row(answer.integration), String(answer.pendingDeliveries), String(answer.deadDeliveries)]]));
    },
    async "seen integrations remove"({ clients, json, out, args }) {
      const [name = ""] = positionals(args, ["NAME"], "seen integrations remove");
      await clients.seenAdmin.deleteIntegration({ name });
      if (json) return printJson(out, { removed: name });
      out(`removed ${name}`);
    },
    async "seen tags set-retention"({ clients, json, out, args }) {
      const [tag = "", text = ""] = positionals(args, ["TAG", "DURATION"], "seen tags set-retention");
      const ms = parseDuration(text);
      if (ms === undefined) throw new UsageError(`seen tags set-retention: DURATION must be like 30d, 12h or 90s, got "${text}"`);
      const { tag: stored } = await clients.seenAdmin.setTagRetention({ tag, retention: durationFromMs(ms) });
      if (stored === undefined) return;
      if (json) return printJson(out, jsonOf(TagRetentionSchema, stored));
      out(`${stored.tag}: marks are remembered for ${show(stored.retention)}`);
    },
    async "seen deliveries list"({ clients, flags, json, out, args }) {
      positionals(args, [], "seen deliveries list");
      const status = stringFlag(flags, "status") ?? "";
      const { deliveries } = await clients.seenAdmin.listDeliveries({ integration: stringFlag(flags, "integration") ?? "", status, limit: limitFlag(flags) });
      if (json) return printJson(out, deliveries.map((d) => jsonOf(SeenDeliverySchema, d)));
      out(deliveries.length === 0 ? "no deliveries" : deliveryRows(deliveries));
    },
    async "seen deliveries show"({ clients, json, out, args }) {
      const [id = ""] = positionals(args, ["ID"], "seen deliveries show");
      const { delivery } = await clients.seenAdmin.getDelivery({ id });
      if (delivery === undefined) return;
      if (json) return printJson(out, jsonOf(SeenDeliverySchema, delivery));
      out(
        table(
          ["field", "value"],
          [
            ["id", delivery.id],
            ["integration", delivery.integration],
            ["tag", delivery.tag],
            ["item", delivery.itemId],
            ["status", delivery.status],
            ["attempts", String(delivery.attempts)],
            ["error", delivery.lastError.replace(/\s*\n\s*/g, " ")],
            ["created", stamp(delivery.createdAt)],
            ["next attempt", stamp(delivery.nextAttemptAt)],
            ["finished", stamp(delivery.finishedAt)],
          ],
        ),
      );
    },
    async "seen deliveries replay"({ clients, json, out, args }) {
      if (args.length === 0) throw new UsageError("seen deliveries replay: at least one delivery ID is required");
      const res = await withProgress("replaying deliveries", clients.seenAdmin.replayDeliveries({ ids: [...args] }, untimed));
      if (json) return printJson(out, { replayed: res.replayed, notFound: res.notFound, notDead: res.notDead });
      out(`replayed ${res.replayed.length} delivery(ies)${res.notDead.length > 0 ? `; not dead, left as they are: ${res.notDead.join(", ")}` : ""}`);
      if (res.notFound.length > 0) throw new Error(`no such delivery: ${res.notFound.join(", ")}`);
    },
    async "seen tags list"({ clients, json, out, args }) {
      positionals(args, [], "seen tags list");
      const answer = await clients.seenAdmin.listTags({});
      if (json) return printJson(out, jsonOf(ListTagsResponseSchema, answer));
      const rows = answer.tags.map((tag) => [tag.tag, show(tag.retention), tag.updatedAt === undefined ? "" : timestampDate(tag.updatedAt).toISOString()]);
      out(table(["tag", "retention", "updated"], [...rows, ["(every other tag)", show(answer.defaultRetention), ""]]));
    },
  },
};
