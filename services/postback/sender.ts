import { version } from "../core/version.js";

export type { OutboundRequest as PostbackRequest } from "../core/outbound/send.js";

/** How much of a partner's answer each attempt keeps. */
export const BODY_PREFIX_BYTES = 100;
export const USER_AGENT = `Funnel-Postback/${version} (+https://github.com/funnel-platform/funnel)`;
