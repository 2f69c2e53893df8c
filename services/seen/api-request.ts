import type { OutboundRequest } from "../core/outbound/send.js";
import { version } from "../core/version.js";

/** How much of a consumer's answer each attempt keeps. */
export const BODY_PREFIX_BYTES = 200;
export const USER_AGENT = `Funnel-Seen/${version}`;

/** One api delivery attempt. */
interface DeliveryRequest {
  readonly url: string;
  /** The delivery id: stable across attempts, so the consumer can de-duplicate. */
  readonly idempotencyKey: string;
  readonly attempt: number;
  readonly body: string;
  readonly timeoutMs: number;
}

/** The HTTP request of a delivery attempt: POST JSON with `Idempotency-Key` and the attempt number. */
export function deliveryRequest(delivery: DeliveryRequest): OutboundRequest {
  return {
    method: "POST",
    url: delivery.url,
    headers: {
      "content-type": "application/json",
      "idempotency-key": delivery.idempotencyKey,
      "x-funnel-attempt": String(delivery.attempt),
    },
    body: delivery.body,
    timeoutMs: delivery.timeoutMs,
  };
}
