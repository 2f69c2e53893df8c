/**
 * Waits for a long call while a terminal shows what it waits for and for how long, on
 * stderr, redrawn in place and erased when the call ends. A pipe or a file gets nothing, so
 * scripts read the same output as before.
 */
export async function withProgress<T>(label: string, work: Promise<T>, stream: NodeJS.WriteStream = process.stderr): Promise<T> {
  if (!stream.isTTY) return work;
  const started = Date.now();
  const draw = () => stream.write(`\r${label}… ${Math.floor((Date.now() - started) / 1000)} s\x1b[K`);
  draw();
  const timer = setInterval(draw, 250);
  try {
    return await work;
  } finally {
    clearInterval(timer);
    stream.write("\r\x1b[K");
  }
}
