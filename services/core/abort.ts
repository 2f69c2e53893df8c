/**
 * Runs `work` with a signal that aborts when any of `signals` does, and
 * detaches from them when `work` ends. Use it instead of `AbortSignal.any`
 * when one of the sources lives for the whole process (a "stopping" signal):
 * `AbortSignal.any` leaves a weak reference in a long-lived source per call,
 * and Node sweeps the whole set on garbage collections, so its cost grows
 * with every job the process has run.
 */
export async function withAnySignal<T>(signals: readonly AbortSignal[], work: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const controller = new AbortController();
  const detach: (() => void)[] = [];
  for (const source of signals) {
    if (source.aborted) {
      controller.abort(source.reason);
      break;
    }
    const abort = (): void => controller.abort(source.reason);
    source.addEventListener("abort", abort, { once: true });
    detach.push(() => source.removeEventListener("abort", abort));
  }
  try {
    return await work(controller.signal);
  } finally {
    for (const remove of detach) remove();
  }
}
