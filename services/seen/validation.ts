import { Code, ConnectError } from "@connectrpc/connect";
import { formatDuration } from "../core/duration.js";
import { checkText } from "../core/text.js";

const TAG = /^[A-Za-z0-9_.:-]{1,64}$/;
const MAX_ITEM_ID = 256;
const INTEGRATION_NAME = /^[a-z0-9][a-z0-9_-]{0,62}$/;
const TOPIC = /^[a-z0-9][a-z0-9_.-]{0,62}$/;
const CONSUMER = /^[A-Za-z0-9_.:-]{1,128}$/;

const invalid = (message: string): ConnectError => new ConnectError(message, Code.InvalidArgument);

/** A notification tag: 1 to 64 letters, digits, `_`, `-`, `.`, `:`. */
export function requireTag(tag: string, field = "tag"): string {
  if (tag === "") throw invalid(`${field}: required`);
  if (!TAG.test(tag)) throw invalid(`${field}: "${tag.slice(0, 80)}" must be 1 to 64 letters, digits, "_", "-", "." or ":"`);
  return tag;
}

/** A notification id: 1 to 256 characters of valid Unicode without control characters. */
export function requireItemId(id: string, field = "id"): string {
  if (id === "") throw invalid(`${field}: required`);
  checkText(id, field);
  if ([...id].length > MAX_ITEM_ID) throw invalid(`${field}: longer than ${MAX_ITEM_ID} characters`);
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(id)) throw invalid(`${field}: must not contain control characters`);
  return id;
}

export function requireIntegrationName(name: string, field = "name"): string {
  if (name === "") throw invalid(`${field}: required`);
  if (!INTEGRATION_NAME.test(name)) throw invalid(`${field}: "${name.slice(0, 80)}" must be 1 to 63 lower-case letters, digits, "_" or "-", starting with a letter or digit`);
  return name;
}

export function requireTopic(topic: string, field = "topic"): string {
  if (topic === "") throw invalid(`${field}: required`);
  if (!TOPIC.test(topic)) throw invalid(`${field}: "${topic.slice(0, 80)}" must be 1 to 63 lower-case letters, digits, "_", "-" or ".", starting with a letter or digit`);
  return topic;
}

export function requireConsumer(consumer: string): string {
  if (consumer === "") throw invalid("consumer: required");
  if (!CONSUMER.test(consumer)) throw invalid(`consumer: "${consumer.slice(0, 80)}" must be 1 to 128 letters, digits, "_", "-", "." or ":"`);
  return consumer;
}

/** An http(s) URL without credentials, for an api integration. */
export function requireDeliveryUrl(text: string, field: string): string {
  if (text === "") throw invalid(`${field}: required`);
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw invalid(`${field}: "${text.slice(0, 200)}" is not an absolute URL`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") throw invalid(`${field}: scheme must be http or https, got "${url.protocol}"`);
  if (url.username !== "" || url.password !== "") throw invalid(`${field}: must not carry credentials`);
  if (text.length > 2_000) throw invalid(`${field}: longer than 2000 characters`);
  return url.toString();
}

/** A duration in milliseconds within bounds, or the default when unset. */
export function requireMs(ms: number | undefined, field: string, fallback: number, min: number, max: number): number {
  if (ms === undefined) return fallback;
  if (!Number.isFinite(ms) || ms < min || ms > max) throw invalid(`${field}: must be from ${formatDuration(min)} to ${formatDuration(max)}, got ${formatDuration(ms)}`);
  return Math.round(ms);
}
