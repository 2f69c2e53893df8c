import type pg from "pg";
import { GroupCommit } from "../core/group-commit.js";
import type { Jobs } from "../core/jobs/jobs.js";
import { retryingDeadlocks, withTransaction } from "../core/postgres.js";
import type { Registry } from "../core/metrics.js";
import { deliveredIdentity, identityKey, type SeenIdentity } from "./identity.js";
import type { SeenMetrics } from "./metrics.js";
import { deliverQueue } from "./queue.js";
import { markMany, type MarkInput, type MarkResult } from "./sql/marks.js";

export interface MarkerDeps {
  readonly pool: pg.Pool;
  readonly jobs: Jobs;
  readonly metrics: SeenMetrics;
  /** Where the group commit counts its splits. */
  readonly registry: Registry;
  readonly defaultRetentionSeconds: number;
  /** Transactions in flight at once (each holds a pooled connection); marks gather while all are busy. */
  readonly maxInFlight?: number;
}


/**
 * Creates the function that stores a mark. Concurrent marks share one
 * transaction (group commit): the marks, their deliveries, one `seen.deliver`
 * job per api delivery and their topic messages commit together, or nothing of
 * the group does (every caller in it gets the error and retries). A mark
 * resolves only after its group committed.
 */
export function createMarker(deps: MarkerDeps) {
  const { pool, jobs, metrics } = deps;
  const group = new GroupCommit<MarkInput, MarkResult>({
    name: "seen_marks",
    metrics: deps.registry,
    maxInFlight: deps.maxInFlight,
    observe: { items: metrics.groupMarks, seconds: metrics.groupSeconds },
    // Marks are locked in key order; the clean-up deleting expired marks may still deadlock with a group renewing them.
    commit: (inputs) =>
      retryingDeadlocks(() =>
        withTransaction(pool, async (tx) => {
          const stored = await markMany(tx, inputs, deps.defaultRetentionSeconds);
          const deliveryIds = stored.flatMap((result) => result.deliveryIds);
          await jobs.sendMany(deliverQueue, deliveryIds.map((deliveryId) => ({ payload: { deliveryId, attempt: 1 } })), { tx });
          return stored;
        }),
      ),
  });
  const mark = async (identity: SeenIdentity, tag: string, itemId: string): Promise<MarkResult> => {
    const now = new Date();
    const result = await group.submit({
      identityKey: identityKey(identity),
      tag,
      itemId,
      kind: identity.kind,
      identity: deliveredIdentity(identity),
      now,
    });
    metrics.marks.inc({ result: result.created ? "created" : "repeat" });
    return result;
  };
  /** Waits for every mark already submitted to be committed (or to fail). */
  const flush = (): Promise<void> => group.flush();
  return Object.assign(mark, { flush });
}

export type Marker = ReturnType<typeof createMarker>;
