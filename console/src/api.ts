import type { DescService } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import { IngestService } from "../../gen/funnel/ingest/v1/ingest_pb.js";
import { OpsService } from "../../gen/funnel/ops/v1/ops_pb.js";
import { DeliveryService } from "../../gen/funnel/postback/v1/delivery_pb.js";
import { PartnerService } from "../../gen/funnel/postback/v1/partner_pb.js";
import { PostbackService } from "../../gen/funnel/postback/v1/postback_pb.js";
import { SeenAdminService } from "../../gen/funnel/seen/v1/admin_pb.js";
import { TrackerService } from "../../gen/funnel/tracker/v1/tracker_pb.js";
import { BadRequestSchema } from "../../gen/google/rpc/error_details_pb.js";
import { clearToken, storedToken } from "./session.js";

/** Listeners told when the server refuses the token (it was rotated, say). */
const refusedListeners = new Set<() => void>();

/** Calls `listener` whenever a call fails with `unauthenticated`; returns the unsubscribe. */
export function onTokenRefused(listener: () => void): () => void {
  refusedListeners.add(listener);
  return () => refusedListeners.delete(listener);
}

const auth: Interceptor = (next) => async (req) => {
  const token = storedToken();
  if (token !== undefined) req.header.set("authorization", `Bearer ${token}`);
  try {
    return await next(req);
  } catch (error) {
    if (ConnectError.from(error).code === Code.Unauthenticated && token !== undefined) {
      clearToken();
      for (const listener of refusedListeners) listener();
    }
    throw error;
  }
};

/** The RPCs on the page's own origin: the API process serves both. */
const transport = createConnectTransport({ baseUrl: location.origin, interceptors: [auth] });

function client<T extends DescService>(service: T): Client<T> {
  return createClient(service, transport);
}

/** One client per service the console uses. */
export const api = {
  ops: client(OpsService),
  ingest: client(IngestService),
  partners: client(PartnerService),
  deliveries: client(DeliveryService),
  postbacks: client(PostbackService),
  seen: client(SeenAdminService),
  trackers: client(TrackerService),
};

/**
 * Checks `token` against the server without keeping it: `GetStatus` needs
 * the admin token. Resolves to a message for the sign-in form, undefined when
 * the token works.
 */
export async function checkToken(token: string): Promise<string | undefined> {
  const probe = createClient(OpsService, createConnectTransport({ baseUrl: location.origin }));
  try {
    await probe.getStatus({}, { headers: { authorization: `Bearer ${token}` } });
    return undefined;
  } catch (error) {
    const e = ConnectError.from(error);
    if (e.code === Code.Unauthenticated || e.code === Code.PermissionDenied) return "That token was refused: it is not this server's admin token (FUNNEL_ADMIN_TOKEN).";
    return `The server could not be reached: ${e.rawMessage}`;
  }
}

/** A field the server refused, as `google.rpc.BadRequest` names it. */
export interface FieldError {
  readonly field: string;
  readonly message: string;
}

/** The field violations of an `invalid_argument` error; empty for any other error. */
export function fieldErrors(error: unknown): FieldError[] {
  if (error === null || error === undefined) return [];
  const e = ConnectError.from(error);
  if (e.code !== Code.InvalidArgument) return [];
  return e.findDetails(BadRequestSchema).flatMap((detail) => detail.fieldViolations.map((v) => ({ field: v.field, message: v.description })));
}

/** A one-line message for any error, for a banner. */
export function errorText(error: unknown): string {
  const e = ConnectError.from(error);
  return e.code === Code.Unknown ? e.rawMessage : `${Code[e.code]}: ${e.rawMessage}`;
}
