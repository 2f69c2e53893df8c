import type { ComponentChildren, HTMLAttributes } from "preact";
import { useState } from "preact/hooks";

/** One column of a table: its header and what each row shows in it. */
export interface Column<Row> {
  readonly header: string;
  readonly cell: (row: Row) => ComponentChildren;
  /** The header is for screen readers only (a column of checkboxes needs no visible title). */
  readonly hideHeader?: boolean;
  /** The cell names its row (a row header for screen readers). */
  readonly rowHeader?: boolean;
  readonly class?: string;
}

export interface TableProps<Row> {
  readonly caption: string;
  /** Show the caption; by default only screen readers read it, the page's headings saying it already. */
  readonly showCaption?: boolean;
  readonly columns: readonly Column<Row>[];
  readonly rows: readonly Row[];
  readonly rowKey: (row: Row) => string;
  /** Extra attributes of a row (`aria-current`, `data-*` for tests). */
  readonly rowAttributes?: (row: Row) => HTMLAttributes<HTMLTableRowElement> & Record<`data-${string}`, string>;
  /** Said under the table when it has no row (`undefined` while the rows are loading). */
  readonly empty?: string | undefined;
}

/** A table of rows, one column per field, with a caption for assistive technology. */
export function Table<Row>(props: TableProps<Row>) {
  return (
    <>
      <table>
        <caption class={props.showCaption === true ? undefined : "visually-hidden"}>{props.caption}</caption>
        <thead>
          <tr>
            {props.columns.map((column) => (
              <th key={column.header} scope="col">
                {column.hideHeader === true ? <span class="visually-hidden">{column.header}</span> : column.header}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {props.rows.map((row) => (
            <tr key={props.rowKey(row)} {...props.rowAttributes?.(row)}>
              {props.columns.map((column) =>
                column.rowHeader === true ? (
                  <th key={column.header} scope="row" class={column.class}>
                    {column.cell(row)}
                  </th>
                ) : (
                  <td key={column.header} class={column.class}>
                    {column.cell(row)}
                  </td>
                ),
              )}
            </tr>
          ))}
        </tbody>
      </table>
      {props.rows.length === 0 && props.empty !== undefined ? <p class="muted">{props.empty}</p> : null}
    </>
  );
}

/** Which rows are ticked, by id. */
export interface Selection {
  readonly ids: ReadonlySet<string>;
  readonly size: number;
  readonly has: (id: string) => boolean;
  readonly toggle: (id: string) => void;
  readonly clear: () => void;
}

/** A selection of rows that starts empty. */
export function useSelection(): Selection {
  const [ids, setIds] = useState<ReadonlySet<string>>(new Set());
  return {
    ids,
    size: ids.size,
    has: (id) => ids.has(id),
    toggle: (id) => {
      const next = new Set(ids);
      if (next.has(id)) next.delete(id);
      else next.add(id);
      setIds(next);
    },
    clear: () => setIds(new Set()),
  };
}

/**
 * A table whose rows can be ticked for an action on several at once; the first column holds
 * the boxes, and a row's key is the id the selection holds.
 */
export function SelectableTable<Row>(props: TableProps<Row> & { readonly selection: Selection; readonly selectLabel: (row: Row) => string }) {
  const { selection, selectLabel, ...table } = props;
  const rowId = table.rowKey;
  const select: Column<Row> = {
    header: "Select",
    hideHeader: true,
    cell: (row) => <input type="checkbox" aria-label={selectLabel(row)} checked={selection.has(rowId(row))} onChange={() => selection.toggle(rowId(row))} />,
  };
  return <Table {...table} columns={[select, ...table.columns]} />;
}

/** The tokens of the pages visited so far, for lists the server pages with `page_token`. */
export interface PageTokens {
  /** The token of the page shown; empty for the first. */
  readonly pageToken: string;
  /** The page shown, counting from 1. */
  readonly number: number;
  readonly next: (token: string) => void;
  readonly previous: () => void;
  /** Back to the first page (after a filter changes). */
  readonly reset: () => void;
}

/** The page tokens of one list, starting at its first page. */
export function usePageTokens(): PageTokens {
  const [tokens, setTokens] = useState<readonly string[]>([""]);
  return {
    pageToken: tokens[tokens.length - 1] ?? "",
    number: tokens.length,
    next: (token) => setTokens([...tokens, token]),
    previous: () => setTokens(tokens.slice(0, -1)),
    reset: () => {
      if (tokens.length > 1) setTokens([""]);
    },
  };
}

/** Previous and next buttons under a paged list. `nextPageToken` is the server's, empty on the last page. */
export function Pager(props: { pages: PageTokens; nextPageToken: string | undefined; busy?: boolean }) {
  const next = props.nextPageToken ?? "";
  return (
    <div class="pager">
      <button type="button" disabled={props.pages.number <= 1} onClick={props.pages.previous}>
        Previous page
      </button>
      <span>Page {props.pages.number}</span>
      <button type="button" disabled={next === "" || props.busy === true} onClick={() => props.pages.next(next)}>
        Next page
      </button>
    </div>
  );
}
