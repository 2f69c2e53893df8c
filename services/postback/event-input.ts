import { isIP } from "node:net";
import type { Timestamp } from "@bufbuild/protobuf/wkt";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { textProblem } from "../core/text.js";

/** Limits on what an event may carry; docs/postback.md lists them. */
export const LIMITS = { params: 100, paramName: 100, paramValue: 2_000, url: 8_000, userAgent: 1_000, id: 200 } as const;

const invalid = (message: string): never => {
  throw new ConnectError(message, Code.InvalidArgument);
};

/** The event time: `occurred_at`, or now when unset; at most five minutes ahead. */
export function occurredAt(value: Timestamp | undefined, field = "occurred_at"): Date {
  if (value === undefined) return new Date();
  const date = timestampDate(value);
  if (Number.isNaN(date.getTime()) || date.getTime() < Date.UTC(2000, 0, 1)) invalid(`${field}: not a valid time after 2000-01-01`);
  if (date.getTime() > Date.now() + 5 * 60_000) invalid(`${field}: ${date.toISOString()} is in the future`);
  return date;
}

/**
 * A download link's parameters, checked against the limits and for text
 * Postgres can store. Errors name `field.<parameter>`; with `field` empty
 * (the link's own query), the parameter alone.
 */
export function downloadParams(params: Readonly<Record<string, string>>, field = "params"): Record<string, string> {
  const whole = field === "" ? "query" : field;
  const entries = Object.entries(params);
  if (entries.length > LIMITS.params) invalid(`${whole}: more than ${LIMITS.params} parameters`);
  for (const [name, value] of entries) {
    if (name === "" || name.length > LIMITS.paramName) invalid(`${whole}: a parameter name is empty or longer than ${LIMITS.paramName} characters`);
    const nameProblem = textProblem(name);
    if (nameProblem !== undefined) invalid(`${whole}: a parameter name ${nameProblem}`);
    const at = field === "" ? name : `${field}.${name}`;
    if (value.length > LIMITS.paramValue) invalid(`${at}: longer than ${LIMITS.paramValue} characters`);
    const valueProblem = textProblem(value);
    if (valueProblem !== undefined) invalid(`${at}: ${valueProblem}`);
  }
  return Object.fromEntries(entries);
}

/** An optional short text (ids): at most `max` characters, no control characters. */
export function shortText(value: string, field: string, max: number = LIMITS.id): string {
  if (value.length > max) invalid(`${field}: longer than ${max} characters`);
  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x1f\x7f]/.test(value)) invalid(`${field}: control characters are not allowed`);
  return value;
}

/** An optional IP address. */
export function ipAddress(value: string, field = "ip"): string {
  if (value !== "" && isIP(value) === 0) invalid(`${field}: "${value.slice(0, 60)}" is not an IP address`);
  return value;
}
