import type { ServiceImpl } from "@connectrpc/connect";
import { Code, ConnectError } from "@connectrpc/connect";
import { EventOutcome, type PostbackService } from "../../gen/funnel/postback/v1/postback_pb.js";
import { requireBearerToken } from "../core/auth.js";
import { downloadParams, ipAddress, LIMITS, occurredAt, shortText } from "./event-input.js";
import type { EventOutcomeName, Recorder } from "./recorder.js";
import { parseStag } from "./stag.js";

const OUTCOMES: Readonly<Record<EventOutcomeName, EventOutcome>> = {
  queued: EventOutcome.QUEUED,
  duplicate: EventOutcome.DUPLICATE,
  unknown_partner: EventOutcome.UNKNOWN_PARTNER,
  disabled: EventOutcome.DISABLED,
  skipped_unattributed: EventOutcome.SKIPPED_UNATTRIBUTED,
};

/**
 * Implements `funnel.postback.v1.PostbackService`: checks the caller's
 * service token (or the admin token), validates events and records them.
 */
export function createPostbackService(deps: { record: Recorder; serviceTokens: readonly string[] }): ServiceImpl<typeof PostbackService> {
  return {
    async recordDownload(req, context) {
      requireBearerToken(context.requestHeader, deps.serviceTokens, "service");
      const recorded = await deps.record({
        kind: "download",
        stag: parseStag(req.stag),
        occurredAt: occurredAt(req.occurredAt),
        params: downloadParams(req.params),
        url: shortText(req.url, "url", LIMITS.url),
        ip: ipAddress(req.ip),
        userAgent: shortText(req.userAgent, "user_agent", LIMITS.userAgent),
        userId: "",
        deviceId: "",
      });
      return { outcome: OUTCOMES[recorded.outcome], deliveryId: recorded.deliveryId, redirectUrl: recorded.redirectUrl };
    },

    async recordInstall(req, context) {
      requireBearerToken(context.requestHeader, deps.serviceTokens, "service");
      const recorded = await deps.record({
        kind: "install",
        stag: parseStag(req.stag),
        occurredAt: occurredAt(req.occurredAt),
        params: {},
        url: "",
        ip: "",
        userAgent: "",
        userId: "",
        deviceId: shortText(req.deviceId, "device_id"),
      });
      return { outcome: OUTCOMES[recorded.outcome], deliveryId: recorded.deliveryId, attributed: recorded.attributed };
    },

    async recordAuthorization(req, context) {
      requireBearerToken(context.requestHeader, deps.serviceTokens, "service");
      const stag = parseStag(req.stag);
      if (req.userId === "") throw new ConnectError("user_id: required", Code.InvalidArgument);
      const recorded = await deps.record({
        kind: "authorization",
        stag,
        occurredAt: occurredAt(req.occurredAt),
        params: {},
        url: "",
        ip: "",
        userAgent: "",
        userId: shortText(req.userId, "user_id"),
        deviceId: shortText(req.deviceId, "device_id"),
      });
      return { outcome: OUTCOMES[recorded.outcome], deliveryId: recorded.deliveryId, attributed: recorded.attributed };
    },
  };
}
