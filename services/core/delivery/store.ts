import type { Transaction } from "../postgres.js";

/** What one attempt led to. */
export type AttemptOutcome = "delivered" | "retry" | "dead";

/**
 * The job that makes one attempt at one delivery. The delivery itself lives
 * in its kind's table; the job names which attempt of which replay it is, so
 * a stale job (a duplicate run, a retry overtaken by a replay) recognises
 * itself and does nothing.
 */
export interface DeliveryJob {
  readonly deliveryId: string;
  /** 1 for the first attempt. */
  readonly attempt: number;
  /** How many replays the delivery had when the job was queued; absent before the first. */
  readonly replay?: number;
}

/**
 * Where a delivery stands, as the engine sees it: `open` waits for its next
 * attempt, `dead` failed for good, `finished` was delivered or cancelled.
 */
export type DeliveryState = "open" | "dead" | "finished";

/** A delivery as its store loads it: the engine's view, and the kind's own row. */
export interface Delivery<Row> {
  readonly id: string;
  readonly state: DeliveryState;
  /** Attempts recorded so far, over every replay. */
  readonly attempts: number;
  /** Attempts before the current round: a replay starts a fresh retry budget there. */
  readonly attemptBase: number;
  /** Replays so far. */
  readonly replay: number;
  readonly row: Row;
}

/** The engine's view of a kind's row, with its state and replays as the kind stores them. */
export function deliveryOf<Row extends { readonly id: string; readonly attempts: number; readonly attemptBase: number }>(
  row: Row,
  state: DeliveryState,
  replay: number,
): Delivery<Row> {
  return { id: row.id, state, attempts: row.attempts, attemptBase: row.attemptBase, replay, row };
}

/** One attempt, with the state it leaves its delivery in. */
export interface Attempt<Row> {
  readonly delivery: Delivery<Row>;
  /** 1 for the first attempt, counting on over replays. */
  readonly attempt: number;
  readonly method: string;
  readonly url: string;
  /** null when no answer came. */
  readonly httpStatus: number | null;
  /** The first bytes of the answer, as the sender kept them. */
  readonly responseBody: Buffer;
  readonly durationMs: number;
  /** Empty when delivered. */
  readonly error: string;
  readonly outcome: AttemptOutcome;
  readonly attemptedAt: Date;
  /** When the next attempt is due; null unless the outcome is `retry`. */
  readonly nextAttemptAt: Date | null;
}

/**
 * The SQL of one delivery kind, as the engine calls it. Every statement that
 * moves a delivery on tests the state it expects (its attempts, its replay,
 * an open status), so a stale job changes nothing. Those statements look
 * deliveries up by id only, and their status test is written
 * `(status …) IS TRUE` so that only the primary key can serve them: with
 * statistics from when few deliveries were open, a plain `status IN (…)` let
 * the planner scan every open delivery to find a few (milliseconds instead of
 * tens of microseconds with ten thousand open).
 */
export interface DeliveryStore<Row> {
  /** Runs `work` in one transaction. */
  transaction<T>(work: (tx: Transaction) => Promise<T>): Promise<T>;
  /** The deliveries among `ids` that exist (in any order). */
  load(ids: readonly string[]): Promise<Delivery<Row>[]>;
  /** Cancels an open delivery with `reason` (its target was removed or disabled); false when it moved on. */
  cancel(delivery: Delivery<Row>, reason: string): Promise<boolean>;
  /**
   * Records attempts (their rows, their deliveries' new state, their analytics
   * rows): in `tx` if given, else committing by itself. An attempt counts only
   * if its delivery is still open at the attempt before it, in the same
   * replay; of the same attempt twice in `attempts`, the first counts. Returns
   * whether each one was recorded, in order. The analytics rows wake the
   * streamers once they are committed.
   */
  recordAttempts(attempts: readonly Attempt<Row>[], tx?: Transaction): Promise<boolean[]>;
  /**
   * Starts a new round for a dead delivery whose last job was redriven from
   * the dead-letter queue; returns its replay number then, or undefined when
   * it is no longer that job's. A kind without it replays only through its
   * admin API, and its queue's `replayInstead` says so.
   */
  replayDeadLetter?(delivery: Delivery<Row>): Promise<number | undefined>;
}
