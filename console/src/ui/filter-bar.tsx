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
            const report = (e: { currentTarget: HTMLInputElement | HTMLSelectElement }) => props.onChange({ [control.name]: e.currentTarget.value });
            if ("options" in control) {
              return (
                <select id={id} value={value} onChange={report}>
                  {control.options.map(([optionValue, optionLabel]) => (
                    <option key={optionValue} value={optionValue}>
                      {optionLabel}
                    </option>
                  ))}
                </select>
              );
            }
            const box = { id, value, ...(control.live === true ? { onInput: report } : { onChange: report }) };
            if (control.type === "search") return <input type="search" {...box} />;
            return control.type === "datetime-local" ? <input type="datetime-local" {...box} /> : <input type="text" {...box} />;
          }}
        </Field>
      ))}
    </form>
  );
}

/** Route parameters as a filter bar's values, so that a filtered list is a link; a change navigates. */
export function useFilterParams(route: Route, names: readonly string[]): [Record<string, string>, (patch: Record<string, string>) => void] {
  const values = Object.fromEntries(names.map((n) => [n, route.params.get(n) ?? ""]));
  const set = (patch: Record<string, string>) => navigate(href(...route.path, { ...values, ...patch }));
  return [values, set];
}
