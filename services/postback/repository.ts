import type pg from "pg";
import { createDeliveryRepository } from "./delivery-repository.js";
import { createEventRepository } from "./event-repository.js";
import { createPartnerRepository } from "./partner-repository.js";

export type { AttemptRow, DeliveryFilter, DeliveryRow, DeliveryStatusName, NewDelivery } from "./delivery-repository.js";

/**
 * Every statement of the postback service, by aggregate: partners
 * (`partner-repository.ts`), the once-per-click ledger and stored downloads
 * (`event-repository.ts`), postbacks and their attempts
 * (`delivery-repository.ts`). Code that needs one aggregate takes its own
 * repository; the RPC services take them all.
 */
export function createPostbackRepository(pool: pg.Pool) {
  return { ...createPartnerRepository(pool), ...createEventRepository(pool), ...createDeliveryRepository(pool) };
}

export type PostbackRepository = ReturnType<typeof createPostbackRepository>;
