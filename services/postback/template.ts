/** The values a postback template can use. */
export interface TemplateValues {
  readonly stag: string;
  readonly partnerId: string;
  readonly clickId: string;
  /** Query parameters of the download link. */
  readonly params: Readonly<Record<string, string>>;
  readonly userId: string;
  readonly deviceId: string;
  readonly event: string;
  readonly occurredAt: Date;
  readonly deliveryId: string;
}

/** Every placeholder name besides `params.NAME`, and how it reads its value. */
const PLACEHOLDERS: Readonly<Record<string, (values: TemplateValues) => string>> = {
  stag: (v) => v.stag,
  stag_partnerId: (v) => v.partnerId,
  stag_clickID: (v) => v.clickId,
  userID: (v) => v.userId,
  deviceID: (v) => v.deviceId,
  event: (v) => v.event,
  timestamp: (v) => String(Math.floor(v.occurredAt.getTime() / 1000)),
  timestamp_ms: (v) => String(v.occurredAt.getTime()),
  delivery_id: (v) => v.deliveryId,
};

/** Names listed in error messages, in the order of docs/postback.md. */
export const PLACEHOLDER_NAMES = [...Object.keys(PLACEHOLDERS).map((name) => `{${name}}`), "{params.NAME}"];

type Segment = { readonly text: string } | { readonly value: (values: TemplateValues) => string };

/** A parsed template: literal text and placeholders. */
export interface Template {
  readonly source: string;
  readonly segments: readonly Segment[];
}

/** A template that cannot be parsed; `position` is 1-based, in characters. */
export class TemplateError extends Error {
  constructor(
    readonly position: number,
    readonly reason: string,
  ) {
    super(`position ${position}: ${reason}`);
    this.name = "TemplateError";
  }
}

/** How placeholder values are escaped where they land. */
export type Escaping = "url" | "json" | "form" | "none";

const PLACEHOLDER_START = /[A-Za-z_]/;
const PLACEHOLDER_CHAR = /[A-Za-z0-9_.\-[\]]/;
const PARAM_NAME = /^params\.([A-Za-z0-9_.\-[\]]+)$/;

function placeholder(name: string, position: number): Segment {
  const param = PARAM_NAME.exec(name);
  if (param !== null) {
    const key = param[1] ?? "";
    return { value: (values) => values.params[key] ?? "" };
  }
  const read = PLACEHOLDERS[name];
  if (read === undefined) {
    const near = Object.keys(PLACEHOLDERS).find((known) => known.toLowerCase() === name.toLowerCase());
    const hint = near !== undefined ? ` (did you mean {${near}}?)` : ` (known: ${PLACEHOLDER_NAMES.join(", ")})`;
    throw new TemplateError(position, `unknown placeholder {${name}}${hint}`);
  }
  return { value: read };
}

/**
 * Parses a template. `{name}` is a placeholder when `name` starts with a
 * letter or `_`; any other `{` (as in a JSON body) is literal text, and `{{`
 * is a literal `{` for text that would otherwise read as a placeholder.
 * Throws {@link TemplateError} with the position of the first problem.
 */
export function parseTemplate(source: string): Template {
  const segments: Segment[] = [];
  let text = "";
  let i = 0;
  while (i < source.length) {
    const char = source[i] ?? "";
    const next = source[i + 1] ?? "";
    if (char === "{" && next === "{") {
      text += "{";
      i += 2;
      continue;
    }
    if (char !== "{" || !PLACEHOLDER_START.test(next)) {
      text += char;
      i += 1;
      continue;
    }
    let end = i + 1;
    while (end < source.length && PLACEHOLDER_CHAR.test(source[end] ?? "")) end += 1;
    if (source[end] !== "}") {
      throw new TemplateError(i + 1, `unterminated placeholder "${source.slice(i, end + 1)}": expected "}" at position ${end + 1}`);
    }
    if (text !== "") segments.push({ text });
    text = "";
    segments.push(placeholder(source.slice(i + 1, end), i + 1));
    i = end + 1;
  }
  if (text !== "") segments.push({ text });
  return { source, segments };
}

const escapers: Readonly<Record<Escaping, (value: string) => string>> = {
  url: encodeURIComponent,
  form: (value) => encodeURIComponent(value).replaceAll("%20", "+"),
  json: (value) => JSON.stringify(value).slice(1, -1),
  none: (value) => value,
};

/** Fills a template in, escaping every value for where it lands. */
export function renderTemplate(template: Template, values: TemplateValues, escaping: Escaping): string {
  const escape = escapers[escaping];
  let out = "";
  for (const segment of template.segments) out += "text" in segment ? segment.text : escape(segment.value(values));
  return out;
}

/** Values used to check templates when they are saved, and by `preview` by default. */
export const SAMPLE_VALUES: TemplateValues = {
  stag: "PARTNER_CLICK",
  partnerId: "PARTNER",
  clickId: "CLICK",
  params: {},
  userId: "USER",
  deviceId: "DEVICE",
  event: "install",
  occurredAt: new Date(0),
  deliveryId: "00000000-0000-0000-0000-000000000000",
};

/**
 * Parses a URL template: it must start with `http://` or `https://` and be a
 * valid URL once filled in. Throws {@link TemplateError}.
 */
export function parseUrlTemplate(source: string): Template {
  if (!/^https?:\/\//i.test(source)) {
    throw new TemplateError(1, "the URL must start with http:// or https://");
  }
  const template = parseTemplate(source);
  let url: URL;
  try {
    url = new URL(renderTemplate(template, SAMPLE_VALUES, "url"));
  } catch {
    throw new TemplateError(1, "not a valid URL once filled in");
  }
  if (url.hostname === "") throw new TemplateError(1, "the URL has no host");
  if (url.username !== "" || url.password !== "") throw new TemplateError(1, "credentials in the URL are not allowed; use a header");
  return template;
}

/** How body values are escaped for a content type. */
export function bodyEscaping(contentType: string): Escaping {
  const type = contentType.toLowerCase();
  if (/[/+]json\b/.test(type)) return "json";
  if (type.includes("application/x-www-form-urlencoded")) return "form";
  return "none";
}
