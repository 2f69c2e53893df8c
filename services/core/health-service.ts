import { setTimeout as sleep } from "node:timers/promises";
import { Code, ConnectError, type ConnectRouter } from "@connectrpc/connect";
import { Health, HealthCheckResponse_ServingStatus as ServingStatus } from "../../gen/grpc/health/v1/health_pb.js";

/** What the gRPC health service needs. */
export interface HealthServiceOptions {
  /** Whether the process is ready: the readiness probe `GET /readyz` answers by. */
  readonly ready: () => Promise<boolean>;
  /** How often a watched status is probed, and how long one probe's answer is reused. */
  readonly intervalMs: number;
}

/**
 * Registers `grpc.health.v1.Health` on `router`. Every service registered on
 * it so far, and the health service itself, has the server's status. Register
 * it after the other services.
 *
 * One probe's answer serves every caller for `intervalMs`, so a thousand
 * watchers cost one Postgres query per interval, not a thousand.
 */
export function registerHealth(router: ConnectRouter, options: HealthServiceOptions): void {
  const services = new Set(["", Health.typeName, ...router.handlers.map((handler) => handler.service.typeName)]);
  let probed: { at: number; status: Promise<ServingStatus> } | undefined;
  const status = (): Promise<ServingStatus> => {
    const now = performance.now();
    if (probed === undefined || now - probed.at >= options.intervalMs) {
      const answer = options.ready().then(
        (ready) => (ready ? ServingStatus.SERVING : ServingStatus.NOT_SERVING),
        () => ServingStatus.NOT_SERVING,
      );
      probed = { at: now, status: answer };
    }
    return probed.status;
  };
  router.service(Health, {
    async check({ service }) {
      if (!services.has(service)) throw new ConnectError(`service: no service named ${JSON.stringify(service.slice(0, 200))}`, Code.NotFound);
      return { status: await status() };
    },
    async *watch({ service }, context) {
      if (!services.has(service)) {
        // The protocol's answer for a name that may be registered later: say so, and keep the stream.
        yield { status: ServingStatus.SERVICE_UNKNOWN };
        await sleep(2 ** 31 - 1, undefined, { signal: context.signal }).catch(() => undefined);
        return;
      }
      let last: ServingStatus | undefined;
      while (!context.signal.aborted) {
        const current = await status();
        if (current !== last) yield { status: current };
        last = current;
        await sleep(options.intervalMs, undefined, { signal: context.signal }).catch(() => undefined);
      }
    },
  });
}
