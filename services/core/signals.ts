import type { Logger } from "./logger.js";

/**
 * A terminal's Ctrl-C reaches both `npm` (which forwards it) and Funnel, so one
 * key press can arrive twice; signals this close together count as one.
 */
const SAME_PRESS_MS = 500;

/**
 * Runs `shutdown` on the first SIGTERM or SIGINT; a second signal, or a
 * shutdown that outlives `forceAfterMs`, exits at once with status 1.
 */
export function onShutdownSignal(log: Logger, forceAfterMs: number, shutdown: () => Promise<void>): void {
  let stoppingSince: number | undefined;
  const handle = (signal: NodeJS.Signals): void => {
    if (stoppingSince !== undefined) {
      if (Date.now() - stoppingSince < SAME_PRESS_MS) return;
      log.warn({ signal }, "second signal: exiting now");
      process.exit(1);
    }
    stoppingSince = Date.now();
    log.info({ signal }, "shutting down: draining requests and jobs (send the signal again to force)");
    const timer = setTimeout(() => {
      log.error("shutdown took too long: exiting now");
      process.exit(1);
    }, forceAfterMs);
    timer.unref();
    shutdown().then(
      () => {
        log.info("stopped");
        process.exit(0);
      },
      (error: unknown) => {
        log.error({ err: error }, "shutdown failed");
        process.exit(1);
      },
    );
  };
  process.on("SIGTERM", handle);
  process.on("SIGINT", handle);
}
