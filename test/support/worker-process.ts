// A worker-role Funnel process running only the Seen service, configured by its
// environment; prints "ready" once it works its queues and stops on SIGTERM.
import { startApp } from "../../services/app.js";
import { parseConfig } from "../../services/core/config.js";
import { seenModule } from "../../services/seen/module.js";

const app = await startApp({ config: parseConfig(process.env), roles: ["worker"], modules: [seenModule] });
process.once("SIGTERM", () => {
  app.stop().then(
    () => process.exit(0),
    () => process.exit(1),
  );
});
process.stdout.write("ready\n");
