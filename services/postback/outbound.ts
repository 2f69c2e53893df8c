import { version } from "../core/version.js";

/** A rendered postback: the HTTP request an attempt sends. */
export type { OutboundRequest as PostbackRequest } from "../core/outbound/send.js";

/** How much of a partner's answer each attempt keeps. */
export const BODY_PREFIX_BYTES = 100;
/** The `User-Agent` of every postback (and of previews). */
export const USER_AGENT = `Funnel-Postback/${version} (+https://github.com/funnel-platform/funnel)`;
