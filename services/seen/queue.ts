import { defineDeliveryQueue } from "../core/delivery/index.js";

/** One attempt at one api delivery (a row of `seen_deliveries`); redriving a dead letter replays its delivery. */
export const deliverQueue = defineDeliveryQueue("seen.deliver");
