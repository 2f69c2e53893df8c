import { timestampFromDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import { useState } from "preact/hooks";
import { DeliveryStatus, type Attempt, type Delivery } from "../../../gen/funnel/postback/v1/delivery_pb.js";
import { EventKind } from "../../../gen/funnel/postback/v1/partner_pb.js";
import type { SeenAttempt } from "../../../gen/funnel/seen/v1/admin_pb.js";
import { api } from "../api.js";
import { useAction, useQuery } from "../query.js";
import { href, navigate, type Route } from "../router.js";
import { ConfirmDialog, count, ErrorBanner, Field, formatTime, Status } from "../ui/common.js";

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

/** Route parameters as the filter form's fields, so a filtered list is a link. */
function useFilterParams(route: Route, names: readonly string[]): [Record<string, string>, (patch: Record<string, string>) => void] {
  const values = Object.fromEntries(names.map((n) => [n, route.params.get(n) ?? ""]));
  const set = (patch: Record<string, string>) => navigate(href(...route.path, { ...values, ...patch }));
  return [values, set];
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

function PostbackList({ route }: { route: Route }) {
  const [f, setFilter] = useFilterParams(route, ["partner", "event", "status", "stag", "from", "to"]);
  const [tokens, setTokens] = useState<string[]>([""]);
  const [selected, setSelected] = useState<ReadonlySet<string>>(new Set());
  const [confirming, setConfirming] = useState<"selected" | "filter" | undefined>(undefined);
  const filter = {
    partnerId: f.partner ?? "",
    event: Number(f.event ?? 0) as EventKind,
    status: Number(f.status ?? 0) as DeliveryStatus,
    stag: f.stag ?? "",
    ...(utc(f.from ?? "") !== undefined ? { from: utc(f.from ?? "") } : {}),
    ...(utc(f.to ?? "") !== undefined ? { to: utc(f.to ?? "") } : {}),
  };
  const pageToken = tokens[tokens.length - 1] ?? "";
  const list = useQuery({
    key: ["deliveries", "list", f, pageToken],
    fn: (signal) => api.deliveries.listDeliveries({ filter, limit: PAGE_SIZE, pageToken }, { signal }),
    refetchMs: 3_000,
    keepPrevious: true,
  });
  const replay = useAction((ids: string[] | undefined) => api.deliveries.redeliver(ids !== undefined ? { ids } : { filter }), [["deliveries"]]);
  const rows: Delivery[] = list.data?.deliveries ?? [];
  const hasFilter = Object.values(f).some((v) => v !== "");
  const toggle = (id: string) => {
    const next = new Set(selected);
    if (next.has(id)) next.delete(id);
    else next.add(id);
    setSelected(next);
  };
  const change = (patch: Record<string, string>) => {
    setTokens([""]);
    setSelected(new Set());
    setFilter(patch);
  };
  return (
    <>
      <form class="filters" aria-label="Filter postbacks" onSubmit={(e) => e.preventDefault()}>
        <Field label="Partner id">{(id) => <input id={id} type="text" value={f.partner} onChange={(e) => change({ partner: e.currentTarget.value })} />}</Field>
        <Field label="Event">
          {(id) => (
            <select id={id} value={f.event} onChange={(e) => change({ event: e.currentTarget.value })}>
              {Object.entries(EVENT_NAMES).map(([value, label]) => (
                <option key={value} value={value === "0" ? "" : value}>
                  {label}
                </option>
              ))}
            </select>
          )}
        </Field>
        <Field label="Status">
          {(id) => (
            <select id={id} value={f.status} onChange={(e) => change({ status: e.currentTarget.value })}>
              {Object.entries(STATUS_NAMES).map(([value, label]) => (
                <option key={value} value={value === "0" ? "" : value}>
                  {label}
                </option>
              ))}
            </select>
          )}
        </Field>
        <Field label="Stag">{(id) => <input id={id} type="text" value={f.stag} onChange={(e) => change({ stag: e.currentTarget.value })} />}</Field>
        <Field label="From (UTC)">{(id) => <input id={id} type="datetime-local" value={f.from} onChange={(e) => change({ from: e.currentTarget.value })} />}</Field>
        <Field label="To (UTC)">{(id) => <input id={id} type="datetime-local" value={f.to} onChange={(e) => change({ to: e.currentTarget.value })} />}</Field>
      </form>
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
          const ids = confirming === "selected" ? [...selected] : undefined;
          setConfirming(undefined);
          void replay.run(ids).then((r) => r !== undefined && setSelected(new Set()));
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
      <table>
        <caption class="visually-hidden">Postbacks, newest first</caption>
        <thead>
          <tr>
            <th scope="col">
              <span class="visually-hidden">Select</span>
            </th>
            <th scope="col">Queued (UTC)</th>
            <th scope="col">Partner</th>
            <th scope="col">Event</th>
            <th scope="col">Stag</th>
            <th scope="col">Status</th>
            <th scope="col">Attempts</th>
            <th scope="col">Last answer</th>
          </tr>
        </thead>
        <tbody>
          {rows.map((d) => (
            <tr key={d.id} data-delivery={d.id}>
              <td>
                <input type="checkbox" aria-label={`Select postback ${d.id}`} checked={selected.has(d.id)} onChange={() => toggle(d.id)} />
              </td>
              <td>
                <a href={href("deliveries", "postback", d.id)}>{formatTime(d.createdAt)}</a>
              </td>
              <td>{d.partnerId}</td>
              <td>{EVENT_NAMES[d.event]}</td>
              <td>{d.stag}</td>
              <td>{STATUS_NAMES[d.status]}</td>
              <td>{d.attempts}</td>
              <td>{d.lastHttpStatus !== 0 ? `HTTP ${d.lastHttpStatus}` : d.lastError || "—"}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {rows.length === 0 && list.data !== undefined ? <p class="muted">No postback matches.</p> : null}
      <div class="pager">
        <button type="button" disabled={tokens.length <= 1} onClick={() => setTokens(tokens.slice(0, -1))}>
          Previous page
        </button>
        <span>Page {tokens.length}</span>
        <button type="button" disabled={(list.data?.nextPageToken ?? "") === ""} onClick={() => setTokens([...tokens, list.data?.nextPageToken ?? ""])}>
          Next page
        </button>
      </div>
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

function SeenList({ route }: { route: Route }) {
  const [f, setFilter] = useFilterParams(route, ["kind", "integration", "status", "tag", "from", "to"]);
  const [tokens, setTokens] = useState<string[]>([""]);
  const [selected, setSelected] = useState<ReadonlySet<string>>(new Set());
  const [confirming, setConfirming] = useState(false);
  const pageToken = tokens[tokens.length - 1] ?? "";
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
    setTokens([""]);
    setSelected(new Set());
    setFilter(patch);
  };
  const rows = list.data?.deliveries ?? [];
  return (
    <>
      <form class="filters" aria-label="Filter Seen deliveries" onSubmit={(e) => e.preventDefault()}>
        <Field label="Integration">{(id) => <input id={id} type="text" value={f.integration} onChange={(e) => change({ integration: e.currentTarget.value })} />}</Field>
        <Field label="Status">
          {(id) => (
            <select id={id} value={f.status} onChange={(e) => change({ status: e.currentTarget.value })}>
              <option value="">any</option>
              {SEEN_STATUSES.map((s) => (
                <option key={s}>{s}</option>
              ))}
            </select>
          )}
        </Field>
        <Field label="Tag">{(id) => <input id={id} type="text" value={f.tag} onChange={(e) => change({ tag: e.currentTarget.value })} />}</Field>
        <Field label="From (UTC)">{(id) => <input id={id} type="datetime-local" value={f.from} onChange={(e) => change({ from: e.currentTarget.value })} />}</Field>
        <Field label="To (UTC)">{(id) => <input id={id} type="datetime-local" value={f.to} onChange={(e) => change({ to: e.currentTarget.value })} />}</Field>
      </form>
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
          void replay.run([...selected]).then((r) => r !== undefined && setSelected(new Set()));
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
      <table>
        <caption class="visually-hidden">Seen api deliveries, newest first</caption>
        <thead>
          <tr>
            <th scope="col">
              <span class="visually-hidden">Select</span>
            </th>
            <th scope="col">Stored (UTC)</th>
            <th scope="col">Integration</th>
            <th scope="col">Tag</th>
            <th scope="col">Item</th>
            <th scope="col">Status</th>
            <th scope="col">Attempts</th>
            <th scope="col">Last error</th>
          </tr>
        </thead>
        <tbody>
          {rows.map((d) => (
            <tr key={d.id}>
              <td>
                <input type="checkbox" aria-label={`Select delivery ${d.id}`} checked={selected.has(d.id)} onChange={() => setSelected(new Set(selected.has(d.id) ? [...selected].filter((x) => x !== d.id) : [...selected, d.id]))} />
              </td>
              <td>
                <a href={href("deliveries", "seen", d.id)}>{formatTime(d.createdAt)}</a>
              </td>
              <td>{d.integration}</td>
              <td>{d.tag}</td>
              <td>{d.itemId}</td>
              <td>{d.status}</td>
              <td>{d.attempts}</td>
              <td>{d.lastError || "—"}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {rows.length === 0 && list.data !== undefined ? <p class="muted">No delivery matches.</p> : null}
      <div class="pager">
        <button type="button" disabled={tokens.length <= 1} onClick={() => setTokens(tokens.slice(0, -1))}>
          Previous page
        </button>
        <span>Page {tokens.length}</span>
        <button type="button" disabled={(list.data?.nextPageToken ?? "") === ""} onClick={() => setTokens([...tokens, list.data?.nextPageToken ?? ""])}>
          Next page
        </button>
      </div>
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
