import { create } from "@bufbuild/protobuf";
import { durationFromMs, durationMs, type Duration } from "@bufbuild/protobuf/wkt";
import { useEffect, useState } from "preact/hooks";
import { IntegrationSchema, type Integration, type TagRetention as TagRetentionMessage } from "../../../gen/funnel/seen/v1/admin_pb.js";
import { api, errorText, fieldErrors } from "../api.js";
import { useAction, useQuery } from "../query.js";
import { href, navigate, type Route } from "../router.js";
import { ErrorBanner, errorsFor, Field, formatSeconds, formatTime, Status } from "../ui/common.js";
import { Table, type Column } from "../ui/table.js";

/** A duration as the seconds a form shows. */
const seconds = (d: Duration | undefined) => (d === undefined ? "" : String(durationMs(d) / 1000));
/** Seconds typed in a box: empty leaves the server's default. */
const fromSeconds = (text: string) => (text.trim() === "" ? undefined : durationFromMs(Math.round(Number(text) * 1000)));

interface IntegrationDraft {
  name: string;
  tags: string;
  enabled: boolean;
  kind: "api" | "topic";
  url: string;
  timeout: string;
  maxAttempts: string;
  initialBackoff: string;
  maxBackoff: string;
  topic: string;
  retention: string;
}

const NEW_INTEGRATION: IntegrationDraft = { name: "", tags: "", enabled: true, kind: "api", url: "", timeout: "", maxAttempts: "", initialBackoff: "", maxBackoff: "", topic: "", retention: "" };

function draftOf(i: Integration): IntegrationDraft {
  const api = i.delivery.case === "api" ? i.delivery.value : undefined;
  const topic = i.delivery.case === "topic" ? i.delivery.value : undefined;
  return {
    name: i.name,
    tags: i.tags.join(", "),
    enabled: i.enabled,
    kind: topic !== undefined ? "topic" : "api",
    url: api?.url ?? "",
    timeout: seconds(api?.timeout),
    maxAttempts: api?.maxAttempts ? String(api.maxAttempts) : "",
    initialBackoff: seconds(api?.initialBackoff),
    maxBackoff: seconds(api?.maxBackoff),
    topic: topic?.topic ?? "",
    retention: seconds(topic?.retention),
  };
}

function integrationOf(d: IntegrationDraft): Integration {
  const opt = (key: string, value: Duration | undefined) => (value !== undefined ? { [key]: value } : {});
  return create(IntegrationSchema, {
    name: d.name,
    tags: d.tags
      .split(",")
      .map((t) => t.trim())
      .filter(Boolean),
    enabled: d.enabled,
    delivery:
      d.kind === "api"
        ? { case: "api", value: { url: d.url, maxAttempts: Number(d.maxAttempts) || 0, ...opt("timeout", fromSeconds(d.timeout)), ...opt("initialBackoff", fromSeconds(d.initialBackoff)), ...opt("maxBackoff", fromSeconds(d.maxBackoff)) } }
        : { case: "topic", value: { topic: d.topic, ...opt("retention", fromSeconds(d.retention)) } },
  });
}

function IntegrationEditor({ name }: { name: string | undefined }) {
  const isNew = name === undefined;
  const stored = useQuery({ key: ["seen", "integration", name], fn: (signal) => api.seen.getIntegration({ name: name ?? "" }, { signal }), enabled: !isNew, refetchMs: 5_000 });
  const [draft, setDraft] = useState<IntegrationDraft | undefined>(isNew ? NEW_INTEGRATION : undefined);
  useEffect(() => {
    if (draft === undefined && stored.data?.integration !== undefined) setDraft(draftOf(stored.data.integration));
  }, [stored.data]);
  const save = useAction(
    async (d: IntegrationDraft) => {
      const integration = integrationOf(d);
      return isNew ? (await api.seen.createIntegration({ integration })).integration : (await api.seen.updateIntegration({ integration })).integration;
    },
    [["seen"]],
  );
  if (stored.error) return <ErrorBanner error={stored.error} />;
  if (draft === undefined) return <Status>Loading…</Status>;
  const errors = fieldErrors(save.error);
  const set = (patch: Partial<IntegrationDraft>) => {
    save.reset();
    setDraft({ ...draft, ...patch });
  };
  const input = (label: string, key: keyof IntegrationDraft, field: string, hint?: string) => (
    <Field label={label} errors={errorsFor(errors, field)} {...(hint !== undefined ? { hint } : {})}>
      {(id, d) => <input id={id} type="text" value={String(draft[key])} readOnly={key === "name" && !isNew} aria-describedby={d} onInput={(e) => set({ [key]: e.currentTarget.value })} />}
    </Field>
  );
  return (
    <section>
      <p>
        <a href={href("seen")}>← Seen</a>
      </p>
      <h1>{isNew ? "New integration" : `Integration ${name ?? ""}`}</h1>
      {stored.data !== undefined ? (
        <p>
          <a href={href("deliveries", { kind: "seen", integration: name, status: "pending" })}>{stored.data.pendingDeliveries.toString()} pending</a> ·{" "}
          <a href={href("deliveries", { kind: "seen", integration: name, status: "dead" })}>{stored.data.deadDeliveries.toString()} dead</a> api deliveries
        </p>
      ) : null}
      <form
        aria-label={isNew ? "New integration" : "Edit integration"}
        novalidate
        onSubmit={(e) => {
          e.preventDefault();
          void save.run(draft).then((saved) => saved !== undefined && isNew && navigate(href("seen", "integration", saved.name)));
        }}
      >
        {input("Name", "name", "name", "Lower-case letters, digits, _ and -.")}
        {input("Tags", "tags", "tags", "Comma-separated.")}
        <label class="check">
          <input type="checkbox" checked={draft.enabled} onChange={(e) => set({ enabled: e.currentTarget.checked })} /> Enabled
        </label>
        <fieldset>
          <legend>Delivery</legend>
          <label class="check">
            <input type="radio" name="kind" checked={draft.kind === "api"} onChange={() => set({ kind: "api" })} /> POST to an HTTP API
          </label>
          <label class="check">
            <input type="radio" name="kind" checked={draft.kind === "topic"} onChange={() => set({ kind: "topic" })} /> Append to a topic
          </label>
          {draft.kind === "api" ? (
            <>
              {input("URL", "url", "api.url")}
              {input("Timeout (s)", "timeout", "api.timeout", "Empty means 5 s.")}
              {input("Max attempts", "maxAttempts", "api.max_attempts", "0 or empty: until the mark's retention ends.")}
              {input("First backoff (s)", "initialBackoff", "api.initial_backoff", "Empty means 1 s.")}
              {input("Longest backoff (s)", "maxBackoff", "api.max_backoff", "Empty means 1 h.")}
            </>
          ) : (
            <>
              {input("Topic", "topic", "topic.topic")}
              {input("Retention (s)", "retention", "topic.retention", "Empty means 7 days.")}
            </>
          )}
        </fieldset>
        {save.error !== undefined && errors.length === 0 ? <ErrorBanner error={save.error} /> : null}
        {errors.length > 0 ? (
          <p class="error" role="alert">
            The server refused {errors.map((e) => e.field).join(", ")}: {errors.map((e) => e.message).join("; ")}
          </p>
        ) : null}
        {save.data !== undefined && !isNew ? <Status>Saved.</Status> : null}
        <div class="actions">
          <button type="submit" class="primary" disabled={save.pending}>
            {isNew ? "Create integration" : "Save changes"}
          </button>
        </div>
      </form>
    </section>
  );
}

const TAG_COLUMNS: readonly Column<TagRetentionMessage>[] = [
  { header: "Tag", rowHeader: true, cell: (t) => t.tag },
  { header: "Retention", cell: (t) => (t.retention !== undefined ? formatSeconds(durationMs(t.retention) / 1000) : "—") },
  { header: "Changed (UTC)", cell: (t) => formatTime(t.updatedAt) },
];

function TagRetention() {
  const tags = useQuery({ key: ["seen", "tags"], fn: (signal) => api.seen.listTags({}, { signal }) });
  const [tag, setTag] = useState("");
  const [days, setDays] = useState("");
  const setRetention = useAction((t: string, d: string) => api.seen.setTagRetention({ tag: t, retention: durationFromMs(Math.round(Number(d) * 86_400_000)) }), [["seen", "tags"]]);
  return (
    <>
      <h2>Tag retention</h2>
      <p>Other tags keep their marks for {tags.data?.defaultRetention !== undefined ? formatSeconds(durationMs(tags.data.defaultRetention) / 1000) : "—"} (SEEN_DEFAULT_RETENTION).</p>
      <Table caption="Retention by tag" columns={TAG_COLUMNS} rows={tags.data?.tags ?? []} rowKey={(t) => t.tag} />
      <form
        class="inline-form"
        aria-label="Set a tag's retention"
        onSubmit={(e) => {
          e.preventDefault();
          void setRetention.run(tag, days);
        }}
      >
        <Field label="Tag" errors={errorsFor(fieldErrors(setRetention.error), "tag")}>
          {(id) => <input id={id} type="text" value={tag} onInput={(e) => setTag(e.currentTarget.value)} />}
        </Field>
        <Field label="Retention (days)" errors={errorsFor(fieldErrors(setRetention.error), "retention")}>
          {(id) => <input id={id} type="number" step="any" value={days} onInput={(e) => setDays(e.currentTarget.value)} />}
        </Field>
        <button type="submit">Set retention</button>
      </form>
      {setRetention.error !== undefined && fieldErrors(setRetention.error).length === 0 ? <ErrorBanner error={setRetention.error} /> : null}
      {setRetention.data !== undefined ? <Status>Saved.</Status> : null}
    </>
  );
}

function Topics() {
  const topics = useQuery({ key: ["seen", "topics"], fn: (signal) => api.seen.listTopics({}, { signal }), refetchMs: 10_000 });
  return (
    <>
      <h2>Topics and consumers</h2>
      <ErrorBanner error={topics.error ?? undefined} />
      <table>
        <thead>
          <tr>
            <th scope="col">Topic</th>
            <th scope="col">Messages</th>
            <th scope="col">Newest (UTC)</th>
            <th scope="col">Consumer</th>
            <th scope="col">Lag (messages)</th>
            <th scope="col">Lag (time)</th>
          </tr>
        </thead>
        <tbody>
          {(topics.data?.topics ?? []).flatMap((t) =>
            (t.consumers.length > 0 ? t.consumers : [undefined]).map((c, i) => (
              <tr key={`${t.name}/${c?.name ?? ""}`}>
                {i === 0 ? (
                  <th scope="row" rowSpan={Math.max(1, t.consumers.length)}>
                    {t.name}
                  </th>
                ) : null}
                {i === 0 ? <td rowSpan={Math.max(1, t.consumers.length)}>{t.messages.toString()}</td> : null}
                {i === 0 ? <td rowSpan={Math.max(1, t.consumers.length)}>{formatTime(t.newestMessageAt)}</td> : null}
                <td>{c?.name ?? "no consumer yet"}</td>
                <td>{c?.lagMessages.toString() ?? "—"}</td>
                <td>{c !== undefined ? formatSeconds(c.lagSeconds) : "—"}</td>
              </tr>
            )),
          )}
        </tbody>
      </table>
    </>
  );
}

function IntegrationList() {
  const list = useQuery({ key: ["seen", "integrations"], fn: (signal) => api.seen.listIntegrations({}, { signal }) });
  const toggle = useAction((i: Integration) => api.seen.updateIntegration({ integration: { ...i, enabled: !i.enabled } }), [["seen"]]);
  const columns: readonly Column<Integration>[] = [
    { header: "Name", rowHeader: true, cell: (i) => <a href={href("seen", "integration", i.name)}>{i.name}</a> },
    { header: "Tags", cell: (i) => i.tags.join(", ") },
    { header: "Delivery", cell: (i) => (i.delivery.case === "api" ? `API ${i.delivery.value.url}` : i.delivery.case === "topic" ? `topic ${i.delivery.value.topic}` : "—") },
    {
      header: "State",
      cell: (i) => (
        <button type="button" aria-pressed={i.enabled} aria-label={`${i.name} enabled`} onClick={() => void toggle.run(i)} disabled={toggle.pending}>
          {i.enabled ? "Enabled" : "Disabled"}
        </button>
      ),
    },
    { header: "Deliveries", cell: (i) => (i.delivery.case === "api" ? <a href={href("deliveries", { kind: "seen", integration: i.name })}>api deliveries</a> : "—") },
  ];
  return (
    <section>
      <div class="section-head">
        <h1>Seen</h1>
        <a class="button primary" href={href("seen", "new")}>
          New integration
        </a>
      </div>
      <ErrorBanner error={list.error ?? toggle.error ?? undefined} />
      <h2>Integrations</h2>
      <Table caption="Integrations" columns={columns} rows={list.data?.integrations ?? []} rowKey={(i) => i.name} />
      {toggle.error !== undefined ? <p class="error">{errorText(toggle.error)}</p> : null}
      <TagRetention />
      <Topics />
    </section>
  );
}

/** Seen: integrations, their deliveries, tag retention and topic consumers. */
export function SeenPage({ route }: { route: Route }) {
  const [, sub, name] = route.path;
  if (sub === "new") return <IntegrationEditor name={undefined} />;
  if (sub === "integration" && name !== undefined) return <IntegrationEditor key={name} name={name} />;
  return <IntegrationList />;
}
