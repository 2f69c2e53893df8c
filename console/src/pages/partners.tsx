import { Code, ConnectError } from "@connectrpc/connect";
import { useEffect, useMemo, useState } from "preact/hooks";
import { EventKind, HttpMethod, type ImportPartnersResponse, type Partner } from "../../../gen/funnel/postback/v1/partner_pb.js";
import { api, fieldErrors, type FieldError } from "../api.js";
import { draftFromPartner, EVENTS, NEW_PARTNER, partnerFromDraft, type EventDraft, type EventName, type PartnerDraft } from "../partner-draft.js";
import { useAction, useQuery } from "../query.js";
import { href, navigate, type Route } from "../router.js";
import { ErrorBanner, errorsFor, Field, formatTime, Status } from "../ui/common.js";
import { FilterBar, type FilterControl } from "../ui/filter-bar.js";
import { Pager, Table, usePageTokens, type Column } from "../ui/table.js";

const PAGE_SIZE = 50;

/** Returns `value` once it has stopped changing for `ms` (typing in a search box or a template). */
function useDebounced<T>(value: T, ms: number): T {
  const [settled, setSettled] = useState(value);
  useEffect(() => {
    const timer = setTimeout(() => setSettled(value), ms);
    return () => clearTimeout(timer);
  }, [value, ms]);
  return settled;
}

const PARTNER_FILTERS: readonly FilterControl[] = [
  { name: "search", label: "Search by id or name", type: "search", live: true },
  { name: "enabled", label: "State", options: [["", "Enabled and disabled"], ["true", "Enabled"], ["false", "Disabled"]] },
];

const PARTNER_COLUMNS: readonly Column<Partner>[] = [
  { header: "Id", rowHeader: true, cell: (p) => <a href={href("partners", "edit", p.id)}>{p.id}</a> },
  { header: "Name", cell: (p) => p.name },
  { header: "State", cell: (p) => (p.enabled ? "enabled" : "disabled") },
  { header: "Postbacks", cell: (p) => EVENTS.filter((e) => p[e]?.enabled).join(", ") || "none" },
  { header: "Updated (UTC)", cell: (p) => formatTime(p.updatedAt) },
];

function PartnerList() {
  const [filters, setFilters] = useState<Record<string, string>>({ search: "", enabled: "" });
  const pages = usePageTokens();
  const query = useDebounced(filters.search ?? "", 250);
  const enabled = filters.enabled ?? "";
  // Back to the first page before new filters are asked for: a page token continues only the filters it came with.
  const change = (patch: Record<string, string>) => {
    pages.reset();
    setFilters({ ...filters, ...patch });
  };
  const { pageToken } = pages;
  const list = useQuery({
    key: ["partners", "list", query, enabled, pageToken],
    fn: (signal) => api.partners.listPartners({ query, pageSize: PAGE_SIZE, pageToken, ...(enabled !== "" ? { enabled: enabled === "true" } : {}) }, { signal }),
    keepPrevious: true,
  });
  return (
    <section>
      <div class="section-head">
        <h1>Partners</h1>
        <div class="actions">
          <a class="button primary" href={href("partners", "new")}>
            New partner
          </a>
          <a class="button" href={href("partners", "import")}>
            Import CSV
          </a>
          <ExportButton />
        </div>
      </div>
      <FilterBar label="Filter partners" controls={PARTNER_FILTERS} values={filters} onChange={change} />
      <ErrorBanner error={list.error ?? undefined} />
      <Status>{list.data !== undefined ? `${list.data.totalCount.toString()} partners match` : "Loading…"}</Status>
      <Table caption="Partners" columns={PARTNER_COLUMNS} rows={list.data?.partners ?? []} rowKey={(p) => p.id} />
      <Pager pages={pages} nextPageToken={list.data?.nextPageToken} busy={list.isFetching} />
    </section>
  );
}

/** Saves the server's export as `partners.csv`. */
function ExportButton() {
  const exporting = useAction(async () => {
    const { csv } = await api.partners.exportPartners({});
    const url = URL.createObjectURL(new Blob([csv], { type: "text/csv" }));
    const link = document.createElement("a");
    link.href = url;
    link.download = "partners.csv";
    link.click();
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
    return csv.split("\n").filter(Boolean).length - 1;
  });
  return (
    <>
      <button type="button" onClick={() => void exporting.run()} disabled={exporting.pending}>
        {exporting.pending ? "Exporting…" : "Export CSV"}
      </button>
      {exporting.data !== undefined ? <span role="status">Exported {exporting.data} partners.</span> : null}
      <ErrorBanner error={exporting.error} />
    </>
  );
}

function EventFields(props: { name: EventName; value: EventDraft; errors: readonly FieldError[]; onChange: (next: EventDraft) => void }) {
  const { name, value, errors } = props;
  const set = (patch: Partial<EventDraft>) => props.onChange({ ...value, ...patch });
  const errs = (field: string) => errorsFor(errors, `${name}.${field}`);
  return (
    <fieldset>
      <legend>{name[0]?.toUpperCase() + name.slice(1)} postback</legend>
      <label class="check">
        <input type="checkbox" checked={value.enabled} onChange={(e) => set({ enabled: e.currentTarget.checked })} /> Send a postback for {name}
      </label>
      <Field label={`${name} URL template`} errors={errs("url_template")} hint="Placeholders such as {stag_clickID}, {userID}, {params.NAME}; see docs/postback.md.">
        {(id, describedBy) => <input id={id} type="text" class="wide mono" value={value.urlTemplate} aria-describedby={describedBy} aria-invalid={errs("url_template").length > 0} onInput={(e) => set({ urlTemplate: e.currentTarget.value })} />}
      </Field>
      <Field label={`${name} method`} errors={errs("method")}>
        {(id) => (
          <select id={id} value={value.method} onChange={(e) => set({ method: e.currentTarget.value as "GET" | "POST" })}>
            <option>GET</option>
            <option>POST</option>
          </select>
        )}
      </Field>
      {value.method === "POST" || value.bodyTemplate !== "" ? (
        <>
          <Field label={`${name} body template`} errors={errs("body_template")}>
            {(id, describedBy) => <textarea id={id} class="wide mono" rows={4} value={value.bodyTemplate} aria-describedby={describedBy} aria-invalid={errs("body_template").length > 0} onInput={(e) => set({ bodyTemplate: e.currentTarget.value })} />}
          </Field>
          <Field label={`${name} content type`} errors={errs("content_type")} hint="Empty means application/json.">
            {(id, describedBy) => <input id={id} type="text" value={value.contentType} aria-describedby={describedBy} onInput={(e) => set({ contentType: e.currentTarget.value })} />}
          </Field>
        </>
      ) : null}
      <Field label={`${name} headers`} errors={errs("headers")} hint="One header a line: Name: value">
        {(id, describedBy) => <textarea id={id} class="wide mono" rows={2} value={value.headers} aria-describedby={describedBy} onInput={(e) => set({ headers: e.currentTarget.value })} />}
      </Field>
    </fieldset>
  );
}

const EVENT_KINDS: Record<EventName, EventKind> = { download: EventKind.DOWNLOAD, install: EventKind.INSTALL, authorization: EventKind.AUTHORIZATION };

/** The request the server would send for the draft, rendered by PreviewPostback as the user types. */
function Preview(props: { draft: PartnerDraft; onErrors: (errors: FieldError[]) => void }) {
  const firstEnabled = EVENTS.find((e) => props.draft[e].enabled) ?? "install";
  const [event, setEvent] = useState<EventName>(firstEnabled);
  const [clickId, setClickId] = useState("CLICK");
  const draft = useDebounced(props.draft, 250);
  const partner = useMemo(() => partnerFromDraft(draft), [draft]);
  const preview = useQuery({
    key: ["preview", event, clickId, draft],
    fn: (signal) => api.partners.previewPostback({ partner, event: EVENT_KINDS[event], sample: { clickId } }, { signal }),
    // Until an id is typed every field would be judged against a partner that cannot exist yet.
    enabled: draft.id.trim() !== "",
    keepPrevious: true,
  });
  const waiting = draft.id.trim() === "";
  const errors = useMemo(() => (waiting ? [] : fieldErrors(preview.error)), [preview.error, waiting]);
  useEffect(() => props.onErrors(errors), [errors]);
  const generalErrors = errors.filter((e) => !e.field.startsWith("partner."));
  const p = preview.isError || waiting ? undefined : preview.data;
  return (
    <aside class="preview" aria-labelledby="preview-title">
      <h2 id="preview-title">Live preview</h2>
      <div class="filters">
        <Field label="Event to preview">
          {(id) => (
            <select id={id} value={event} onChange={(e) => setEvent(e.currentTarget.value as EventName)}>
              {EVENTS.map((e) => (
                <option key={e}>{e}</option>
              ))}
            </select>
          )}
        </Field>
        <Field label="Sample click id">{(id) => <input id={id} type="text" value={clickId} onInput={(e) => setClickId(e.currentTarget.value)} />}</Field>
      </div>
      {waiting ? <p class="muted">Type a partner id to see the request it would receive.</p> : null}
      {preview.isError && !waiting ? (
        <p class="error" role="status">
          {generalErrors.length > 0 || errors.length === 0 ? (generalErrors[0]?.message ?? ConnectError.from(preview.error).rawMessage) : `Fix ${errors.length === 1 ? "the field" : `the ${errors.length} fields`} marked in the form to see the request.`}
        </p>
      ) : null}
      {p !== undefined ? (
        <div aria-live="polite">
          <p>
            <strong>{p.method === HttpMethod.POST ? "POST" : "GET"}</strong> <code data-testid="preview-url">{p.url}</code>
          </p>
          {p.body !== "" ? <pre data-testid="preview-body">{p.body}</pre> : null}
          <dl class="headers">
            {Object.entries(p.headers).map(([k, v]) => (
              <div key={k}>
                <dt>{k}</dt>
                <dd>{v}</dd>
              </div>
            ))}
          </dl>
          {!p.wouldSend ? <p class="muted">Not sent as it stands: the partner or this event is disabled.</p> : null}
        </div>
      ) : null}
    </aside>
  );
}

function PartnerEditor(props: { id: string | undefined }) {
  const isNew = props.id === undefined;
  const stored = useQuery({ key: ["partners", "one", props.id], fn: (signal) => api.partners.getPartner({ id: props.id ?? "" }, { signal }), enabled: !isNew });
  const [draft, setDraft] = useState<PartnerDraft | undefined>(isNew ? NEW_PARTNER : undefined);
  const [previewErrors, setPreviewErrors] = useState<FieldError[]>([]);
  useEffect(() => {
    if (draft === undefined && stored.data?.partner !== undefined) setDraft(draftFromPartner(stored.data.partner));
  }, [stored.data]);
  const save = useAction(
    async (d: PartnerDraft) => {
      const partner = partnerFromDraft(d);
      return isNew ? (await api.partners.createPartner({ partner })).partner : (await api.partners.updatePartner({ partner })).partner;
    },
    [["partners"]],
  );
  const remove = useAction(async () => api.partners.deletePartner({ id: props.id ?? "" }), [["partners"]]);
  if (!isNew && stored.error) return <ErrorBanner error={stored.error} />;
  if (draft === undefined) return <Status>Loading…</Status>;
  const errors = save.error !== undefined ? fieldErrors(save.error) : previewErrors;
  const set = (patch: Partial<PartnerDraft>) => {
    save.reset();
    setDraft({ ...draft, ...patch });
  };
  const submit = async (event: Event) => {
    event.preventDefault();
    const saved = await save.run(draft);
    if (saved !== undefined && isNew) navigate(href("partners", "edit", saved.id));
  };
  const conflict = save.error !== undefined && ConnectError.from(save.error).code === Code.AlreadyExists;
  return (
    <section>
      <p>
        <a href={href("partners")}>← Partners</a>
      </p>
      <h1>{isNew ? "New partner" : `Partner ${props.id ?? ""}`}</h1>
      <div class="editor">
        <form onSubmit={(e) => void submit(e)} aria-label={isNew ? "New partner" : "Edit partner"} novalidate>
          <Field label="Partner id" errors={[...errorsFor(errors, "id"), ...(conflict ? ["a partner with this id exists"] : [])]} hint="Letters, digits, - and . (the part of the stag before the first _).">
            {(id, describedBy) => <input id={id} type="text" value={draft.id} readOnly={!isNew} aria-describedby={describedBy} onInput={(e) => set({ id: e.currentTarget.value })} />}
          </Field>
          <Field label="Name" errors={errorsFor(errors, "name")}>
            {(id) => <input id={id} type="text" value={draft.name} onInput={(e) => set({ name: e.currentTarget.value })} />}
          </Field>
          <label class="check">
            <input type="checkbox" checked={draft.enabled} onChange={(e) => set({ enabled: e.currentTarget.checked })} /> Partner enabled
          </label>
          {EVENTS.map((name) => (
            <EventFields key={name} name={name} value={draft[name]} errors={errors} onChange={(next) => set({ [name]: next })} />
          ))}
          <fieldset>
            <legend>Delivery</legend>
            <Field label="Timeout (ms)" errors={errorsFor(errors, "timeout")} hint="100 to 120000; empty means 10 s.">
              {(id, d) => <input id={id} type="number" inputMode="numeric" value={draft.timeoutMs} aria-describedby={d} onInput={(e) => set({ timeoutMs: e.currentTarget.value })} />}
            </Field>
            <Field label="Max attempts" errors={errorsFor(errors, "retry.max_attempts")} hint="1 to 100; empty means 10.">
              {(id, d) => <input id={id} type="number" value={draft.maxAttempts} aria-describedby={d} onInput={(e) => set({ maxAttempts: e.currentTarget.value })} />}
            </Field>
            <Field label="First retry delay (ms)" errors={errorsFor(errors, "retry.initial_delay")} hint="Empty means 10 s.">
              {(id, d) => <input id={id} type="number" value={draft.initialDelayMs} aria-describedby={d} onInput={(e) => set({ initialDelayMs: e.currentTarget.value })} />}
            </Field>
            <Field label="Longest retry delay (ms)" errors={errorsFor(errors, "retry.max_delay")} hint="Empty means 1 h.">
              {(id, d) => <input id={id} type="number" value={draft.maxDelayMs} aria-describedby={d} onInput={(e) => set({ maxDelayMs: e.currentTarget.value })} />}
            </Field>
            <Field label="Download policy" errors={errorsFor(errors, "download_policy")}>
              {(id) => (
                <select id={id} value={draft.downloadPolicy} onChange={(e) => set({ downloadPolicy: e.currentTarget.value as "every" | "once" })}>
                  <option value="every">Every download sends a postback</option>
                  <option value="once">Only a stag's first download</option>
                </select>
              )}
            </Field>
            <label class="check">
              <input type="checkbox" checked={draft.skipUnattributed} onChange={(e) => set({ skipUnattributed: e.currentTarget.checked })} /> Skip installs and authorizations without a download
            </label>
            <Field label="Download redirect URL" errors={errorsFor(errors, "download_redirect_url")} hint="Empty means the server's DOWNLOAD_REDIRECT_URL.">
              {(id, d) => <input id={id} type="url" class="wide" value={draft.downloadRedirectUrl} aria-describedby={d} onInput={(e) => set({ downloadRedirectUrl: e.currentTarget.value })} />}
            </Field>
          </fieldset>
          {save.error !== undefined && fieldErrors(save.error).length === 0 && !conflict ? <ErrorBanner error={save.error} /> : null}
          {save.error !== undefined && fieldErrors(save.error).length > 0 ? (
            <p class="error" role="alert">
              The server refused {fieldErrors(save.error).length === 1 ? "a field" : `${fieldErrors(save.error).length} fields`}; see the messages under them.
            </p>
          ) : null}
          {save.data !== undefined && !isNew ? <Status>Saved.</Status> : null}
          <div class="actions">
            <button type="submit" class="primary" disabled={save.pending}>
              {save.pending ? "Saving…" : isNew ? "Create partner" : "Save changes"}
            </button>
            {!isNew ? (
              <button
                type="button"
                class="danger"
                onClick={() => {
                  if (confirm(`Delete partner ${props.id ?? ""}? Its queued postbacks are cancelled.`)) void remove.run().then((r) => r !== undefined && navigate(href("partners")));
                }}
              >
                Delete partner
              </button>
            ) : null}
            {!isNew ? (
              <a class="button" href={href("deliveries", { partner: props.id })}>
                Deliveries
              </a>
            ) : null}
          </div>
          <ErrorBanner error={remove.error} />
        </form>
        <Preview draft={draft} onErrors={setPreviewErrors} />
      </div>
    </section>
  );
}

function ImportReport({ result }: { result: ImportPartnersResponse }) {
  const groups = [
    ["Created", result.created],
    ["Updated", result.updated],
    ["Unchanged", result.unchanged],
    ["Deleted", result.deleted],
  ] as const;
  return (
    <div class="import-report" data-testid="import-report">
      <ul class="counts">
        {groups.map(([label, ids]) => (
          <li key={label} data-kind={label.toLowerCase()}>
            <strong>{ids.length}</strong> {label.toLowerCase()}
            {ids.length > 0 ? <span class="muted"> ({ids.slice(0, 20).join(", ")}{ids.length > 20 ? `, and ${ids.length - 20} more` : ""})</span> : null}
          </li>
        ))}
      </ul>
      {result.errors.length > 0 ? (
        <table>
          <caption>Problems in the file; nothing was applied</caption>
          <thead>
            <tr>
              <th scope="col">Line</th>
              <th scope="col">Partner</th>
              <th scope="col">Column</th>
              <th scope="col">Problem</th>
            </tr>
          </thead>
          <tbody>
            {result.errors.map((e, i) => (
              <tr key={i}>
                <td>{e.line}</td>
                <td>{e.partnerId}</td>
                <td>{e.column}</td>
                <td>{e.message}</td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : null}
    </div>
  );
}

function PartnerImport() {
  const [csv, setCsv] = useState("");
  const [prune, setPrune] = useState(false);
  const [checked, setChecked] = useState<string | undefined>(undefined);
  const dryRun = useAction((text: string, withPrune: boolean) => api.partners.importPartners({ csv: text, dryRun: true, prune: withPrune }));
  const apply = useAction((text: string, withPrune: boolean) => api.partners.importPartners({ csv: text, dryRun: false, prune: withPrune }), [["partners"]]);
  const rows = csv.split("\n").filter((l) => l.trim() !== "").length - 1;
  const ready = dryRun.data !== undefined && dryRun.data.errors.length === 0 && checked === `${prune}:${csv}`;
  return (
    <section>
      <p>
        <a href={href("partners")}>← Partners</a>
      </p>
      <h1>Import partners</h1>
      <p>
        A CSV file in the format Export writes (header row first). Check it with a dry run first: it lists what would be created, updated, left unchanged and (with prune) deleted. Applying is all or nothing.
      </p>
      <Field label="CSV file">
        {(id) => (
          <input
            id={id}
            type="file"
            accept=".csv,text/csv"
            onChange={(e) => {
              const file = e.currentTarget.files?.[0];
              if (file !== undefined) void file.text().then(setCsv);
            }}
          />
        )}
      </Field>
      <Field label="CSV text" hint="Or paste it here.">
        {(id, d) => <textarea id={id} class="wide mono" rows={8} value={csv} aria-describedby={d} onInput={(e) => setCsv(e.currentTarget.value)} />}
      </Field>
      <label class="check">
        <input type="checkbox" checked={prune} onChange={(e) => setPrune(e.currentTarget.checked)} /> Prune: delete partners the file does not list
      </label>
      <div class="actions">
        <button
          type="button"
          disabled={csv.trim() === "" || dryRun.pending}
          onClick={() => {
            apply.reset();
            setChecked(`${prune}:${csv}`);
            void dryRun.run(csv, prune);
          }}
        >
          Dry run
        </button>
        <button type="button" class="primary" disabled={!ready || apply.pending || apply.data !== undefined} onClick={() => void apply.run(csv, prune)}>
          Apply import
        </button>
      </div>
      <ErrorBanner error={dryRun.error ?? apply.error} />
      {apply.pending || apply.data !== undefined ? (
        <div class="progress">
          <label for="import-progress">{apply.pending ? `Importing ${rows} rows…` : `Imported: ${apply.data?.applied ? "applied" : "not applied"}`}</label>
          {apply.pending ? <progress id="import-progress" /> : <progress id="import-progress" max={Math.max(rows, 1)} value={Math.max(rows, 1)} />}
        </div>
      ) : null}
      {apply.data !== undefined ? (
        <>
          <h2>Applied</h2>
          <ImportReport result={apply.data} />
        </>
      ) : dryRun.data !== undefined ? (
        <>
          <h2>Dry run</h2>
          <ImportReport result={dryRun.data} />
        </>
      ) : null}
    </section>
  );
}

/** Partners: the list, one partner's form with its live preview, and CSV import. */
export function PartnersPage({ route }: { route: Route }) {
  const sub = route.path[1];
  if (sub === undefined) return <PartnerList />;
  if (sub === "new") return <PartnerEditor id={undefined} />;
  if (sub === "import") return <PartnerImport />;
  const id = route.path[2];
  if (sub === "edit" && id !== undefined) return <PartnerEditor key={id} id={id} />;
  return <ErrorBanner error={new Error("No such partner page.")} />;
}
