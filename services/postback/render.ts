import type { EventPostback } from "./partner.js";
import type { DeliveryRow } from "./delivery-repository.js";
import type { PostbackRequest } from "./outbound.js";
import { bodyEscaping, renderTemplate, type Template, type TemplateValues } from "./template.js";

/** A postback's templates, parsed. */
export interface EventTemplates {
  readonly url: Template;
  readonly body: Template | undefined;
}

/** The template values of a queued postback. */
export function valuesOf(delivery: DeliveryRow): TemplateValues {
  return {
    stag: delivery.stag,
    partnerId: delivery.partnerId,
    clickId: delivery.clickId,
    params: delivery.params,
    userId: delivery.userId,
    deviceId: delivery.deviceId,
    event: delivery.event,
    occurredAt: delivery.occurredAt,
    deliveryId: delivery.id,
  };
}

/**
 * Renders the request a partner receives: the URL with URL-encoded values,
 * and for POST the body with values escaped for its content type.
 */
export function renderRequest(event: EventPostback, templates: EventTemplates, values: TemplateValues, timeoutMs: number): PostbackRequest {
  const body =
    event.method === "POST" ? (templates.body === undefined ? "" : renderTemplate(templates.body, values, bodyEscaping(event.contentType))) : undefined;
  return {
    method: event.method,
    url: renderTemplate(templates.url, values, "url"),
    headers: { ...event.headers, ...(body !== undefined && event.contentType !== "" ? { "content-type": event.contentType } : {}) },
    body,
    timeoutMs,
  };
}
