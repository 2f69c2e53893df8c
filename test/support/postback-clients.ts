import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { durationFromMs, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { createClient, type Client } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { DeliveryService } from "../../gen/funnel/postback/v1/delivery_pb.js";
import { HttpMethod, PartnerSchema, PartnerService, type Partner } from "../../gen/funnel/postback/v1/partner_pb.js";
import { PostbackService } from "../../gen/funnel/postback/v1/postback_pb.js";
import { ADMIN_TOKEN } from "./stores.js";

export interface PostbackClients {
  readonly events: Client<typeof PostbackService>;
  readonly partners: Client<typeof PartnerService>;
  readonly deliveries: Client<typeof DeliveryService>;
}

/** Connect clients of the postback services at `baseUrl`, carrying `token` (the admin token by default). */
export function postbackClients(baseUrl: string, token: string = ADMIN_TOKEN): PostbackClients {
  const transport = createConnectTransport({
    baseUrl,
    httpVersion: "1.1",
    interceptors: [
      (next) => (req) => {
        if (token !== "") req.header.set("authorization", `Bearer ${token}`);
        return next(req);
      },
    ],
  });
  return {
    events: createClient(PostbackService, transport),
    partners: createClient(PartnerService, transport),
    deliveries: createClient(DeliveryService, transport),
  };
}

/** The seed's example postback URL, pointed at a local partner server. */
export const seedTemplate = (base: string, path = "/postback"): string =>
  `${base}${path}/{stag_partnerId}/?clickID={stag_clickID}&externalClickID={params.clickID}&userID={userID}&ts={timestamp}`;

/**
 * A partner sending every event as GET to `url` (the seed's template), with
 * short retries so tests stay fast.
 */
export function testPartner(id: string, url: string, overrides: Omit<MessageInitShape<typeof PartnerSchema>, "$typeName"> = {}): Partner {
  const event = { enabled: true, urlTemplate: url, method: HttpMethod.GET };
  return create(PartnerSchema, {
    id,
    name: `Partner ${id}`,
    enabled: true,
    download: event,
    install: event,
    authorization: event,
    timeout: durationFromMs(2_000),
    retry: { maxAttempts: 4, initialDelay: durationFromMs(50), maxDelay: durationFromMs(200) },
    ...overrides,
  });
}

export const at = (unixSeconds: number) => timestampFromDate(new Date(unixSeconds * 1000));
