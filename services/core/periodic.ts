/** A task that runs on a timer until stopped. */
export interface Periodic {
  /** Stops the timer and waits for a run in progress. */
  stop(): Promise<void>;
}

/**
 * Runs `task` every `intervalMs`, never two runs at once (a run still going
 * when the timer fires again is not overlapped; that tick is skipped). A
 * failed run goes to `onError` and the next tick tries again. The timer does
 * not keep the process alive.
 */
export function runPeriodically(intervalMs: number, task: () => Promise<unknown>, onError: (error: unknown) => void): Periodic {
  let running: Promise<void> | undefined;
  const timer = setInterval(() => {
    running ??= task()
      .then(() => undefined)
      .catch(onError)
      .finally(() => (running = undefined));
  }, intervalMs);
  timer.unref();
  return {
    async stop() {
      clearInterval(timer);
      await running;
    },
  };
}
