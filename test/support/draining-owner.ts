// A Funnel process that owns an embedded Postgres and, on SIGTERM, drains for
// DRAIN_MS before it stops the server and exits: a process still stopping
// when the next one starts on the same folder.
import { setTimeout as sleep } from "node:timers/promises";
import { startEmbeddedPostgres } from "../../services/core/embedded-postgres.js";
import { createLogger } from "../../services/core/logger.js";

const postgres = await startEmbeddedPostgres({
  dir: process.env.DIR ?? "",
  port: Number(process.env.PORT),
  log: createLogger("silent", false),
});
// The server is not a handle that keeps Node running; this is.
const alive = setInterval(() => undefined, 1_000);
process.once("SIGTERM", () => {
  void (async () => {
    await sleep(Number(process.env.DRAIN_MS));
    await postgres.stop();
    clearInterval(alive);
  })();
});
process.stdout.write("ready\n");
