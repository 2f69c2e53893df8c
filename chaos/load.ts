import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { Agent, request } from "undici";

/** The kinds of calls the mixed load makes. */
export const KINDS = ["ingest", "seen", "install", "track"] as const;
export type Kind = (typeof KINDS)[number];

/** One call of the load: its key (how it is found in the stores), the phase it was made in, and whether the server acknowledged it. */
export interface Call {
  readonly kind: Kind;
  readonly key: string;
  readonly phase: string;
  readonly sentAt: number;
  acked: boolean;
}

export interface LoadOptions {
  readonly url: string;
  readonly adminToken: string;
  readonly trackerId: string;
  /** The Seen tag whose integration delivers to the chaos consumer. */
  readonly seenTag: string;
  /** Concurrent callers per kind. */
  readonly callers: Readonly<Record<Kind, number>>;
  /** Pause of each caller between its calls, in ms. */
  readonly pauseMs: number;
}

/** Longest wait for one answer; a call still unanswered then counts as not acknowledged. */
const CALL_TIMEOUT_MS = 5_000;

/**
 * A mixed load on one Funnel server: ingest `Send` with client event ids,
 * anonymous `MarkSeen`, `RecordInstall` for a local partner and `/track`,
 * each call with a key of its own so that it can be found in the stores
 * afterwards. Calls are never retried: a call either got its 2xx
 * (acknowledged: it must be stored exactly once) or did not (it may or may
 * not be stored, but never twice).
 */
export class MixedLoad {
  readonly calls: Call[] = [];
  phase = "";
  #running = false;
  #loops: Promise<void>[] = [];
  #counter = 0;
  readonly #agent = new Agent({ keepAliveTimeout: 10_000, connections: 64 });

  constructor(readonly options: LoadOptions) {}

  start(): void {
    this.#running = true;
    for (const kind of KINDS) {
      for (let caller = 0; caller < this.options.callers[kind]; caller += 1) this.#loops.push(this.#loop(kind, randomUUID()));
    }
  }

  async stop(): Promise<void> {
    this.#running = false;
    await Promise.all(this.#loops);
    this.#loops = [];
  }

  async close(): Promise<void> {
    await this.stop();
    await this.#agent.close();
  }

  /** The calls of `kind` made in `phase`. */
  of(kind: Kind, phase: string): Call[] {
    return this.calls.filter((call) => call.kind === kind && call.phase === phase);
  }

  async #loop(kind: Kind, session: string): Promise<void> {
    let seq = 0;
    while (this.#running) {
      const n = (this.#counter += 1);
      const key = kind === "ingest" ? randomUUID() : `${this.phase}-${n}`;
      const call: Call = { kind, key, phase: this.phase, sentAt: Date.now(), acked: false };
      this.calls.push(call);
      try {
        call.acked = await this.#send(kind, key, session, (seq += 1));
      } catch {
        // Refused, reset or timed out: not acknowledged.
      }
      await sleep(call.acked ? this.options.pauseMs : 50);
    }
  }

  async #send(kind: Kind, key: string, session: string, seq: number): Promise<boolean> {
    const { url, adminToken, trackerId, seenTag } = this.options;
    const rpc = async (path: string, body: unknown, token?: string): Promise<boolean> => {
      const res = await request(`${url}${path}`, {
        method: "POST",
        dispatcher: this.#agent,
        headers: { "content-type": "application/json", ...(token !== undefined ? { authorization: `Bearer ${token}` } : {}) },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(CALL_TIMEOUT_MS),
      });
      await res.body.dump();
      return res.statusCode === 200;
    };
    switch (kind) {
      case "ingest":
        return rpc("/funnel.ingest.v1.IngestService/Send", {
          event: "element_click",
          event_id: key,
          session_id: session,
          seq,
          data: { element_type: "chaos", page_type: "chaos" },
        });
      case "seen":
        return rpc("/funnel.seen.v1.SeenService/MarkSeen", { tag: seenTag, id: key });
      case "install":
        return rpc("/funnel.postback.v1.PostbackService/RecordInstall", { stag: `chaos_${key}` }, adminToken);
      case "track": {
        const res = await request(`${url}/track?id=${trackerId}&n=${encodeURIComponent(key)}`, {
          dispatcher: this.#agent,
          signal: AbortSignal.timeout(CALL_TIMEOUT_MS),
        });
        await res.body.dump();
        return res.statusCode === 204;
      }
    }
  }
}
