import { Code, ConnectError } from "@connectrpc/connect";
import { optionalBearerToken } from "../core/auth.js";
import type { TrustedProxies } from "../core/client-address.js";
import type { SeenIdentityField } from "./settings.js";
import type { Claims, IdentityResolver, VerifiedToken } from "../core/identity/index.js";
import { checkText } from "../core/text.js";

/** Who saw a notification: one of the three kinds of the seed. */
export type SeenIdentity =
  | {
      readonly kind: "client";
      readonly userId: string;
      readonly uid: string;
      readonly boundUids: readonly string[];
      readonly phoneId: string;
    }
  | { readonly kind: "driver"; readonly dbId: string; readonly uuid: string }
  | { readonly kind: "unauthorized"; readonly deviceId: string };

export type IdentityKind = SeenIdentity["kind"];

/** The gateway headers believed from trusted proxies only (lower case, as Node gives them). */
const IDENTITY_HEADERS = {
  userId: "x-funnel-user-id",
  uid: "x-funnel-uid",
  boundUids: "x-funnel-bound-uids",
  phoneId: "x-funnel-phone-id",
  dbId: "x-funnel-driver-db-id",
  uuid: "x-funnel-driver-uuid",
} as const;

/** The device or session id of callers that are not signed in; believed from anyone (it proves nothing). */
const DEVICE_HEADER = "x-funnel-device-id";

const MAX_ID = 128;
const MAX_BOUND_UIDS = 100;

/** What the caller sent that may say who it is. */
export interface CallerRequest {
  /** The `authorization` header as sent; undefined when absent. */
  readonly authorization: string | undefined;
  readonly header: (name: string) => string | undefined;
  /** The TCP peer address. */
  readonly peer: string;
}

/**
 * The key marks are stored under: client by user_id, driver by (db_id, uuid),
 * unauthorized by device id (empty: one shared key).
 */
export function identityKey(identity: SeenIdentity): string {
  switch (identity.kind) {
    case "client":
      return `c:${identity.userId}`;
    case "driver":
      return `d:${JSON.stringify([identity.dbId, identity.uuid])}`;
    case "unauthorized":
      return `u:${identity.deviceId}`;
  }
}

/**
 * The identity part of a delivery (api body and topic message): the kind's
 * ids, and nothing for unauthorized callers (the device id is only a key).
 */
export function deliveredIdentity(identity: SeenIdentity): Record<string, unknown> {
  switch (identity.kind) {
    case "client":
      return { user_id: identity.userId, uid: identity.uid, bound_uids: identity.boundUids, phone_id: identity.phoneId };
    case "driver":
      return { db_id: identity.dbId, uuid: identity.uuid };
    case "unauthorized":
      return {};
  }
}

/** Checks one id; `source` names the header or claim in the error. */
function checkId(value: string, source: string): string {
  if (value.length > MAX_ID) throw new ConnectError(`${source}: longer than ${MAX_ID} characters`, Code.InvalidArgument);
  // A claim is JSON: it can hold a lone surrogate, which the marks' jsonb refuses.
  checkText(value, source);
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(value)) throw new ConnectError(`${source}: must not contain control characters`, Code.InvalidArgument);
  return value;
}

function checkList(values: readonly string[], source: string): string[] {
  if (values.length > MAX_BOUND_UIDS) throw new ConnectError(`${source}: more than ${MAX_BOUND_UIDS} entries`, Code.InvalidArgument);
  return values.map((value) => checkId(value, source));
}

const splitList = (text: string): string[] =>
  text
    .split(",")
    .map((part) => part.trim())
    .filter((part) => part !== "");

/** Reads a dot path from claims: a string, or an integer written as one; undefined otherwise. */
function claimValue(claims: Claims, path: string): unknown {
  let value: unknown = claims;
  for (const key of path.split(".")) {
    if (value === null || typeof value !== "object") return undefined;
    value = (value as Record<string, unknown>)[key];
  }
  return value;
}

function claimString(claims: Claims, path: string): string {
  const value = claimValue(claims, path);
  if (typeof value === "string") return checkId(value, `token claim ${path}`);
  if (typeof value === "number" && Number.isSafeInteger(value)) return String(value);
  return "";
}

function claimList(claims: Claims, path: string): string[] {
  const value = claimValue(claims, path);
  if (typeof value === "string") return checkList(splitList(value), `token claim ${path}`);
  if (!Array.isArray(value)) return [];
  const items = value.flatMap((item: unknown) =>
    typeof item === "string" && item !== "" ? [item] : typeof item === "number" && Number.isSafeInteger(item) ? [String(item)] : [],
  );
  return checkList(items, `token claim ${path}`);
}

/**
 * Maps a verified token to an identity: driver when both driver ids are
 * present, else client when the token names a user (the resolver's user id,
 * the same one Ingest records), else unauthorized, keyed by the device claim
 * or else the token's `sub` (a pre-login session token).
 */
function identityFromToken(token: VerifiedToken, mapping: Readonly<Record<SeenIdentityField, string>>): SeenIdentity {
  const { claims } = token;
  const dbId = claimString(claims, mapping.db_id);
  const uuid = claimString(claims, mapping.uuid);
  if (dbId !== "" && uuid !== "") return { kind: "driver", dbId, uuid };
  if (token.userId !== undefined) {
    return {
      kind: "client",
      userId: checkId(token.userId, "token user id"),
      uid: claimString(claims, mapping.uid),
      boundUids: claimList(claims, mapping.bound_uids),
      phoneId: claimString(claims, mapping.phone_id),
    };
  }
  return { kind: "unauthorized", deviceId: claimString(claims, mapping.device_id) || claimString(claims, "sub") };
}

/**
 * The identity a trusted gateway asserted in headers, or undefined when it
 * asserted none.
 */
function identityFromHeaders(header: (name: string) => string | undefined): SeenIdentity | undefined {
  const read = (name: string): string => checkId(header(name)?.trim() ?? "", name);
  const dbId = read(IDENTITY_HEADERS.dbId);
  const uuid = read(IDENTITY_HEADERS.uuid);
  if (dbId !== "" || uuid !== "") {
    if (dbId === "" || uuid === "") {
      throw new ConnectError(`${dbId === "" ? IDENTITY_HEADERS.dbId : IDENTITY_HEADERS.uuid}: required with the other driver header`, Code.InvalidArgument);
    }
    return { kind: "driver", dbId, uuid };
  }
  const userId = read(IDENTITY_HEADERS.userId);
  if (userId === "") return undefined;
  return {
    kind: "client",
    userId,
    uid: read(IDENTITY_HEADERS.uid),
    boundUids: checkList(splitList(header(IDENTITY_HEADERS.boundUids) ?? ""), IDENTITY_HEADERS.boundUids),
    phoneId: read(IDENTITY_HEADERS.phoneId),
  };
}

export interface CallerIdentityOptions {
  readonly resolver: IdentityResolver;
  readonly proxies: TrustedProxies;
  readonly claims: Readonly<Record<SeenIdentityField, string>>;
}

/** Who the caller of a Seen request is. */
export type CallerIdentity = (request: CallerRequest, signal?: AbortSignal) => Promise<SeenIdentity>;

/**
 * Creates the caller lookup: identity headers when the peer is a trusted
 * proxy and they name someone; otherwise the bearer token through the shared
 * resolver (a malformed `authorization` header is `unauthenticated`);
 * without the header, unauthorized, keyed by the device header. Identity
 * headers from any other peer are ignored, whatever they say.
 */
export function createCallerIdentity(options: CallerIdentityOptions): CallerIdentity {
  const { resolver, proxies, claims } = options;
  return async (request, signal) => {
    if (proxies.trusts(request.peer)) {
      const asserted = identityFromHeaders(request.header);
      if (asserted !== undefined) return asserted;
    }
    const token = optionalBearerToken(request.authorization);
    if (token !== undefined) return identityFromToken(await resolver.verify(token, signal), claims);
    return { kind: "unauthorized", deviceId: checkId(request.header(DEVICE_HEADER)?.trim() ?? "", DEVICE_HEADER) };
  };
}
