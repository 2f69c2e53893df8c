import { create } from "@bufbuild/protobuf";
import { jsonOf } from "../json.js";
import { timestampDate, timestampFromDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import { DeliveryFilterSchema, DeliverySchema, DeliveryStatus, type Delivery, type DeliveryFilter } from "../../gen/funnel/postback/v1/delivery_pb.js";
import { EventKind, HttpMethod } from "../../gen/funnel/postback/v1/partner_pb.js";
import { parseDuration } from "../../services/core/duration.js";
import { limitFlag, positionals, printJson, stringFlag, untimed, UsageError, type CommandSet, type Flags } from "../command.js";
import { withProgress } from "../progress.js";
import { table } from "../table.js";
import { eventFlag } from "./partners.js";

const STATUSES = ["pending", "retrying", "delivered", "dead", "cancelled"] as const;
const STATUS_OF: Readonly<Record<(typeof STATUSES)[number], DeliveryStatus>> = {
  pending: DeliveryStatus.PENDING,
  retrying: DeliveryStatus.RETRYING,
  delivered: DeliveryStatus.DELIVERED,
  dead: DeliveryStatus.DEAD,
  cancelled: DeliveryStatus.CANCELLED,
};

const statusName = (status: DeliveryStatus): string => DeliveryStatus[status]?.toLowerCase() ?? String(status);
const eventName = (event: EventKind): string => EventKind[event]?.toLowerCase() ?? String(event);
const iso = (ts: Timestamp | undefined): string => (ts === undefined ? "" : timestampDate(ts).toISOString().replace(/\.\d+Z$/, "Z"));

/** `--from`/`--to`: an ISO time, or a duration meaning that long ago (`24h`). */
function timeFlag(flags: Flags, name: string): Timestamp | undefined {
  const value = stringFlag(flags, name);
  if (value === undefined) return undefined;
  const ago = parseDuration(value);
  const date = ago !== undefined && !/^\d{4}-/.test(value) ? new Date(Date.now() - ago) : new Date(value);
  if (Number.isNaN(date.getTime())) throw new UsageError(`--${name}: an ISO time or a duration ago (24h), got "${value}"`);
  return timestampFromDate(date);
}

function filterFlags(flags: Flags): DeliveryFilter {
  const status = stringFlag(flags, "status");
  if (status !== undefined && !(STATUSES as readonly string[]).includes(status)) throw new UsageError(`--status: one of ${STATUSES.join(", ")}, got "${status}"`);
  const from = timeFlag(flags, "from");
  const to = timeFlag(flags, "to");
  return create(DeliveryFilterSchema, {
    partnerId: stringFlag(flags, "partner") ?? "",
    event: eventFlag(flags, false),
    status: status !== undefined ? STATUS_OF[status as (typeof STATUSES)[number]] : DeliveryStatus.UNSPECIFIED,
    stag: stringFlag(flags, "stag") ?? "",
    ...(from !== undefined ? { from } : {}),
    ...(to !== undefined ? { to } : {}),
  });
}

function rows(deliveries: readonly Delivery[]): string {
  return table(
    ["id", "partner", "event", "stag", "status", "attempts", "http", "error", "created"],
    deliveries.map((d) => [
      d.id,
      d.partnerId,
      eventName(d.event),
      d.stag.length > 40 ? `${d.stag.slice(0, 39)}…` : d.stag,
      statusName(d.status),
      String(d.attempts),
      d.lastHttpStatus === 0 ? "" : String(d.lastHttpStatus),
      d.lastError.slice(0, 50),
      iso(d.createdAt),
    ]),
  );
}

/** `funnel deliveries …`: the DeliveryService. */
export const deliveryCommands: CommandSet = {
  help: `  deliveries list [--partner P] [--event E] [--status S] [--stag S] [--from T] [--to T] [--limit N]
                                postbacks, newest first (S: pending, retrying, delivered, dead,
                                cancelled; T: ISO time or a duration ago such as 24h)
  deliveries show ID            one postback with every attempt
  deliveries replay ID...       send postbacks again, now, with a fresh retry budget
  deliveries replay --partner P [--status dead] [--event E] [--from T] [--to T] [--limit N]
                                replay every postback the filter matches`,
  options: { partner: { type: "string" }, status: { type: "string" }, stag: { type: "string" }, from: { type: "string" }, to: { type: "string" } },
  examples: [
    "funnel deliveries list --partner acme --status dead --from 24h",
    "funnel deliveries show ID",
    "funnel deliveries replay --partner acme --status dead",
  ],
  commands: {
    async "deliveries list"({ clients, flags, json, out }) {
      const { deliveries, nextPageToken } = await clients.deliveries.listDeliveries({ filter: filterFlags(flags), limit: limitFlag(flags) });
      if (json) return printJson(out, deliveries.map((d) => jsonOf(DeliverySchema, d)));
      if (deliveries.length === 0) return out("no deliveries");
      out(rows(deliveries));
      if (nextPageToken !== "") out(`(more: narrow the filter or raise --limit)`);
    },
    async "deliveries show"({ clients, args, json, out }) {
      const [id = ""] = positionals(args, ["ID"], "deliveries show");
      const { delivery } = await clients.deliveries.getDelivery({ id });
      if (delivery === undefined) throw new UsageError(`no delivery ${id}`);
      if (json) return printJson(out, jsonOf(DeliverySchema, delivery));
      out(`delivery    ${delivery.id}`);
      out(`partner     ${delivery.partnerId}   event ${eventName(delivery.event)}   stag ${delivery.stag}`);
      out(`status      ${statusName(delivery.status)}, ${delivery.attempts} of ${delivery.attemptLimit} attempts${delivery.nextAttemptAt !== undefined ? `, next at ${iso(delivery.nextAttemptAt)}` : ""}`);
      out(`occurred    ${iso(delivery.occurredAt)}   queued ${iso(delivery.createdAt)}`);
      if (Object.keys(delivery.params).length > 0) out(`params      ${new URLSearchParams(delivery.params).toString()}`);
      if (delivery.attemptLog.length === 0) return;
      out("");
      out(
        table(
          ["#", "at", "method", "http", "ms", "outcome", "error", "url", "body"],
          delivery.attemptLog.map((a) => [
            String(a.attempt),
            iso(a.attemptedAt),
            a.method === HttpMethod.POST ? "POST" : "GET",
            a.httpStatus === 0 ? "" : String(a.httpStatus),
            a.durationMs.toFixed(1),
            a.outcome,
            a.error,
            a.url,
            JSON.stringify(new TextDecoder().decode(a.responseBody)),
          ]),
        ),
      );
    },
    async "deliveries replay"({ clients, args, flags, json, out }) {
      const client = clients.deliveries;
      const filter = filterFlags(flags);
      const hasFilter = filter.partnerId !== "" || filter.event !== EventKind.UNSPECIFIED || filter.status !== DeliveryStatus.UNSPECIFIED || filter.stag !== "" || filter.from !== undefined || filter.to !== undefined;
      if (args.length > 0 && hasFilter) throw new UsageError("deliveries replay: give IDs or filter options, not both");
      if (args.length === 0 && !hasFilter) throw new UsageError("deliveries replay: give IDs or at least one filter option (--partner, --status, …)");
      const res = await withProgress("replaying postbacks", client.redeliver(args.length > 0 ? { ids: [...args] } : { filter, limit: limitFlag(flags) }, untimed));
      if (json) return printJson(out, { redelivered: res.redelivered, notFound: res.notFound });
      out(`replayed ${res.redelivered.length} postback(s)`);
      if (res.notFound.length > 0) throw new Error(`no such delivery: ${res.notFound.join(", ")}`);
    },
  },
};
