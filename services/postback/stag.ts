import { Code, ConnectError } from "@connectrpc/connect";

/** A parsed `stag`: `partnerId_clickId`, split at the first `_`. */
export interface Stag {
  readonly value: string;
  readonly partnerId: string;
  readonly clickId: string;
}

export const MAX_STAG_LENGTH = 200;
export const MAX_PARTNER_ID_LENGTH = 64;
/** Printable ASCII without the space: what survives a URL and a spreadsheet cell unchanged. */
const PRINTABLE = /^[\x21-\x7e]+$/;

/**
 * Parses a stag, or throws `invalid_argument` naming `field` and the reason.
 * Everything after the first `_` is the click id, further `_` included.
 */
export function parseStag(value: string, field = "stag"): Stag {
  const fail = (reason: string): never => {
    throw new ConnectError(`${field}: ${reason}`, Code.InvalidArgument);
  };
  if (value === "") fail("required (partnerId_clickId)");
  if (value.length > MAX_STAG_LENGTH) fail(`longer than ${MAX_STAG_LENGTH} characters`);
  if (!PRINTABLE.test(value)) fail("only printable ASCII without spaces is allowed");
  const split = value.indexOf("_");
  if (split === -1) fail(`"${value}" has no "_" between partner id and click id`);
  const partnerId = value.slice(0, split);
  const clickId = value.slice(split + 1);
  if (partnerId === "") fail(`"${value}" has an empty partner id`);
  if (clickId === "") fail(`"${value}" has an empty click id`);
  if (partnerId.length > MAX_PARTNER_ID_LENGTH) fail(`partner id longer than ${MAX_PARTNER_ID_LENGTH} characters`);
  return { value, partnerId, clickId };
}
