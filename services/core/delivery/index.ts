/**
 * The delivery engine: durable, exactly-once-recorded HTTP deliveries with
 * retries, dead letters and replays. A kind (postbacks, Seen's api
 * deliveries) brings its store (SQL), its request rendering and its metrics;
 * see docs/delivery.md.
 */
export { createAttemptLog, type AttemptLog, type AttemptLogDeps } from "./attempt-log.js";
export { attemptColumns } from "./analytics-row.js";
export { createBatchLoader } from "./loader.js";
export { defineDeliveryQueue } from "./queue.js";
export { startDeliveries, type DeliveriesOptions } from "./run.js";
export { deliveryOf, type Attempt, type AttemptOutcome, type Delivery, type DeliveryJob, type DeliveryState, type DeliveryStore } from "./store.js";
export { createDeliveryWorker, type DeliveryKind, type DeliveryWorkerDeps, type Prepared, type RetryBudget } from "./worker.js";
