import { timestampDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import type { ComponentChildren } from "preact";
import { useEffect, useId, useRef } from "preact/hooks";
import { errorText, type FieldError } from "../api.js";

/** A timestamp as `2026-12-03 01:02:03` in UTC (servers and logs speak UTC), or a dash. */
export function formatTime(ts: Timestamp | undefined): string {
  if (ts === undefined) return "—";
  return timestampDate(ts).toISOString().replace("T", " ").replace(/\.\d+Z$/, "");
}

/** Seconds as `42 s`, `3 min`, `2.5 h`, `4 d`. */
export function formatSeconds(seconds: number): string {
  if (seconds < 90) return `${Math.round(seconds)} s`;
  if (seconds < 5_400) return `${Math.round(seconds / 60)} min`;
  if (seconds < 172_800) return `${(seconds / 3_600).toFixed(1)} h`;
  return `${(seconds / 86_400).toFixed(1)} d`;
}

/** `3 postbacks`, `1 postback`: a count with its noun. */
export function count(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}

/** An error from the server, announced to screen readers as it appears. */
export function ErrorBanner({ error }: { error: unknown }) {
  if (error === undefined || error === null) return null;
  return (
    <p class="error" role="alert">
      {errorText(error)}
    </p>
  );
}

/** A polite status line (loading, saved, counts). */
export function Status({ children }: { children: ComponentChildren }) {
  return (
    <p class="status" role="status">
      {children}
    </p>
  );
}

/** The server's complaints about fields whose name starts with one of `prefixes`. */
export function errorsFor(errors: readonly FieldError[], ...fields: string[]): string[] {
  return errors.filter((e) => fields.some((f) => e.field === f || e.field.endsWith(`.${f}`))).map((e) => e.message);
}

/** A labelled form control with the server's errors for it right under it. */
export function Field(props: { label: string; errors?: readonly string[]; hint?: string; children: (id: string, describedBy: string | undefined) => ComponentChildren }) {
  const id = useId();
  const errors = props.errors ?? [];
  const describedBy = [errors.length > 0 ? `${id}-error` : "", props.hint !== undefined ? `${id}-hint` : ""].filter(Boolean).join(" ") || undefined;
  return (
    <div class={errors.length > 0 ? "field invalid" : "field"}>
      <label for={id}>{props.label}</label>
      {props.children(id, describedBy)}
      {props.hint !== undefined ? (
        <small id={`${id}-hint`} class="hint">
          {props.hint}
        </small>
      ) : null}
      {errors.length > 0 ? (
        <small id={`${id}-error`} class="field-error" data-field-error={props.label}>
          {errors.join("; ")}
        </small>
      ) : null}
    </div>
  );
}

/**
 * A modal confirmation (the native `<dialog>`: focus moves in, Escape
 * cancels, focus returns to the button that opened it).
 */
export function ConfirmDialog(props: { open: boolean; title: string; children: ComponentChildren; confirmLabel: string; onConfirm: () => void; onCancel: () => void }) {
  const ref = useRef<HTMLDialogElement>(null);
  const titleId = useId();
  useEffect(() => {
    const dialog = ref.current;
    if (dialog === null) return;
    if (props.open && !dialog.open) dialog.showModal();
    if (!props.open && dialog.open) dialog.close();
  }, [props.open]);
  return (
    <dialog ref={ref} aria-labelledby={titleId} onCancel={props.onCancel}>
      <h2 id={titleId}>{props.title}</h2>
      {props.children}
      <div class="actions">
        <button type="button" onClick={props.onCancel}>
          Go back
        </button>
        <button type="button" class="primary" onClick={props.onConfirm}>
          {props.confirmLabel}
        </button>
      </div>
    </dialog>
  );
}
