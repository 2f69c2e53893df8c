import { timestampFromDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import { useState } from "preact/hooks";
import { DeliveryStatus, type Attempt, type Delivery } from "../../../gen/funnel/postback/v1/delivery_pb.js";
import { EventKind } from "../../../gen/funnel/postback/v1/partner_pb.js";
import type { SeenAttempt, SeenDelivery } from "../../../gen/funnel/seen/v1/admin_pb.js";
import { api } from "../api.js";
import { useAction, useQuery } from "../query.js";
import { href, type Route } from "../router.js";
import { ConfirmDialog, count, ErrorBanner, formatTime, Status } from "../ui/common.js";
import { FilterBar, TIME_RANGE_FILTERS, useFilterParams, type FilterControl } from "../ui/filter-bar.js";
import { Pager, SelectableTable, usePageTokens, useSelection, type Column } from "../ui/table.js";

const PAGE_SIZE = 50;

const STATUS_NAMES: Record<DeliveryStatus, string> = {
  [DeliveryStatus.UNSPECIFIED]: "any",
  [DeliveryStatus.PENDING]: "pending",
  [DeliveryStatus.RETRYING]: "retrying",
  [DeliveryStatus.DELIVERED]: "delivered",
  [DeliveryStatus.DEAD]: "dead",
  [DeliveryStatus.CANCELLED]: "cancelled",
};

const EVENT_NAMES: Record<EventKind, string> = {
  [EventKind.UNSPECIFIED]: "any",
  [EventKind.DOWNLOAD]: "download",
  [EventKind.INSTALL]: "install",
  [EventKind.AUTHORIZATION]: "authorization",
};

/** A `datetime-local` value read as UTC (the console shows UTC everywhere). */
function utc(value: string): Timestamp | undefined {
  if (value === "") return undefined;
  const date = new Date(`${value}Z`);
  return Number.isNaN(date.getTime()) ? undefined : timestampFromDate(date);
}

/** Every attempt of one delivery, oldest first: what was asked, what came back, how long it took. */
function AttemptTimeline(props: { attempts: readonly (Attempt | SeenAttempt)[] }) {
  if (props.attempts.length === 0) return <p class="muted">No attempt yet.</p>;
  return (
    <ol class="timeline" aria-label="Attempts" data-testid="attempts">
      {props.attempts.map((a) => {
        const body = typeof a.responseBody === "string" ? a.responseBody : new TextDecoder().decode(a.responseBody);
        return (
          <li key={a.attempt} class={`attempt ${a.outcome}`} data-outcome={a.outcome}>
            <h3>
              Attempt {a.attempt}: {a.outcome} {a.httpStatus !== 0 ? `· HTTP ${a.httpStatus}` : "· no answer"}
            </h3>
            <dl>
              <dt>At (UTC)</dt>
              <dd>{formatTime(a.attemptedAt)}</dd>
              <dt>Duration</dt>
              <dd>{a.durationMs.toFixed(1)} ms</dd>
              <dt>URL</dt>
              <dd>
                <code>{a.url}</code>
              </dd>
              {a.error !== "" ? (
                <>
                  <dt>Error</dt>
                  <dd>{a.error}</dd>
                </>
              ) : null}
              {body !== "" ? (
                <>
                  <dt>Answer (first bytes)</dt>
                  <dd>
                    <code>{body}</code>
                  </dd>
                </>
              ) : null}
            </dl>
          </li>
        );
      })}
    </ol>
  );
}

function PostbackDetail({ id }: { id: string }) {
  const query = useQuery({ key: ["deliveries", "one", id], fn: (signal) => api.deliveries.getDelivery({ id }, { signal }), refetchMs: 2_000 });
  const [confirming, setConfirming] = useState(false);
  const replay = useAction(() => api.deliveries.redeliver({ ids: [id] }), [["deliveries"]]);
  const d = query.data?.delivery;
  return (
    <section>
      <p>
        <a href={href("deliveries")}>← Deliveries</a>
      </p>
      <h1>Postback {id}</h1>
      <ErrorBanner error={query.error ?? undefined} />
      {d !== undefined ? (
        <>
          <dl class="facts">
            <dt>Partner</dt>
            <dd>
              <a href={href("partners", "edit", d.partnerId)}>{d.partnerId}</a>
            </dd>
            <dt>Event</dt>
            <dd>{EVENT_NAMES[d.event]}</dd>
            <dt>Stag</dt>
            <dd>{d.stag}</dd>
            <dt>Status</dt>
            <dd data-testid="delivery-status">{STATUS_NAMES[d.status]}</dd>
            <dt>Attempts</dt>
            <dd>
              {d.attempts} of {d.attemptLimit}
            </dd>
            <dt>Queued (UTC)</dt>
            <dd>{formatTime(d.createdAt)}</dd>
            {d.nextAttemptAt !== undefined ? (
              <>
                <dt>Next attempt (UTC)</dt>
                <dd>{formatTime(d.nextAttemptAt)}</dd>
              </>
            ) : null}
          </dl>
          <div class="actions">
            <button type="button" onClick={() => setConfirming(true)}>
              Replay
            </button>
          </div>
          {replay.data !== undefined ? <Status>Replayed {count(replay.data.redelivered.length, "postback")}.</Status> : null}
          <ErrorBanner error={replay.error} />
          <ConfirmDialog
            open={confirming}
            title="Replay this postback?"
            confirmLabel="Replay 1 postback"
            onCancel={() => setConfirming(false)}
            onConfirm={() => {
              setConfirming(false);
              void replay.run();
            }}
          >
            <p>It is sent again now, with a fresh retry budget and the partner's current configuration.</p>
          </ConfirmDialog>
          <h2>Attempt timeline</h2>
          <AttemptTimeline attempts={d.attemptLog} />
        </>
      ) : null}
    </section>
  );
}

const POSTBACK_FILTERS: readonly FilterControl[] = [
  { name: "partner", label: "Partner id", type: "text" },
  { name: "event", label: "Event", options: Object.entries(EVENT_NAMES).map(([value, label]) => [value === "0" ? "" : value, label] as const) },
  { name: "status", label: "Status", options: Object.entries(STATUS_NAMES).map(([value, label]) => [value === "0" ? "" : value, label] as const) },
  { name: "stag", label: "Stag", type: "text" },
  ...TIME_RANGE_FILTERS,
];

const POSTBACK_COLUMNS: readonly Column<Delivery>[] = [
  { header: "Queued (UTC)", cell: (d) => <a href={href("deliveries", "postback", d.id)}>{formatTime(d.createdAt)}</a> },
  { header: "Partner", cell: (d) => d.partnerId },
  { header: "Event", cell: (d) => EVENT_NAMES[d.event] },
  { header: "Stag", cell: (d) => d.stag },
  { header: "Status", cell: (d) => STATUS_NAMES[d.status] },
  { header: "Attempts", cell: (d) => d.attempts },
  { header: "Last answer", cell: (d) => (d.lastHttpStatus !== 0 ? `HTTP ${d.lastHttpStatus}` : d.lastError || "—") },
];

function PostbackList({ route }: { route: Route }) {
  const [f, setFilter] = useFilterParams(route, POSTBACK_FILTERS.map((c) => c.name));
  const pages = usePageTokens();
  const selected = useSelection();
  const [confirming, setConfirming] = useState<"selected" | "filter" | undefined>(undefined);
  const filter = {
    partnerId: f.partner ?? "",
    event: Number(f.event ?? 0) as EventKind,
    status: Number(f.status ?? 0) as DeliveryStatus,
    stag: f.stag ?? "",
    ...(utc(f.from ?? "") !== undefined ? { from: utc(f.from ?? "") } : {}),
    ...(utc(f.to ?? "") !== undefined ? { to: utc(f.to ?? "") } : {}),
  };
  const { pageToken } = pages;
  const list = useQuery({
    key: ["deliveries", "list", f, pageToken],
    fn: (signal) => api.deliveries.listDeliveries({ filter, limit: PAGE_SIZE, pageToken }, { signal }),
    refetchMs: 3_000,
    keepPrevious: true,
  });
  const replay = useAction((ids: string[] | undefined) => api.deliveries.redeliver(ids !== undefined ? { ids } : { filter }), [["deliveries"]]);
  const hasFilter = Object.values(f).some((v) => v !== "");
  const change = (patch: Record<string, string>) => {
    pages.reset();
    selected.clear();
    setFilter(patch);
  };
  return (
    <>
      <FilterBar label="Filter postbacks" controls={POSTBACK_FILTERS} values={f} onChange={change} />
      <div class="actions">
        <button type="button" disabled={selected.size === 0} onClick={() => setConfirming("selected")}>
          Replay selected ({selected.size})
        </button>
        <button type="button" disabled={!hasFilter} onClick={() => setConfirming("filter")} title={hasFilter ? undefined : "Set a filter first"}>
          Replay all matching
        </button>
      </div>
      <ConfirmDialog
        open={confirming !== undefined}
        title={confirming === "selected" ? `Replay ${count(selected.size, "postback")}?` : "Replay every matching postback?"}
        confirmLabel={confirming === "selected" ? `Replay ${selected.size}` : "Replay all matching"}
        onCancel={() => setConfirming(undefined)}
        onConfirm={() => {
          const ids = confirming === "selected" ? [...selected.ids] : undefined;
          setConfirming(undefined);
          void replay.run(ids).then((r) => r !== undefined && selected.clear());
        }}
      >
        <p>
          {confirming === "selected"
            ? `The selected ${count(selected.size, "postback")} ${selected.size === 1 ? "is" : "are"} sent again now with a fresh retry budget.`
            : "Every postback the filter matches (up to 10,000, oldest first) is sent again now with a fresh retry budget."}
        </p>
      </ConfirmDialog>
      {replay.data !== undefined ? (
        <Status>
          Replayed {count(replay.data.redelivered.length, "postback")}{replay.data.notFound.length > 0 ? `; ${replay.data.notFound.length} not found` : ""}.
        </Status>
      ) : null}
      <ErrorBanner error={replay.error ?? list.error ?? undefined} />
      <SelectableTable
        caption="Postbacks, newest first"
        columns={POSTBACK_COLUMNS}
        rows={list.data?.deliveries ?? []}
        rowKey={(d) => d.id}
        rowAttributes={(d) => ({ "data-delivery": d.id })}
        selection={selected}
        selectLabel={(d) => `Select postback ${d.id}`}
        empty={list.data !== undefined ? "No postback matches." : undefined}
      />
      <Pager pages={pages} nextPageToken={list.data?.nextPageToken} />
    </>
  );
}

const SEEN_STATUSES = ["pending", "delivered", "dead", "cancelled"] as const;

function SeenDetail({ id }: { id: string }) {
  const query = useQuery({ key: ["seen-deliveries", "one", id], fn: (signal) => api.seen.getDelivery({ id }, { signal }), refetchMs: 2_000 });
  const replay = useAction(() => api.seen.replayDeliveries({ ids: [id] }), [["seen-deliveries"]]);
  const d = query.data?.delivery;
  return (
    <section>
      <p>
        <a href={href("deliveries", { kind: "seen" })}>← Seen deliveries</a>
      </p>
      <h1>Seen delivery {id}</h1>
      <ErrorBanner error={query.error ?? replay.error ?? undefined} />
      {d !== undefined ? (
        <>
          <dl class="facts">
            <dt>Integration</dt>
            <dd>{d.integration}</dd>
            <dt>Tag</dt>
            <dd>{d.tag}</dd>
            <dt>Item</dt>
            <dd>{d.itemId}</dd>
            <dt>Status</dt>
            <dd data-testid="delivery-status">{d.status}</dd>
            <dt>Attempts</dt>
            <dd>{d.attempts}</dd>
            <dt>Stored (UTC)</dt>
            <dd>{formatTime(d.createdAt)}</dd>
          </dl>
          {d.status === "dead" ? (
            <button type="button" onClick={() => confirm("Replay this dead delivery now?") && void replay.run()}>
              Replay
            </button>
          ) : null}
          {replay.data !== undefined ? <Status>Replayed {replay.data.replayed.length}.</Status> : null}
          <h2>Attempt timeline</h2>
          <AttemptTimeline attempts={d.attemptLog} />
        </>
      ) : null}
    </section>
  );
}

const SEEN_FILTERS: readonly FilterControl[] = [
  { name: "integration", label: "Integration", type: "text" },
  { name: "status", label: "Status", options: [["", "any"], ...SEEN_STATUSES.map((status) => [status, status] as const)] },
  { name: "tag", label: "Tag", type: "text" },
  ...TIME_RANGE_FILTERS,
];

const SEEN_COLUMNS: readonly Column<SeenDelivery>[] = [
  { header: "Stored (UTC)", cell: (d) => <a href={href("deliveries", "seen", d.id)}>{formatTime(d.createdAt)}</a> },
  { header: "Integration", cell: (d) => d.integration },
  { header: "Tag", cell: (d) => d.tag },
  { header: "Item", cell: (d) => d.itemId },
  { header: "Status", cell: (d) => d.status },
  { header: "Attempts", cell: (d) => d.attempts },
  { header: "Last error", cell: (d) => d.lastError || "—" },
];

function SeenList({ route }: { route: Route }) {
  const [f, setFilter] = useFilterParams(route, ["kind", ...SEEN_FILTERS.map((c) => c.name)]);
  const pages = usePageTokens();
  const selected = useSelection();
  const [confirming, setConfirming] = useState(false);
  const { pageToken } = pages;
  const list = useQuery({
    key: ["seen-deliveries", "list", f, pageToken],
    fn: (signal) => {
      const from = utc(f.from ?? "");
      const to = utc(f.to ?? "");
      return api.seen.listDeliveries({ integration: f.integration ?? "", status: f.status ?? "", tag: f.tag ?? "", limit: PAGE_SIZE, pageToken, ...(from !== undefined ? { from } : {}), ...(to !== undefined ? { to } : {}) }, { signal });
    },
    refetchMs: 3_000,
    keepPrevious: true,
  });
  const replay = useAction((ids: string[]) => api.seen.replayDeliveries({ ids }), [["seen-deliveries"]]);
  const change = (patch: Record<string, string>) => {
    pages.reset();
    selected.clear();
    setFilter(patch);
  };
  return (
    <>
      <FilterBar label="Filter Seen deliveries" controls={SEEN_FILTERS} values={f} onChange={change} />
      <div class="actions">
        <button type="button" disabled={selected.size === 0} onClick={() => setConfirming(true)}>
          Replay selected ({selected.size})
        </button>
      </div>
      <ConfirmDialog
        open={confirming}
        title={`Replay ${count(selected.size, "Seen delivery", "Seen deliveries")}?`}
        confirmLabel={`Replay ${selected.size}`}
        onCancel={() => setConfirming(false)}
        onConfirm={() => {
          setConfirming(false);
          void replay.run([...selected.ids]).then((r) => r !== undefined && selected.clear());
        }}
      >
        <p>Dead ones start a new round of attempts now; the others are left as they are.</p>
      </ConfirmDialog>
      {replay.data !== undefined ? (
        <Status>
          Replayed {replay.data.replayed.length}; {replay.data.notDead.length} not dead, {replay.data.notFound.length} not found.
        </Status>
      ) : null}
      <ErrorBanner error={replay.error ?? list.error ?? undefined} />
      <SelectableTable
        caption="Seen api deliveries, newest first"
        columns={SEEN_COLUMNS}
        rows={list.data?.deliveries ?? []}
        rowKey={(d) => d.id}
        selection={selected}
        selectLabel={(d) => `Select delivery ${d.id}`}
        empty={list.data !== undefined ? "No delivery matches." : undefined}
      />
      <Pager pages={pages} nextPageToken={list.data?.nextPageToken} />
    </>
  );
}

/** Deliveries: postbacks and Seen api deliveries, filtered, with attempt timelines and replay. */
export function DeliveriesPage({ route }: { route: Route }) {
  const [, kind, id] = route.path;
  if (kind === "postback" && id !== undefined) return <PostbackDetail key={id} id={id} />;
  if (kind === "seen" && id !== undefined) return <SeenDetail key={id} id={id} />;
  const seen = route.params.get("kind") === "seen";
  return (
    <section>
      <h1>Deliveries</h1>
      <nav aria-label="Kind of delivery" class="tabs">
        <a href={href("deliveries")} aria-current={!seen ? "page" : undefined}>
          Postbacks
        </a>
        <a href={href("deliveries", { kind: "seen" })} aria-current={seen ? "page" : undefined}>
          Seen api deliveries
        </a>
      </nav>
      {seen ? <SeenList route={route} /> : <PostbackList route={route} />}
    </section>
  );
}
