import { jsonOf } from "../json.js";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { GetStatsResponseSchema, TrackerSchema, type Tracker } from "../../gen/funnel/tracker/v1/tracker_pb.js";
import { limitFlag, positionals, printJson, requiredFlag, type CommandSet } from "../command.js";
import { table } from "../table.js";

const when = (tracker: Tracker, field: "createdAt" | "updatedAt"): string => {
  const stamp = tracker[field];
  return stamp === undefined ? "" : timestampDate(stamp).toISOString();
};

/** `funnel trackers …`: the TrackerService. */
export const trackerCommands: CommandSet = {
  help: `  trackers create --value V     add a tracker; prints its UUID
  trackers list [--limit N]     trackers, oldest first (all, or the first N)
  trackers show UUID            one tracker
  trackers set-value UUID V     change a tracker's value
  trackers stats UUID --from F --to T
                                hits per UTC day and in total; F and T are YYYY-MM-DD
                                (inclusive) or RFC 3339 timestamps`,
  options: { value: { type: "string" }, from: { type: "string" }, to: { type: "string" } },
  examples: [
    "funnel trackers create --value summer-sale",
    "funnel trackers list --limit 10",
    "funnel trackers set-value UUID winter-sale",
    "funnel trackers stats UUID --from 2026-01-01 --to 2026-01-31",
  ],
  commands: {
    async "trackers create"({ clients, flags, json, out, args }) {
      positionals(args, [], "trackers create");
      const { tracker } = await clients.tracker.createTracker({ value: requiredFlag(flags, "value", "trackers create") });
      if (tracker === undefined) return;
      if (json) return printJson(out, jsonOf(TrackerSchema, tracker));
      out(tracker.uuid);
    },
    async "trackers list"({ clients, flags, json, out }) {
      const client = clients.tracker;
      const limit = limitFlag(flags);
      const trackers: Tracker[] = [];
      let pageToken = "";
      do {
        const pageSize = limit === 0 ? 1000 : Math.min(1000, limit - trackers.length);
        const page = await client.listTrackers({ pageSize, pageToken });
        trackers.push(...page.trackers);
        pageToken = page.nextPageToken;
      } while (pageToken !== "" && (limit === 0 || trackers.length < limit));
      if (json) return printJson(out, trackers.map((tracker) => jsonOf(TrackerSchema, tracker)));
      if (trackers.length === 0) return out("no trackers");
      out(table(["uuid", "value", "created", "updated"], trackers.map((t) => [t.uuid, t.value, when(t, "createdAt"), when(t, "updatedAt")])));
    },
    async "trackers show"({ clients, json, out, args }) {
      const [uuid = ""] = positionals(args, ["UUID"], "trackers show");
      const { tracker } = await clients.tracker.getTracker({ uuid });
      if (tracker === undefined) return;
      if (json) return printJson(out, jsonOf(TrackerSchema, tracker));
      out(table(["uuid", "value", "created", "updated"], [[tracker.uuid, tracker.value, when(tracker, "createdAt"), when(tracker, "updatedAt")]]));
    },
    async "trackers set-value"({ clients, json, out, args }) {
      const [uuid = "", value = ""] = positionals(args, ["UUID", "VALUE"], "trackers set-value");
      const { tracker } = await clients.tracker.updateTracker({ uuid, value });
      if (tracker === undefined) return;
      if (json) return printJson(out, jsonOf(TrackerSchema, tracker));
      out(`${tracker.uuid}: ${tracker.value}`);
    },
    async "trackers stats"({ clients, flags, json, out, args }) {
      const [trackerId = ""] = positionals(args, ["UUID"], "trackers stats");
      const stats = await clients.tracker.getStats({
        trackerId,
        from: requiredFlag(flags, "from", "trackers stats"),
        to: requiredFlag(flags, "to", "trackers stats"),
      });
      if (json) return printJson(out, jsonOf(GetStatsResponseSchema, stats));
      out(table(["date", "hits"], stats.days.map((day) => [day.date, String(day.count)])));
      out(`total ${stats.count} hits from ${stats.from} to ${stats.to}`);
    },
  },
};
