import { useEffect, useState } from "preact/hooks";
import { href, navigate, type Route } from "../router.js";
import { Field } from "./common.js";

/** One control of a filter bar: a text box or a list of choices, keyed by `name`. */
export type FilterControl =
  | {
      readonly name: string;
      readonly label: string;
      readonly type: "text" | "search" | "datetime-local";
      /** Filter on every keystroke (a search box) rather than when the box is left. */
      readonly live?: boolean;
    }
  | {
      readonly name: string;
      readonly label: string;
      /** `[value, label]` pairs; the value `""` means no filter. */
      readonly options: readonly (readonly [value: string, label: string])[];
    };

/** A time range, for lists filtered by when their rows were made. */
export const TIME_RANGE_FILTERS: readonly FilterControl[] = [
  { name: "from", label: "From (UTC)", type: "datetime-local" },
  { name: "to", label: "To (UTC)", type: "datetime-local" },
];

/** A row of labelled filter controls over a list; every change reports `{ [name]: value }`. */
export function FilterBar(props: { label: string; controls: readonly FilterControl[]; values: Readonly<Record<string, string>>; onChange: (patch: Record<string, string>) => void }) {
  return (
    <form class="filters" aria-label={props.label} onSubmit={(e) => e.preventDefault()}>
      {props.controls.map((control) => (
        <Field key={control.name} label={control.label}>
          {(id) => {
            const value = props.values[control.name] ?? "";
            if ("options" in control) {
              return (
                <select id={id} value={value} onChange={(e) => props.onChange({ [control.name]: e.currentTarget.value })}>
                  {control.options.map(([optionValue, optionLabel]) => (
                    <option key={optionValue} value={optionValue}>
                      {optionLabel}
                    </option>
                  ))}
                </select>
              );
            }
            return <TextFilter id={id} type={control.type} value={value} live={control.live === true} report={(text) => props.onChange({ [control.name]: text })} />;
          }}
        </Field>
      ))}
    </form>
  );
}

/**
 * A filter's text box. What is typed is kept across re-renders (a list
 * refreshing, another filter's navigation) until it is reported: on every
 * keystroke when `live`, else when committed (Enter, or leaving the box). A
 * new value from outside replaces it.
 */
function TextFilter(props: { id: string; type: "text" | "search" | "datetime-local"; value: string; live: boolean; report: (text: string) => void }) {
  const [draft, setDraft] = useState(props.value);
  useEffect(() => setDraft(props.value), [props.value]);
  const typed = (e: { currentTarget: HTMLInputElement }) => {
    setDraft(e.currentTarget.value);
    if (props.live) props.report(e.currentTarget.value);
  };
  const committed = props.live ? undefined : (e: { currentTarget: HTMLInputElement }) => props.report(e.currentTarget.value);
  const box = { id: props.id, value: draft, onInput: typed, onChange: committed };
  if (props.type === "search") return <input type="search" {...box} />;
  return props.type === "datetime-local" ? <input type="datetime-local" {...box} /> : <input type="text" {...box} />;
}

/** Route parameters as a filter bar's values, so that a filtered list is a link; a change navigates. */
export function useFilterParams(route: Route, names: readonly string[]): [Record<string, string>, (patch: Record<string, string>) => void] {
  const values = Object.fromEntries(names.map((n) => [n, route.params.get(n) ?? ""]));
  const set = (patch: Record<string, string>) => navigate(href(...route.path, { ...values, ...patch }));
  return [values, set];
}
