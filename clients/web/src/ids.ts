import type { Store } from "./queue.js";

/**
 * A random (version 4) UUID. Built from `crypto.getRandomValues`, which,
 * unlike `crypto.randomUUID`, also exists on pages served over plain HTTP.
 */
export function uuid(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = ((bytes[6] ?? 0) & 0x0f) | 0x40;
  bytes[8] = ((bytes[8] ?? 0) & 0x3f) | 0x80;
  const hex = Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

const DEVICE_KEY = "funnel:device";
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

/**
 * This browser's anonymous id: a UUID made once and kept in storage, so every
 * page and tab of the site shares it and it survives reloads (without
 * storage, one per page load).
 */
export function deviceId(store: Store | undefined): string {
  try {
    const kept = store?.getItem(DEVICE_KEY);
    if (kept != null && UUID.test(kept)) return kept;
    const made = uuid();
    store?.setItem(DEVICE_KEY, made);
    return made;
  } catch {
    return uuid();
  }
}
