import { clickhouseTime } from "../clickhouse.js";
import type { Attempt } from "./store.js";

/**
 * The columns every kind's attempt analytics row has (ClickHouse
 * `postback_deliveries`, `seen_delivery_attempts`); a kind adds the facts of
 * its own deliveries.
 */
export function attemptColumns(attempt: Attempt<unknown>) {
  return {
    delivery_id: attempt.delivery.id,
    attempt: attempt.attempt,
    url: attempt.url,
    http_status: attempt.httpStatus ?? 0,
    response_body: attempt.responseBody.toString("utf8"),
    duration_ms: attempt.durationMs,
    error: attempt.error,
    outcome: attempt.outcome,
    attempted_at: clickhouseTime(attempt.attemptedAt),
  };
}
