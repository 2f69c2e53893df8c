import type { Jobs } from "../core/jobs/jobs.js";
import { deliveredIdentity, identityKey, type SeenIdentity } from "./identity.js";
import type { SeenMetrics } from "./metrics.js";
import { deliverQueue } from "./queue.js";
import type { MarkResult, SeenRepository } from "./repository.js";

export interface MarkerDeps {
  readonly repository: SeenRepository;
  readonly jobs: Jobs;
  readonly metrics: SeenMetrics;
  readonly defaultRetentionSeconds: number;
}

/**
 * The api request body (and topic message) of a mark, one format per
 * identity kind: `kind`, `tag`, `id`, `seen_at` and the kind's ids.
 */
export function deliveryBody(identity: SeenIdentity, tag: string, itemId: string, seenAt: Date): Record<string, unknown> {
  return { kind: identity.kind, tag, id: itemId, seen_at: seenAt.toISOString(), ...deliveredIdentity(identity) };
}

/**
 * Creates the function that stores a mark: the mark, its deliveries, one
 * `seen.deliver` job per api delivery and its topic messages commit
 * together, or nothing does (the caller gets an error and retries).
 */
export function createMarker(deps: MarkerDeps) {
  const { repository, jobs, metrics } = deps;
  return async function mark(identity: SeenIdentity, tag: string, itemId: string): Promise<MarkResult> {
    const now = new Date();
    const result = await repository.transaction(async (tx) => {
      const stored = await repository.mark(tx, {
        identityKey: identityKey(identity),
        tag,
        itemId,
        kind: identity.kind,
        identity: deliveredIdentity(identity),
        body: deliveryBody(identity, tag, itemId, now),
        now,
        defaultRetentionSeconds: deps.defaultRetentionSeconds,
      });
      for (const deliveryId of stored.deliveryIds) await jobs.send(deliverQueue, { deliveryId, attempt: 1 }, { tx });
      return stored;
    });
    metrics.marks.inc({ result: result.created ? "created" : "repeat" });
    return result;
  };
}

export type Marker = ReturnType<typeof createMarker>;
