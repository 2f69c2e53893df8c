import { defineDeliveryQueue } from "../core/delivery/index.js";

/**
 * One attempt at one postback (a row of `postbacks`). A dead postback's job
 * finds its postback no longer open and would do nothing, so its dead letters
 * are not redriven: postbacks are replayed through `DeliveryService.Redeliver`.
 */
export const deliverQueue = defineDeliveryQueue("postback.deliver", {
  replayInstead: "DeliveryService.Redeliver (funnel deliveries replay), which gives the postback a fresh retry budget",
});
